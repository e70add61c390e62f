"""``{% contact_profile contact as profile %}``: the profile section's data for the contact page, which is rendered
by a view this area does not own."""

from __future__ import annotations

from typing import Any

from django import template

from contacts.models import Contact

register = template.Library()


@register.simple_tag(takes_context=True)
def contact_profile(context: template.Context, contact: Contact) -> dict[str, Any]:
    from contacts.views.profile import profile_context

    return profile_context(context["request"].user, contact)
