"""Pages: Duplicate finder, review queue, merge and unmerge."""

from __future__ import annotations

from django.urls import URLPattern

# Included by contacts/urls.py under the "contacts" namespace.
urlpatterns: list[URLPattern] = []
