"""Pages: Relationships, introductions, life events, consent, custom fields, contact create/edit."""

from __future__ import annotations

from django.urls import URLPattern

# Included by contacts/urls.py under the "contacts" namespace.
urlpatterns: list[URLPattern] = []
