from __future__ import annotations

from typing import Any

from django import forms

from accounts.models import User, Visibility
from contacts.models import Company, Consent, Contact, ContactIdentity, CustomFieldDefinition, LifeEvent, Relationship


class ContactSearchForm(forms.Form):
    q = forms.CharField(required=False, max_length=200, label="Search")
    lifecycle_stage = forms.ChoiceField(required=False, choices=[("", "Any stage"), *Contact.Stage.choices])
    tag = forms.CharField(required=False, max_length=64)


class IdentityForm(forms.Form):
    kind = forms.ChoiceField(choices=ContactIdentity.Kind.choices)
    value = forms.CharField(max_length=320)
    label = forms.CharField(max_length=32, required=False)


class DateInput(forms.DateInput):
    input_type = "date"

    def __init__(self, attrs: dict[str, Any] | None = None) -> None:
        super().__init__(attrs, format="%Y-%m-%d")


CUSTOM_PREFIX = "cf_"


class ContactForm(forms.Form):
    """The contact create/edit form: the standard fields plus one field per active custom field definition.

    Form fields only shape the input; contact_create/contact_update (and contacts.customfields) decide what is
    valid, and their errors are put back on the matching field by :meth:`add_service_errors`.
    """

    first_name = forms.CharField(max_length=120, required=False)
    last_name = forms.CharField(max_length=120, required=False)
    title = forms.CharField(max_length=200, required=False, label="Job title")
    company = forms.CharField(
        max_length=200, required=False, help_text="The exact name of a company you can see.",
        widget=forms.TextInput(attrs={"list": "company-names", "autocomplete": "off"}),
    )  # fmt: skip
    email = forms.CharField(max_length=320, required=False, label="E-mail")
    phone = forms.CharField(max_length=64, required=False)
    lifecycle_stage = forms.ChoiceField(choices=Contact.Stage.choices, initial=Contact.Stage.LEAD, label="Stage")
    tier = forms.ChoiceField(choices=[("", "—"), *Contact.Tier.choices], required=False)
    tags = forms.CharField(max_length=500, required=False, help_text="Separate tags with commas.")
    birthday = forms.DateField(required=False, widget=DateInput())
    street = forms.CharField(max_length=200, required=False)
    city = forms.CharField(max_length=120, required=False)
    region = forms.CharField(max_length=120, required=False)
    postal_code = forms.CharField(max_length=32, required=False)
    country = forms.CharField(max_length=2, required=False, help_text="Two letters, e.g. DE.")
    time_zone = forms.CharField(max_length=64, required=False, label="Time zone")
    language = forms.CharField(max_length=16, required=False)
    visibility = forms.ChoiceField(choices=Visibility.choices, initial=Visibility.TEAM)
    do_not_contact = forms.BooleanField(required=False, label="Do not contact")
    notes = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 4}))

    STANDARD = (
        "first_name", "last_name", "title", "lifecycle_stage", "tier", "birthday", "street", "city", "region",
        "postal_code", "country", "time_zone", "language", "visibility", "do_not_contact", "notes",
    )  # fmt: skip

    def __init__(
        self,
        *args: Any,
        user: User,
        definitions: list[CustomFieldDefinition],
        instance: Contact | None = None,
        **kwargs: Any,
    ) -> None:
        if instance is not None and "initial" not in kwargs:
            kwargs["initial"] = self.initial_for(instance)
        super().__init__(*args, **kwargs)
        self.user = user
        self.instance = instance
        self.definitions = definitions
        if instance is not None:
            # Identities are edited on the contact page, one at a time, with their own conflict handling.
            del self.fields["email"]
            del self.fields["phone"]
        for definition in definitions:
            self.fields[CUSTOM_PREFIX + definition.key] = self._custom_field(definition)

    def custom_field_list(self) -> list[forms.BoundField]:
        return [self[CUSTOM_PREFIX + definition.key] for definition in self.definitions]

    @classmethod
    def initial_for(cls, contact: Contact) -> dict[str, Any]:
        initial: dict[str, Any] = {name: getattr(contact, name) for name in cls.STANDARD}
        initial["company"] = contact.company.name if contact.company_id else ""
        initial["tags"] = ", ".join(contact.tags)
        for key, value in (contact.custom_fields or {}).items():
            initial[CUSTOM_PREFIX + key] = value
        return initial

    @staticmethod
    def _custom_field(definition: CustomFieldDefinition) -> forms.Field:
        common: dict[str, Any] = {
            "label": definition.label, "required": definition.required, "help_text": definition.help_text,
        }  # fmt: skip
        kind = definition.field_type
        Type = CustomFieldDefinition.Type
        if kind == Type.NUMBER:
            # A CharField: the custom field validator owns the number rules, and says so in its own words.
            return forms.CharField(widget=forms.NumberInput(attrs={"step": "any"}), **common)
        if kind == Type.DATE:
            return forms.CharField(widget=DateInput(), **common)
        if kind == Type.CHOICE:
            return forms.ChoiceField(choices=[("", "—"), *[(c, c) for c in definition.choices]], **common)
        if kind == Type.BOOLEAN:
            common["required"] = False
            return forms.BooleanField(**common)
        return forms.CharField(max_length=2000, widget=forms.TextInput(), **common)

    def clean_company(self) -> Company | None:
        from contacts.selectors import company_list

        name = self.cleaned_data.get("company", "").strip()
        if not name:
            return None
        matches = list(company_list(user=self.user).filter(name__iexact=name).order_by("id")[:2])
        if not matches:
            raise forms.ValidationError(f"No company named “{name}”. Check the spelling, or create it first.")
        if len(matches) > 1:
            raise forms.ValidationError(f"Several companies are named “{name}”; ask an admin to tidy them up.")
        return matches[0]

    def clean_tags(self) -> list[str]:
        raw = self.cleaned_data.get("tags", "")
        return sorted({t.strip()[:64] for t in raw.split(",") if t.strip()})

    def service_data(self) -> dict[str, Any]:
        """The keyword arguments for contact_create / contact_update."""
        data = {name: self.cleaned_data[name] for name in self.STANDARD}
        data["country"] = data["country"].upper()
        data["company"] = self.cleaned_data["company"]
        data["tags"] = self.cleaned_data["tags"]
        custom: dict[str, Any] = {}
        for definition in self.definitions:
            value = self.cleaned_data.get(CUSTOM_PREFIX + definition.key)
            custom[definition.key] = value if value != "" else None
        data["custom_fields"] = custom
        return data

    def identities(self) -> list[dict[str, Any]]:
        out = []
        if self.cleaned_data.get("email"):
            out.append({"kind": ContactIdentity.Kind.EMAIL, "value": self.cleaned_data["email"], "is_primary": True})
        if self.cleaned_data.get("phone"):
            out.append({"kind": ContactIdentity.Kind.PHONE, "value": self.cleaned_data["phone"], "is_primary": True})
        return out

    def add_service_errors(self, errors: dict[str, list[str]]) -> None:
        """Put a service's field errors on the matching form fields (``custom_fields.<key>`` -> ``cf_<key>``)."""
        for key, messages in errors.items():
            field = key
            if key.startswith("custom_fields."):
                field = CUSTOM_PREFIX + key.split(".", 1)[1]
            elif key == "value":
                field = "email" if "email" in self.fields else None  # type: ignore[assignment]
            if field not in self.fields:
                field = None  # type: ignore[assignment]
            for message in messages:
                self.add_error(field, message)


