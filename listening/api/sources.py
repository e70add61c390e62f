"""Sources (a webhook's secret shown once; fetch now) and spike alerts."""

from __future__ import annotations

from typing import Any

from django.urls import reverse
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.models import Visibility
from listening import selectors, services
from listening.api.common import TeamField
from listening.models import ListeningSource, SpikeAlert
from threads.models import ChannelAccount


class SourceSerializer(serializers.ModelSerializer):
    channel_account = serializers.PrimaryKeyRelatedField(
        queryset=ChannelAccount.objects.all(), required=False, allow_null=True,
        help_text="Twitter/X search and Facebook page sources: the connected account they run through.",
    )  # fmt: skip
    config = serializers.JSONField(
        required=False, help_text='twitter_search: {"query"} (empty: built from the rules); facebook_page: '
        '{"page_id"}; rss: {"channel": "blog_comment"} for a comments feed.',
    )  # fmt: skip
    team = TeamField(required=False, allow_null=True)
    visibility = serializers.ChoiceField(choices=Visibility.choices, default=Visibility.TEAM)
    slug = serializers.CharField(max_length=80, required=False, allow_blank=True)
    webhook_url = serializers.SerializerMethodField()

    class Meta:
        model = ListeningSource
        fields = [
            "id", "name", "kind", "slug", "url", "channel_account", "config", "status", "fetch_interval_s", "owner",
            "team", "visibility", "webhook_url", "last_fetched_at", "next_fetch_at", "last_error",
            "consecutive_failures", "created_at",
        ]  # fmt: skip
        read_only_fields = [
            "id", "owner", "webhook_url", "last_fetched_at", "next_fetch_at", "last_error", "consecutive_failures",
            "created_at",
        ]  # fmt: skip
        extra_kwargs = {"status": {"required": False}, "fetch_interval_s": {"required": False}}

    def validate_config(self, value: Any) -> Any:
        if not isinstance(value, dict):
            raise serializers.ValidationError("Expected an object.")
        return value

    def get_webhook_url(self, source: ListeningSource) -> str | None:
        if source.kind != ListeningSource.Kind.WEBHOOK:
            return None
        path = reverse("listening_webhook", kwargs={"slug": source.slug})
        request = self.context.get("request")
        return request.build_absolute_uri(path) if request is not None else path


class SourceCreatedSerializer(SourceSerializer):
    secret = serializers.SerializerMethodField(help_text="Webhook sources only, shown this once.")

    class Meta(SourceSerializer.Meta):
        fields = [*SourceSerializer.Meta.fields, "secret"]

    def get_secret(self, source: ListeningSource) -> str | None:
        return getattr(source, "issued_secret", "") or None


SecretSerializer = inline_serializer("ListeningSourceSecret", fields={"secret": serializers.CharField()})


class SourceViewSet(viewsets.ModelViewSet):
    """Listening sources the caller may see: RSS/Atom feeds, signed webhooks, Twitter/X searches and Facebook page
    feeds (through a connected account). A webhook's secret is in the response that created or rotated it, once."""

    serializer_class = SourceSerializer
    queryset = ListeningSource.objects.none()  # for the schema; requests use the selectors
    pagination_class = None
    lookup_value_regex = r"\d+"

    def get_queryset(self):  # type: ignore[override]
        return selectors.source_list(user=self.request.user).order_by("name", "id")

    def get_object(self) -> ListeningSource:
        return selectors.source_get(user=self.request.user, pk=int(self.kwargs["pk"]))

    @extend_schema(responses={201: SourceCreatedSerializer})
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        source = services.source_create(actor=request.user, data=dict(serializer.validated_data))
        data = SourceCreatedSerializer(source, context=self.get_serializer_context()).data
        return Response(data, status=status.HTTP_201_CREATED)

    def update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        source = self.get_object()
        serializer = self.get_serializer(source, data=request.data, partial=kwargs.get("partial", False))
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        if data.get("kind") == source.kind:
            data.pop("kind")
        if data.get("slug") in ("", source.slug):
            data.pop("slug", None)
        source = services.source_update(actor=request.user, source=source, data=data)
        return Response(self.get_serializer(source).data)

    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        services.source_delete(actor=request.user, source=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=None, responses={200: SecretSerializer})
    @action(detail=True, methods=["post"], url_path="rotate-secret")
    def rotate_secret(self, request: Request, pk: str | None = None) -> Response:
        return Response({"secret": services.source_secret_rotate(actor=request.user, source=self.get_object())})

    @extend_schema(
        request=None, responses={202: inline_serializer("ListeningFetchQueued", {"status": serializers.CharField()})}
    )
    @action(detail=True, methods=["post"])
    def fetch(self, request: Request, pk: str | None = None) -> Response:
        services.source_fetch_now(actor=request.user, source=self.get_object())
        return Response({"status": "queued"}, status=status.HTTP_202_ACCEPTED)


# --- Spike alerts -------------------------------------------------------------------------------------------------


class SpikeSerializer(serializers.ModelSerializer):
    rule_name = serializers.CharField(source="rule.name", read_only=True)

    class Meta:
        model = SpikeAlert
        fields = ["id", "rule", "rule_name", "window_end", "count", "mean", "stddev", "k", "created_at"]
        read_only_fields = fields


class SpikeViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    """The newest spike alerts of the rules the caller may see."""

    serializer_class = SpikeSerializer
    queryset = SpikeAlert.objects.none()  # for the schema; requests use the selectors
    pagination_class = None

    @extend_schema(parameters=[OpenApiParameter("limit", int, description=f"1-{selectors.MAX_LIMIT}, default 20.")])
    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        raw = request.query_params.get("limit", "20")
        if not raw.isdigit() or not 1 <= int(raw) <= selectors.MAX_LIMIT:
            raise serializers.ValidationError({"limit": [f"A number from 1 to {selectors.MAX_LIMIT}."]})
        return Response(SpikeSerializer(selectors.spike_list(user=request.user, limit=int(raw)), many=True).data)
