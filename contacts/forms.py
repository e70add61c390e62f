from __future__ import annotations

from django import forms

from contacts.models import Contact, ContactIdentity


class ContactSearchForm(forms.Form):
    q = forms.CharField(required=False, max_length=200, label="Search")
    lifecycle_stage = forms.ChoiceField(required=False, choices=[("", "Any stage"), *Contact.Stage.choices])
    tag = forms.CharField(required=False, max_length=64)


class IdentityForm(forms.Form):
    kind = forms.ChoiceField(choices=ContactIdentity.Kind.choices)
    value = forms.CharField(max_length=320)
    label = forms.CharField(max_length=32, required=False)
