"""Navigation and notification badge for the base layout."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from django.urls import reverse

NAVIGATION = [
    ("my_day", "My day", "my_day"),
    ("inbox", "Inbox", "threads:index"),
    ("contacts", "Contacts", "contacts:list"),
    ("companies", "Companies", "contacts:company_list"),
    ("activities", "Activities", "activities:index"),
    ("deals", "Deals", "deals:index"),
    ("campaigns", "Campaigns", "campaigns:index"),
    ("listening", "Listening", "listening:index"),
    ("reports", "Reports", "reports"),
]


def navigation(request: HttpRequest) -> dict[str, Any]:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    from accounts.selectors import unread_notification_count

    path = request.path
    items = []
    for key, label, url_name in NAVIGATION:
        url = reverse(url_name)
        active = path == url if url == "/" else path.startswith(url)
        items.append({"key": key, "label": label, "url": url, "active": active})
    return {
        "nav_items": items,
        "show_admin_link": user.is_admin_role,
        "unread_notifications": unread_notification_count(user=user),
    }
