"""Rules: CRUD and the dry run."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.models import Visibility
from crm.errors import DomainError
from listening import selectors, services
from listening.api.common import CHANNEL_RE, QueryErrorSerializer, TeamField
from listening.models import ListeningRule


class RuleSerializer(serializers.ModelSerializer):
    channels = serializers.ListField(
        child=serializers.RegexField(CHANNEL_RE), required=False, help_text="Empty: every channel."
    )
    source_ids = serializers.ListField(
        child=serializers.IntegerField(min_value=1), required=False,
        help_text="Listening sources the rule reads. Empty: every source the owner may see.",
    )  # fmt: skip
    team = TeamField(required=False, allow_null=True)
    visibility = serializers.ChoiceField(choices=Visibility.choices, default=Visibility.TEAM)
    mention_count_7d = serializers.IntegerField(read_only=True, allow_null=True, default=None)
    can_edit = serializers.SerializerMethodField()

    class Meta:
        model = ListeningRule
        fields = [
            "id", "name", "query", "description", "active", "include_messages", "include_posts", "channels",
            "source_ids", "alert_in_app", "alert_cooldown_minutes", "alert_email_digest", "activity_for",
            "activity_kind", "activity_title", "activity_cooldown_minutes", "tag", "spike_alerts", "spike_k",
            "spike_min_count", "owner", "team", "visibility", "mention_count_7d", "can_edit", "digest_sent_at",
            "created_at", "updated_at",
        ]  # fmt: skip
        read_only_fields = ["id", "owner", "mention_count_7d", "can_edit", "digest_sent_at", "created_at", "updated_at"]

    def get_can_edit(self, rule: ListeningRule) -> bool:
        request = self.context.get("request")
        return bool(request) and selectors.rule_can_edit(user=request.user, rule=rule)

    def to_representation(self, rule: ListeningRule) -> dict[str, Any]:
        data = super().to_representation(rule)
        data["source_ids"] = sorted(s.pk for s in rule.sources.all())
        return data


class DryRunRequestSerializer(serializers.Serializer):
    query = serializers.CharField(max_length=4000, trim_whitespace=False, allow_blank=True)
    channels = serializers.ListField(child=serializers.RegexField(CHANNEL_RE), required=False, default=list)
    include_messages = serializers.BooleanField(default=True)
    include_posts = serializers.BooleanField(default=True)
    limit = serializers.IntegerField(min_value=1, max_value=5000, default=1000)
    max_hits = serializers.IntegerField(min_value=1, max_value=500, default=50)


class DryRunHitSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=["message", "post"])
    object_id = serializers.IntegerField()
    channel = serializers.CharField()
    occurred_at = serializers.DateTimeField()
    author = serializers.CharField()
    contact_id = serializers.IntegerField(allow_null=True)
    snippet = serializers.CharField()
    highlights = serializers.ListField(child=serializers.ListField(child=serializers.IntegerField()))
    terms = serializers.ListField(child=serializers.CharField())
    sentiment = serializers.CharField()


class QueryErrorOutSerializer(serializers.Serializer):
    message = serializers.CharField()
    position = serializers.IntegerField()
    end = serializers.IntegerField()


class DryRunResultSerializer(serializers.Serializer):
    scanned = serializers.IntegerField()
    matched = serializers.IntegerField()
    elapsed_ms = serializers.FloatField()
    error = QueryErrorOutSerializer(allow_null=True)
    hits = DryRunHitSerializer(many=True)


class RuleViewSet(viewsets.ModelViewSet):
    """Listening rules the caller may see. Writes need the owner, their manager or an admin. A query that does
    not parse is a 400 whose error carries ``position`` and ``end`` (0-based) for the editor."""

    serializer_class = RuleSerializer
    queryset = ListeningRule.objects.none()  # for the schema; requests use the selectors
    pagination_class = None
    lookup_value_regex = r"\d+"

    def get_queryset(self):  # type: ignore[override]
        return selectors.rule_list(user=self.request.user).prefetch_related("sources").order_by("name", "id")

    def get_object(self) -> ListeningRule:
        selectors.rule_get(user=self.request.user, pk=int(self.kwargs["pk"]))
        return self.get_queryset().get(pk=int(self.kwargs["pk"]))

    def handle_exception(self, exc: Exception) -> Response:
        response = super().handle_exception(exc)
        extra = getattr(exc, "extra", None)
        if isinstance(exc, DomainError) and isinstance(extra, dict) and isinstance(response.data, dict):
            response.data.get("error", {}).update(extra)
        return response

    def _out(self, rule: ListeningRule, code: int = status.HTTP_200_OK) -> Response:
        return Response(self.get_serializer(self.get_object_for(rule.pk)).data, status=code)

    def get_object_for(self, pk: int) -> ListeningRule:
        return self.get_queryset().get(pk=pk)

    @extend_schema(responses={201: RuleSerializer, 400: QueryErrorSerializer})
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        rule = services.rule_create(actor=request.user, data=dict(serializer.validated_data))
        return self._out(rule, status.HTTP_201_CREATED)

    @extend_schema(responses={200: RuleSerializer, 400: QueryErrorSerializer})
    def update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        rule = self.get_object()
        serializer = self.get_serializer(rule, data=request.data, partial=kwargs.get("partial", False))
        serializer.is_valid(raise_exception=True)
        rule = services.rule_update(actor=request.user, rule=rule, data=dict(serializer.validated_data))
        return self._out(rule)

    @extend_schema(responses={200: RuleSerializer, 400: QueryErrorSerializer})
    def partial_update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return self.update(request, *args, partial=True, **kwargs)

    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        services.rule_delete(actor=request.user, rule=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        request=DryRunRequestSerializer, responses={200: DryRunResultSerializer},
        description="What a query would match among the newest stored posts and messages the caller may read. "
        "Stores nothing. A query that does not parse answers 200 with `error` (message, position, end).",
    )  # fmt: skip
    @action(detail=False, methods=["post"], url_path="dry-run")
    def dry_run(self, request: Request) -> Response:
        serializer = DryRunRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        result = services.rule_dry_run(
            actor=request.user, query=data["query"], channels=data["channels"] or None,
            include_messages=data["include_messages"], include_posts=data["include_posts"], limit=data["limit"],
            max_hits=data["max_hits"],
        )  # fmt: skip
        error = result.error
        return Response(
            {
                "scanned": result.scanned, "matched": result.matched, "elapsed_ms": result.elapsed_ms,
                "error": {"message": error.message, "position": error.position, "end": error.end} if error else None,
                "hits": DryRunHitSerializer(result.hits, many=True).data,
            }
        )  # fmt: skip
