"""Shared pieces of the listening API: error and page schemas, the team field."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import inline_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.models import Team
from accounts.selectors import team_list

CHANNEL_RE = r"^[a-z][a-z0-9_]{0,19}$"


def error_schema(name: str, *, with_position: bool = False) -> serializers.Serializer:
    body: dict[str, serializers.Field] = {
        "code": serializers.CharField(),
        "message": serializers.CharField(),
        "fields": serializers.DictField(child=serializers.ListField(child=serializers.CharField())),
    }
    if with_position:
        body["position"] = serializers.IntegerField(required=False, help_text="0-based start of the problem.")
        body["end"] = serializers.IntegerField(required=False, help_text="0-based end (exclusive).")
    return inline_serializer(name, fields={"error": inline_serializer(f"{name}Body", fields=body)})


QueryErrorSerializer = error_schema("ListeningRuleError", with_position=True)
WebhookErrorSerializer = error_schema("ListeningWebhookError")


def paged(request: Request, next_cursor: str | None, data: list[Any]) -> Response:
    next_url = None
    if next_cursor:
        query = request.query_params.copy()
        query["cursor"] = next_cursor
        next_url = request.build_absolute_uri(request.path) + "?" + query.urlencode()
    return Response({"next": next_url, "previous": None, "results": data})


def paged_schema(name: str, item: type[serializers.Serializer]) -> serializers.Serializer:
    return inline_serializer(
        name=name,
        fields={
            "next": serializers.URLField(allow_null=True),
            "previous": serializers.URLField(allow_null=True),
            "results": item(many=True),
        },
    )


class TeamField(serializers.PrimaryKeyRelatedField):
    """A team the caller may choose: their own (admins: any)."""

    def get_queryset(self):  # type: ignore[no-untyped-def]
        request = self.context.get("request")
        return team_list(actor=request.user) if request is not None else Team.objects.none()
