"""REST endpoints for channel accounts, their raw events (dead letters) and manually logged touches.

Credentials are write-only: no response ever contains them. A webhook source's secret appears once, in the
response of the request that created or rotated it.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.routers import DefaultRouter

from accounts.models import Team, Visibility
from accounts.selectors import team_list
from contacts.models import Contact
from contacts.selectors import contact_get
from crm.errors import NotFound
from threads.models import MANUAL_CHANNELS, ChannelAccount, Direction, Message, RawEvent
from threads.selectors import channels as selectors
from threads.services import channel_accounts as services
from threads.services.manual import message_log_manual
from threads.services.pipeline import raw_events_retry


class ChannelAccountSerializer(serializers.ModelSerializer):
    credentials = serializers.JSONField(
        write_only=True, required=False, help_text="E-mail: {username, password}. Never returned."
    )
    config = serializers.JSONField(
        required=False, help_text="E-mail: {imap_host, imap_port, smtp_host, smtp_port, folders}."
    )
    team = serializers.PrimaryKeyRelatedField(queryset=Team.objects.all(), required=False, allow_null=True)
    visibility = serializers.ChoiceField(choices=Visibility.choices, default=Visibility.PRIVATE)
    coverage = serializers.FloatField(read_only=True, allow_null=True)

    class Meta:
        model = ChannelAccount
        fields = [
            "id", "kind", "name", "slug", "address", "config", "credentials", "unknown_policy", "owner", "team",
            "visibility", "status", "last_sync_at", "last_success_at", "last_error", "consecutive_failures",
            "next_sync_at", "reported_count", "stored_count", "coverage", "created_at",
        ]  # fmt: skip
        read_only_fields = [
            "id", "owner", "status", "last_sync_at", "last_success_at", "last_error", "consecutive_failures",
            "next_sync_at", "reported_count", "stored_count", "coverage", "created_at",
        ]  # fmt: skip
        extra_kwargs = {"slug": {"validators": []}}  # uniqueness is the service's to report, with its message

    def validate_team(self, team: Team | None) -> Team | None:
        if team is not None and not team_list(actor=self.context["request"].user).filter(pk=team.pk).exists():
            raise serializers.ValidationError(f'Invalid pk "{team.pk}" - object does not exist.')
        return team

    def validate_credentials(self, value: Any) -> Any:
        if not isinstance(value, dict):
            raise serializers.ValidationError("Expected an object.")
        return value

    def validate_config(self, value: Any) -> Any:
        if not isinstance(value, dict):
            raise serializers.ValidationError("Expected an object.")
        return value


class ChannelAccountCreatedSerializer(ChannelAccountSerializer):
    secret = serializers.SerializerMethodField(help_text="Webhook sources only, shown this once.")

    class Meta(ChannelAccountSerializer.Meta):
        fields = [*ChannelAccountSerializer.Meta.fields, "secret"]

    def get_secret(self, account: ChannelAccount) -> str | None:
        return getattr(account, "issued_secret", "") or None


SecretSerializer = inline_serializer("WebhookSecret", fields={"secret": serializers.CharField()})


class ChannelAccountViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin, mixins.UpdateModelMixin,
    viewsets.GenericViewSet,
):  # fmt: skip
    """Connected mailboxes and webhook sources the caller may see. Filters: ``kind``, ``status``."""

    serializer_class = ChannelAccountSerializer
    queryset = ChannelAccount.objects.none()  # for the schema; requests use get_queryset
    lookup_value_regex = r"\d+"

    def get_queryset(self):  # type: ignore[override]
        params = self.request.query_params
        return selectors.channel_account_list(
            user=self.request.user, kind=params.get("kind", ""), status=params.get("status", "")
        )

    def get_object(self) -> ChannelAccount:
        return selectors.channel_account_get(user=self.request.user, pk=int(self.kwargs["pk"]))

    @extend_schema(responses={201: ChannelAccountCreatedSerializer})
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        account = services.channel_account_create(actor=request.user, **serializer.validated_data)
        data = ChannelAccountCreatedSerializer(account, context=self.get_serializer_context()).data
        return Response(data, status=status.HTTP_201_CREATED)

    def perform_update(self, serializer: serializers.BaseSerializer) -> None:
        data = dict(serializer.validated_data)
        data.pop("kind", None)
        serializer.instance = services.channel_account_update(
            account=serializer.instance, actor=self.request.user, **data
        )

    @extend_schema(request=None, responses={200: ChannelAccountSerializer})
    @action(detail=True, methods=["post"])
    def pause(self, request: Request, pk: str | None = None) -> Response:
        account = services.channel_account_pause(account=self.get_object(), actor=request.user)
        return Response(ChannelAccountSerializer(account, context=self.get_serializer_context()).data)

    @extend_schema(request=None, responses={200: ChannelAccountSerializer})
    @action(detail=True, methods=["post"])
    def resume(self, request: Request, pk: str | None = None) -> Response:
        account = services.channel_account_resume(account=self.get_object(), actor=request.user)
        return Response(ChannelAccountSerializer(account, context=self.get_serializer_context()).data)

    @extend_schema(request=None, responses={202: None})
    @action(detail=True, methods=["post"])
    def sync(self, request: Request, pk: str | None = None) -> Response:
        services.channel_account_sync_now(account=self.get_object(), actor=request.user)
        return Response({"status": "queued"}, status=status.HTTP_202_ACCEPTED)

    @extend_schema(request=None, responses={200: SecretSerializer})
    @action(detail=True, methods=["post"], url_path="rotate-secret")
    def rotate_secret(self, request: Request, pk: str | None = None) -> Response:
        secret = services.webhook_secret_rotate(account=self.get_object(), actor=request.user)
        return Response({"secret": secret})


class RawEventSerializer(serializers.ModelSerializer):
    size = serializers.SerializerMethodField()

    class Meta:
        model = RawEvent
        fields = [
            "id", "channel_account", "provider_event_id", "event_type", "content_type", "status", "error",
            "attempts", "received_at", "processed_at", "meta", "size",
        ]  # fmt: skip
        read_only_fields = fields

    def get_size(self, event: RawEvent) -> int | None:
        # The payload is deferred in lists; its size is only known on the detail page.
        if "payload" in event.get_deferred_fields():
            return None
        return len(event.payload or b"")


class RawEventDetailSerializer(RawEventSerializer):
    payload_preview = serializers.SerializerMethodField(help_text="The first 2 KB, decoded with replacement.")

    class Meta(RawEventSerializer.Meta):
        fields = [*RawEventSerializer.Meta.fields, "payload_preview"]
        read_only_fields = fields

    def get_payload_preview(self, event: RawEvent) -> str:
        return bytes(event.payload or b"")[:2048].decode("utf-8", errors="replace")


RetriedSerializer = inline_serializer("RawEventRetried", fields={"retried": serializers.IntegerField()})


class RawEventViewSet(viewsets.ReadOnlyModelViewSet):
    """What providers delivered, for the accounts the caller may see. ``?status=dead`` lists dead letters."""

    serializer_class = RawEventSerializer
    queryset = RawEvent.objects.none()
    lookup_value_regex = r"\d+"

    def get_queryset(self):  # type: ignore[override]
        params = self.request.query_params
        account = params.get("channel_account", "")
        if account and not account.isdigit():
            raise serializers.ValidationError({"channel_account": ["Must be an id."]})
        return selectors.raw_event_list(
            user=self.request.user, status=params.get("status", ""), account_id=int(account) if account else None
        )

    def get_object(self) -> RawEvent:
        return selectors.raw_event_get(user=self.request.user, pk=int(self.kwargs["pk"]))

    def get_serializer_class(self) -> type[serializers.BaseSerializer]:
        return RawEventDetailSerializer if self.action == "retrieve" else RawEventSerializer

    @extend_schema(
        parameters=[OpenApiParameter("status", enum=RawEvent.Status.values), OpenApiParameter("channel_account", int)]
    )
    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().list(request, *args, **kwargs)

    @extend_schema(request=None, responses={200: RetriedSerializer})
    @action(detail=True, methods=["post"])
    def retry(self, request: Request, pk: str | None = None) -> Response:
        """Put a dead letter back in the queue (after the normalizer was fixed)."""
        event = self.get_object()
        if event.status != RawEvent.Status.DEAD:
            raise serializers.ValidationError(
                {"status": [f"Only dead letters can be retried; this is {event.status}."]}
            )
        return Response({"retried": raw_events_retry(raw_event_ids=[event.pk])})


class ManualMessageSerializer(serializers.Serializer):
    contact = serializers.PrimaryKeyRelatedField(queryset=Contact.objects.all())
    channel = serializers.ChoiceField(choices=[(c.value, c.label) for c in MANUAL_CHANNELS])
    direction = serializers.ChoiceField(choices=Direction.choices, default=Direction.OUTBOUND)
    subject = serializers.CharField(max_length=300, required=False, allow_blank=True, default="")
    body = serializers.CharField(required=False, allow_blank=True, default="", max_length=100_000)
    sent_at = serializers.DateTimeField(required=False, allow_null=True, default=None)
    duration_minutes = serializers.IntegerField(required=False, allow_null=True, default=None)
    outcome = serializers.CharField(max_length=64, required=False, allow_blank=True, default="")
    participants = serializers.ListField(
        child=serializers.CharField(max_length=200), required=False, default=list, max_length=50
    )

    def validate_contact(self, contact: Contact) -> Contact:
        try:
            return contact_get(user=self.context["request"].user, pk=contact.pk)
        except NotFound:
            raise serializers.ValidationError(f'Invalid pk "{contact.pk}" - object does not exist.') from None


class LoggedMessageSerializer(serializers.ModelSerializer):
    class Meta:
        model = Message
        fields = [
            "id", "thread", "contact", "channel", "direction", "sent_at", "subject", "body_text", "meta",
            "created_by", "created_at",
        ]  # fmt: skip
        read_only_fields = fields


class ManualMessageViewSet(viewsets.GenericViewSet):
    """Log a call, meeting, in-person touch, voicemail or note in a contact's thread."""

    serializer_class = ManualMessageSerializer
    queryset = Message.objects.none()

    @extend_schema(request=ManualMessageSerializer, responses={201: LoggedMessageSerializer})
    def create(self, request: Request) -> Response:
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        message = message_log_manual(actor=request.user, **serializer.validated_data)
        return Response(LoggedMessageSerializer(message).data, status=status.HTTP_201_CREATED)


def register_routes(router: DefaultRouter) -> None:
    router.register("channel-accounts", ChannelAccountViewSet, basename="channel-account")
    router.register("raw-events", RawEventViewSet, basename="raw-event")
    router.register("manual-messages", ManualMessageViewSet, basename="manual-message")
