"""API: Relationships, introductions, life events, consent, custom fields, contact create/edit."""

from __future__ import annotations

from rest_framework.routers import DefaultRouter


def register(router: DefaultRouter) -> None:
    """Register this area's viewsets on the /api/v1/ router (called from contacts.api.register_routes)."""
