"""REST endpoints of conversations: threads (list, retrieve, assign, close, reopen, read, messages, reply, split,
merge) and messages (retrieve, move). Thin: validate, call a selector or a service, serialize.

Visibility comes from threads.selectors: a thread the caller may not see is a 404, and a private mailbox's
message has ``null`` body fields (and no attachments) for anyone but its owner.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.urls import reverse
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.routers import DefaultRouter

from accounts.models import User
from contacts.identities import normalize_identity
from crm.errors import NotFound
from threads import selectors
from threads.connectors import Party
from threads.models import Channel, Message, Thread
from threads.selectors import ACCOUNT_IDENTITY_KIND, Page, latest_inbound
from threads.selectors import channels as channel_selectors
from threads.services import conversations
from threads.services.send import ACCOUNT_CHANNEL, message_send

BODY_FIELDS = ("body_text", "body_display", "body_html", "recipients", "attachments")


class ThreadSerializer(serializers.ModelSerializer):
    contact_name = serializers.CharField(source="contact.display_name", read_only=True)
    is_unread = serializers.BooleanField(read_only=True, required=False, allow_null=True, default=None)
    snippet = serializers.CharField(read_only=True, required=False, allow_null=True, default=None)

    class Meta:
        model = Thread
        fields = [
            "id", "contact", "contact_name", "topic", "status", "assignee", "participants", "message_count",
            "last_message_at", "last_inbound_at", "last_outbound_at", "awaiting_reply", "last_subject",
            "last_channel", "is_unread", "snippet", "created_at",
        ]  # fmt: skip
        read_only_fields = fields


class AttachmentOutSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    content_type = serializers.CharField()
    size = serializers.IntegerField()
    omitted = serializers.CharField()
    url = serializers.SerializerMethodField()

    def get_url(self, obj: Any) -> str | None:
        return reverse("threads:attachment", args=[obj.pk]) if obj.file else None


class MessageSerializer(serializers.ModelSerializer):
    body_visible = serializers.BooleanField(read_only=True)
    attachments = AttachmentOutSerializer(many=True, read_only=True, allow_null=True)
    body_text = serializers.CharField(read_only=True, allow_null=True)
    body_display = serializers.CharField(read_only=True, allow_null=True)
    body_html = serializers.CharField(read_only=True, allow_null=True, help_text="Sanitized with nh3 at ingest.")
    recipients = serializers.JSONField(read_only=True, allow_null=True)

    class Meta:
        model = Message
        fields = [
            "id", "thread", "contact", "channel_account", "channel", "direction", "provider_thread_key",
            "author_address", "author_name", "recipients", "sent_at", "subject", "body_text", "body_display",
            "body_html", "body_visible", "delivery", "attachments", "created_by", "created_at",
        ]  # fmt: skip
        read_only_fields = fields

    def to_representation(self, instance: Message) -> dict[str, Any]:
        data = super().to_representation(instance)
        if not getattr(instance, "body_visible", False):
            # A private mailbox's message: the caller learns that it happened, not what it said.
            for name in BODY_FIELDS:
                data[name] = None
        return data


class AssignSerializer(serializers.Serializer):
    assignee = serializers.IntegerField(allow_null=True, help_text="A user id, or null to unassign.")


class PartySerializer(serializers.Serializer):
    address = serializers.CharField(max_length=320)
    name = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")


class ReplySerializer(serializers.Serializer):
    account = serializers.IntegerField(help_text="The channel account to send from (see reply options).")
    to = PartySerializer(many=True, help_text="Recipients; their kind follows the account (e-mail, phone …).")
    cc = PartySerializer(many=True, required=False, default=list)
    subject = serializers.CharField(max_length=998, required=False, allow_blank=True, default="")
    body_text = serializers.CharField(max_length=200_000, allow_blank=True)
    mode = serializers.ChoiceField(
        choices=[("", "public reply"), ("dm", "direct message")], required=False, default="",
        help_text='Twitter/X only: "" answers the tweet in public, "dm" sends a direct message.',
    )  # fmt: skip


class SplitSerializer(serializers.Serializer):
    message_ids = serializers.ListField(child=serializers.IntegerField(), allow_empty=False)
    topic = serializers.CharField(max_length=200)


class MergeSerializer(serializers.Serializer):
    target = serializers.IntegerField(help_text="The thread (same contact) that receives this one's messages.")


class MoveSerializer(serializers.Serializer):
    topic = serializers.CharField(max_length=200, allow_blank=True, help_text="Empty: the main thread.")
    whole_conversation = serializers.BooleanField(default=False)


def _flag(value: str | None) -> bool:
    return (value or "").lower() in ("1", "true", "yes", "on")


def _page_size(request: Request, default: int = selectors.DEFAULT_LIMIT) -> int:
    raw = request.query_params.get("page_size", "")
    if not raw:
        return default
    if not raw.isdigit() or not 1 <= int(raw) <= selectors.MAX_LIMIT:
        raise serializers.ValidationError({"page_size": [f"A number from 1 to {selectors.MAX_LIMIT}."]})
    return int(raw)


def _paged(request: Request, page: Page, data: list[Any], param: str = "cursor") -> Response:
    next_url = None
    if page.next:
        query = request.query_params.copy()
        query[param] = page.next
        next_url = request.build_absolute_uri(request.path) + "?" + query.urlencode()
    return Response({"next": next_url, "previous": None, "results": data})


def _paged_schema(name: str, item: type[serializers.Serializer]) -> serializers.Serializer:
    return inline_serializer(
        name=name,
        fields={
            "next": serializers.URLField(allow_null=True),
            "previous": serializers.URLField(allow_null=True),
            "results": item(many=True),
        },
    )


LIST_PARAMS = [
    OpenApiParameter("channel", str, enum=Channel.values, description="Threads with a message on this channel."),
    OpenApiParameter("assignee", str, description="`me`, `none` (unassigned) or a user id."),
    OpenApiParameter("unread", bool, description="Only threads with messages I have not read."),
    OpenApiParameter("waiting", bool, description="Only threads whose newest message is inbound."),
    OpenApiParameter("status", str, enum=Thread.Status.values),
    OpenApiParameter("cursor", str, description="The opaque cursor of the `next` link."),
    OpenApiParameter("page_size", int, description=f"1-{selectors.MAX_LIMIT}, default {selectors.DEFAULT_LIMIT}."),
]


class ThreadViewSet(viewsets.GenericViewSet):
    """Conversation threads the caller may see (those of contacts they may see), newest first."""

    serializer_class = ThreadSerializer
    queryset = Thread.objects.none()  # for the schema; requests use the selectors
    pagination_class = None
    lookup_value_regex = r"\d+"

    def get_object(self) -> Thread:
        return selectors.thread_get(user=self.request.user, pk=int(self.kwargs["pk"]))

    def _thread_data(self, thread: Thread) -> dict[str, Any]:
        return ThreadSerializer(selectors.thread_get(user=self.request.user, pk=thread.pk)).data

    @extend_schema(parameters=LIST_PARAMS, responses={200: _paged_schema("ThreadPage", ThreadSerializer)})
    def list(self, request: Request) -> Response:
        params = request.query_params
        page = selectors.inbox_threads(
            user=request.user, channel=params.get("channel") or None, assignee=params.get("assignee") or None,
            unread=_flag(params.get("unread")), waiting=_flag(params.get("waiting")),
            status=params.get("status") or None, cursor=params.get("cursor"), limit=_page_size(request),
        )  # fmt: skip
        return _paged(request, page, ThreadSerializer(page.items, many=True).data)

    def retrieve(self, request: Request, pk: str | None = None) -> Response:
        return Response(ThreadSerializer(self.get_object()).data)

    @extend_schema(request=AssignSerializer, responses={200: ThreadSerializer})
    @action(detail=True, methods=["post"])
    def assign(self, request: Request, pk: str | None = None) -> Response:
        thread = self.get_object()
        serializer = AssignSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        assignee = None
        if serializer.validated_data["assignee"] is not None:
            assignee = User.objects.filter(pk=serializer.validated_data["assignee"], is_active=True).first()
            if assignee is None:
                raise serializers.ValidationError({"assignee": ["No such active user."]})
        conversations.thread_assign(thread=thread, actor=request.user, assignee=assignee)
        return Response(self._thread_data(thread))

    @extend_schema(request=None, responses={200: ThreadSerializer})
    @action(detail=True, methods=["post"])
    def close(self, request: Request, pk: str | None = None) -> Response:
        thread = conversations.thread_close(thread=self.get_object(), actor=request.user)
        return Response(self._thread_data(thread))

    @extend_schema(request=None, responses={200: ThreadSerializer})
    @action(detail=True, methods=["post"])
    def reopen(self, request: Request, pk: str | None = None) -> Response:
        thread = conversations.thread_reopen(thread=self.get_object(), actor=request.user)
        return Response(self._thread_data(thread))

    @extend_schema(request=None, responses={200: ThreadSerializer})
    @action(detail=True, methods=["post"])
    def read(self, request: Request, pk: str | None = None) -> Response:
        thread = self.get_object()
        conversations.thread_mark_read(thread=thread, user=request.user)
        return Response(self._thread_data(thread))

    @extend_schema(
        parameters=[
            OpenApiParameter("before", str, description="The opaque cursor of the `next` link (older messages)."),
            OpenApiParameter("page_size", int),
        ],
        responses={200: _paged_schema("MessagePage", MessageSerializer)},
    )
    @action(detail=True, methods=["get"])
    def messages(self, request: Request, pk: str | None = None) -> Response:
        """The newest page of messages, oldest first within the page; ``next`` pages back in time."""
        page = selectors.thread_messages(
            user=request.user, thread=self.get_object(), before=request.query_params.get("before"),
            limit=_page_size(request),
        )  # fmt: skip
        return _paged(request, page, MessageSerializer(page.items, many=True).data, param="before")

    @extend_schema(request=ReplySerializer, responses={201: MessageSerializer})
    @action(detail=True, methods=["post"])
    def reply(self, request: Request, pk: str | None = None) -> Response:
        """Store an outbound message in the thread (delivery ``queued``) and queue its sending."""
        thread = self.get_object()
        serializer = ReplySerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        try:
            account = channel_selectors.channel_account_get(user=request.user, pk=data["account"])
        except NotFound:
            raise serializers.ValidationError({"account": ["No such channel account."]}) from None
        kind = ACCOUNT_IDENTITY_KIND.get(account.kind, "other")

        def parties(items: list[dict[str, str]], field: str, role: str) -> list[Party]:
            out = []
            for item in items:
                try:
                    address, handle = normalize_identity(kind, item["address"])
                except DjangoValidationError as exc:
                    raise serializers.ValidationError({field: exc.messages}) from None
                out.append(Party(kind, address, item.get("name", ""), role, handle))
            return out

        to = parties(data["to"], "to", "to")
        cc = parties(data["cc"], "cc", "cc")
        reply_to = latest_inbound(thread=thread, channel=ACCOUNT_CHANNEL.get(account.kind))
        message = message_send(
            actor=request.user, thread=thread, account=account, to=to, cc=cc, subject=data["subject"],
            body_text=data["body_text"], reply_to=reply_to, mode=data["mode"],
        )  # fmt: skip
        return Response(MessageSerializer(selectors.message_get(user=request.user, pk=message.pk)).data, status=201)

    @extend_schema(request=SplitSerializer, responses={201: ThreadSerializer})
    @action(detail=True, methods=["post"])
    def split(self, request: Request, pk: str | None = None) -> Response:
        thread = self.get_object()
        serializer = SplitSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        target = conversations.thread_split(actor=request.user, thread=thread, **serializer.validated_data)
        return Response(self._thread_data(target), status=201)

    @extend_schema(request=MergeSerializer, responses={200: ThreadSerializer})
    @action(detail=True, methods=["post"])
    def merge(self, request: Request, pk: str | None = None) -> Response:
        """Move this thread's messages into ``target`` and delete this thread. Returns the surviving thread: the
        main thread is never deleted, so merging it into a topic folds the topic into it instead."""
        source = self.get_object()
        serializer = MergeSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            target = selectors.thread_get(user=request.user, pk=serializer.validated_data["target"])
        except NotFound:
            raise serializers.ValidationError({"target": ["No such thread."]}) from None
        survivor = conversations.thread_merge(actor=request.user, source=source, target=target)
        return Response(self._thread_data(survivor))


class MessageViewSet(viewsets.GenericViewSet):
    """Single messages: in a thread the caller may see, or unmatched in a channel account the caller may see."""

    serializer_class = MessageSerializer
    queryset = Message.objects.none()
    pagination_class = None
    lookup_value_regex = r"\d+"

    def get_object(self) -> Message:
        return selectors.message_get(user=self.request.user, pk=int(self.kwargs["pk"]))

    def retrieve(self, request: Request, pk: str | None = None) -> Response:
        return Response(MessageSerializer(self.get_object()).data)

    @extend_schema(
        request=MoveSerializer,
        responses={
            200: inline_serializer("MessageMoved", {"message": MessageSerializer(), "thread": ThreadSerializer()})
        },
    )
    @action(detail=True, methods=["post"])
    def move(self, request: Request, pk: str | None = None) -> Response:
        """Move the message (or its whole conversation) into the contact's topic thread, created if missing."""
        message = self.get_object()
        serializer = MoveSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        target = conversations.message_move_to_topic(actor=request.user, message=message, **serializer.validated_data)
        return Response(
            {
                "message": MessageSerializer(selectors.message_get(user=request.user, pk=message.pk)).data,
                "thread": ThreadSerializer(selectors.thread_get(user=request.user, pk=target.pk)).data,
            }
        )


def register_routes(router: DefaultRouter) -> None:
    router.register("threads", ThreadViewSet, basename="thread")
    router.register("messages", MessageViewSet, basename="message")
