"""Pages: CSV import wizard, CSV and vCard export, GDPR export and erasure."""

from __future__ import annotations

from django.urls import URLPattern

# Included by contacts/urls.py under the "contacts" namespace.
urlpatterns: list[URLPattern] = []
