"""Writes for contacts, companies and identities."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from accounts.models import User, Visibility
from accounts.selectors import can_see
from contacts.customfields import clean_custom_fields
from contacts.identities import normalize_identity
from contacts.models import Company, Contact, ContactIdentity, LifeEvent
from crm.errors import Conflict

CONTACT_EDITABLE = (
    "first_name", "last_name", "title", "company", "lifecycle_stage", "tier", "tags", "street", "city", "region",
    "postal_code", "country", "latitude", "longitude", "time_zone", "language", "notes", "custom_fields", "birthday",
    "do_not_contact", "owner", "team", "visibility",
)  # fmt: skip
COMPANY_EDITABLE = (
    "name", "domains", "industry", "size", "website", "street", "city", "region", "postal_code", "country", "tags",
    "notes", "owner", "team", "visibility",
)  # fmt: skip

# One SQL statement rebuilds the search document of many contacts: names weigh most, then title and company,
# then every identity (e-mail split at punctuation so "jane" finds "jane.doe@acme.com").
_CONTACT_SEARCH_SQL = """
UPDATE contacts_contact AS c SET search_vector =
    setweight(to_tsvector('simple', coalesce(c.first_name, '') || ' ' || coalesce(c.last_name, '')), 'A')
 || setweight(to_tsvector('simple', coalesce(c.title, '') || ' ' || coalesce(co.name, '')), 'B')
 || setweight(to_tsvector('simple', coalesce((
        SELECT string_agg(i.value || ' ' || translate(i.value, '@._-+/', '      ') || ' ' || i.handle, ' ')
        FROM contacts_contactidentity i WHERE i.contact_id = c.id), '')), 'C')
FROM contacts_contact AS c2 LEFT JOIN contacts_company AS co ON co.id = c2.company_id
WHERE c.id = c2.id AND c.id = ANY(%s)
"""
_COMPANY_SEARCH_SQL = """
UPDATE contacts_company SET search_vector =
    setweight(to_tsvector('simple', coalesce(name, '')), 'A')
 || setweight(to_tsvector('simple', array_to_string(domains, ' ') || ' ' ||
        translate(array_to_string(domains, ' '), '.-', '  ') || ' ' || coalesce(industry, '')), 'B')
