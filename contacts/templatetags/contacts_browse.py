"""Template tags of the browse area: the timeline section of the contact page.

The contact page view belongs to another area; rendering the first timeline page here (through the selector,
which applies visibility) keeps it server-rendered in the same request without touching that view.
"""

from __future__ import annotations

from typing import Any

from django import template
from django.urls import reverse

from contacts.models import Contact
from contacts.selectors.timeline import contact_timeline

register = template.Library()


@register.inclusion_tag("contacts/_timeline.html", takes_context=True)
def contact_timeline_section(context: template.Context, contact: Contact) -> dict[str, Any]:
    user = context["request"].user
    return {
        "timeline": contact_timeline(user=user, contact=contact, before=None),
        "timeline_url": reverse("contacts:timeline", args=[contact.pk]),
        "timeline_title": "Timeline",
    }