class RelationshipForm(forms.Form):
    prefix = "rel"  # the contact page holds several forms; prefixes keep their field ids unique
    kind = forms.ChoiceField(choices=Relationship.Kind.choices, label="Link")
    other = forms.CharField(
        max_length=200, label="Contact", help_text="A name, e-mail or #id of a contact you can see."
    )
    direction = forms.ChoiceField(
        choices=[("out", "This contact → other"), ("in", "Other → this contact")], initial="out"
    )
    strength = forms.TypedChoiceField(
        choices=[(i, str(i)) for i in range(1, 6)], coerce=int, initial=3, help_text="1 acquaintance, 5 very close"
    )
    notes = forms.CharField(required=False, max_length=1000)


class LifeEventForm(forms.Form):
    prefix = "event"
    kind = forms.ChoiceField(choices=LifeEvent.Kind.choices)
    date = forms.DateField(widget=DateInput())
    title = forms.CharField(max_length=200, required=False, help_text="Required for “Other”.")
    note = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))


class ConsentForm(forms.Form):
    prefix = "consent"
    channel = forms.ChoiceField(choices=Consent.Channel.choices)
    status = forms.ChoiceField(choices=Consent.Status.choices)
    legal_basis = forms.ChoiceField(choices=Consent.LegalBasis.choices, required=False, label="Legal basis")
    source = forms.CharField(max_length=120, required=False, help_text="Where this came from, e.g. “web form”.")
