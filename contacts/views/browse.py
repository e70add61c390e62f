"""Pages: One search box, timeline, contact list filters and saved views."""

from __future__ import annotations

from django.urls import URLPattern

# Included by contacts/urls.py under the "contacts" namespace.
urlpatterns: list[URLPattern] = []
