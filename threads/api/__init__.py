"""REST endpoints of threads. Each area module exposes ``register_routes(router)``; the inbound webhook is a plain
path (``threads.api.inbound.InboundWebhookView``) that crm/urls.py places before the router."""

from __future__ import annotations

import importlib
import importlib.util

from rest_framework.routers import DefaultRouter

AREAS = ("threads.api.channels", "threads.api.conversations")


def register_routes(router: DefaultRouter) -> None:
    for name in AREAS:
        # An area that has not landed yet is skipped; one that exists but fails to import must fail loudly, which
        # a bare ``except ImportError`` would hide.
        if importlib.util.find_spec(name) is None:
            continue
        importlib.import_module(name).register_routes(router)
