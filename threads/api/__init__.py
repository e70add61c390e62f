"""REST endpoints of threads. Each area module exposes register_routes(router) and url patterns."""

from __future__ import annotations

from rest_framework.routers import DefaultRouter


def register_routes(router: DefaultRouter) -> None:
    pass