WHERE id = ANY(%s)
"""


def contact_search_refresh(*, contact_ids: Iterable[int]) -> None:
    ids = list(contact_ids)
    if ids:
        with connection.cursor() as cursor:
            cursor.execute(_CONTACT_SEARCH_SQL, [ids])


def company_search_refresh(*, company_ids: Iterable[int]) -> None:
    ids = list(company_ids)
    if ids:
        with connection.cursor() as cursor:
            cursor.execute(_COMPANY_SEARCH_SQL, [ids])


def _apply(instance: Any, data: dict[str, Any], allowed: tuple[str, ...]) -> None:
    unknown = set(data) - set(allowed)
    if unknown:
        raise ValidationError({name: ["This field cannot be set."] for name in sorted(unknown)})
    for key, value in data.items():
        setattr(instance, key, value)


@transaction.atomic
def company_create(*, actor: User, **data: Any) -> Company:
    data.setdefault("owner", actor)
    company = Company()
    _apply(company, data, COMPANY_EDITABLE)
    company.domains = sorted({d.strip().lower() for d in company.domains if d.strip()})
    company.full_clean(exclude=["search_vector"])
    company.save()
    company_search_refresh(company_ids=[company.pk])
    return company


@transaction.atomic
def company_update(*, company: Company, actor: User, **data: Any) -> Company:
    _apply(company, data, COMPANY_EDITABLE)
    company.full_clean(exclude=["search_vector"])
    company.save()
    company_search_refresh(company_ids=[company.pk])
    if "name" in data:
        contact_search_refresh(contact_ids=company.contacts.values_list("id", flat=True))
    return company


@transaction.atomic
def contact_create(*, actor: User, identities: list[dict[str, Any]] | None = None, **data: Any) -> Contact:
    """Create a contact with its identities. An identity already owned by someone else is a Conflict."""
    data.setdefault("owner", actor)
    if "team" not in data:
        data["team"] = actor.teams.order_by("id").first()
    data.setdefault("visibility", Visibility.TEAM)
    contact = Contact()
    data["custom_fields"] = clean_custom_fields(data.get("custom_fields"))
    _apply(contact, data, CONTACT_EDITABLE)
    contact.full_clean(exclude=["search_vector"])
    contact.save()
    for identity in identities or []:
        identity_attach(contact=contact, actor=actor, refresh_search=False, **identity)
    contact_search_refresh(contact_ids=[contact.pk])
    return contact


ADDRESS_FIELDS = ("street", "city", "region", "postal_code", "country")


def _address(contact: Contact) -> dict[str, str]:
    return {name: getattr(contact, name) for name in ADDRESS_FIELDS}


@transaction.atomic
def contact_update(*, contact: Contact, actor: User, **data: Any) -> Contact:
    """Update fields; a change of company or address is recorded as a life event (job change, move)."""
    if "custom_fields" in data:
        # Required-field checks apply only when custom fields are written, so defining a new required field
        # does not block every other edit of older contacts.
        data["custom_fields"] = clean_custom_fields(data["custom_fields"], existing=contact.custom_fields)
    old_company = contact.company
    old_address = _address(contact)
    _apply(contact, data, CONTACT_EDITABLE)
    contact.full_clean(exclude=["search_vector"])
    contact.save()
    today = timezone.localdate()
    if contact.company_id != (old_company.pk if old_company else None):
        LifeEvent.objects.create(
            contact=contact, kind=LifeEvent.Kind.JOB_CHANGE, date=today, source="auto", created_by=actor,
            title=f"Moved to {contact.company.name}" if contact.company else f"Left {old_company.name}",
            data={
                "from": {"id": old_company.pk, "name": old_company.name} if old_company else None,
                "to": {"id": contact.company.pk, "name": contact.company.name} if contact.company else None,
            },
        )  # fmt: skip
    new_address = _address(contact)
    if new_address != old_address and any(old_address.values()):
        place = ", ".join(v for v in (contact.city, contact.country) if v) or "a new address"
        LifeEvent.objects.create(
            contact=contact, kind=LifeEvent.Kind.MOVE, date=today, source="auto", created_by=actor,
            title=f"Moved to {place}", data={"from": old_address, "to": new_address},
        )  # fmt: skip
    contact_search_refresh(contact_ids=[contact.pk])
    return contact


def identity_attach(
    *,
    contact: Contact,
    actor: User | None,
    kind: str,
    value: str,
    label: str = "",
    verified: bool = False,
    is_primary: bool = False,
    source: str = "manual",
    refresh_search: bool = True,
) -> ContactIdentity:
    """Attach an address to a contact. Raises ValidationError for a bad value, Conflict if someone else has it."""
    try:
        normalized, handle = normalize_identity(kind, value)
    except ValidationError as exc:
        raise ValidationError({"value": exc.messages}) from None
    existing = ContactIdentity.objects.filter(kind=kind, normalized=normalized).select_related("contact").first()
    if existing is not None:
        if existing.contact_id == contact.pk:
            return existing
        raise _identity_conflict(existing, actor)
    identity = ContactIdentity(
        contact=contact, kind=kind, value=value.strip(), normalized=normalized, handle=handle, label=label,
        verified=verified, is_primary=is_primary, source=source,
    )  # fmt: skip
    try:
        with transaction.atomic():
            identity.save()
    except IntegrityError:
        # Lost a race with a concurrent writer; the database constraint is the arbiter.
        existing = ContactIdentity.objects.select_related("contact").get(kind=kind, normalized=normalized)
        raise _identity_conflict(existing, actor) from None
    if refresh_search:
        contact_search_refresh(contact_ids=[contact.pk])
    return identity


def _identity_conflict(existing: ContactIdentity, actor: User | None) -> Conflict:
    who = "another contact"
    if actor is not None and can_see(actor, existing.contact):
        who = f"{existing.contact.display_name} (#{existing.contact_id})"
    return Conflict(
        f"{existing.get_kind_display()} {existing.value} already belongs to {who}.",
        fields={"value": [f"Already belongs to {who}."]},
        code="identity_taken",
    )


@transaction.atomic
def identity_remove(*, identity: ContactIdentity, actor: User) -> None:
    contact_id = identity.contact_id
    identity.delete()
    contact_search_refresh(contact_ids=[contact_id])


@transaction.atomic
def contact_delete(*, contact: Contact, actor: User) -> None:
    contact.delete()


@transaction.atomic
def company_delete(*, company: Company, actor: User) -> None:
    contact_ids = list(company.contacts.values_list("id", flat=True))
    company.delete()
    contact_search_refresh(contact_ids=contact_ids)
