"""REST endpoints of listening: rules (CRUD and a dry run), mentions (filtered, keyset-paginated), sources (CRUD, a
webhook secret shown once, fetch now) and spike alerts; plus the signed webhook through which other systems push
public posts (``POST /api/v1/listening/sources/<slug>/posts/``, a plain path placed before the router).

Thin: validate the shape, call a selector or a service, serialize. Visibility comes from listening.selectors; a
rule, source or mention the caller may not see is a 404.
"""

from __future__ import annotations

from rest_framework.routers import DefaultRouter

from listening.api.mentions import MentionViewSet
from listening.api.rules import RuleViewSet
from listening.api.sources import SourceViewSet, SpikeViewSet
from listening.api.webhook import ListeningWebhookView, parse_posts

__all__ = [
    "ListeningWebhookView",
    "MentionViewSet",
    "RuleViewSet",
    "SourceViewSet",
    "SpikeViewSet",
    "parse_posts",
    "register_routes",
]


def register_routes(router: DefaultRouter) -> None:
    """Every listening endpoint on the /api/v1/ router. The signed webhook is a plain path (ListeningWebhookView)
    that crm/urls.py places before the router."""
    router.register("listening/rules", RuleViewSet, basename="listening-rule")
    router.register("listening/mentions", MentionViewSet, basename="listening-mention")
    router.register("listening/sources", SourceViewSet, basename="listening-source")
    router.register("listening/spikes", SpikeViewSet, basename="listening-spike")
