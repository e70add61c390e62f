"""``POST /api/v1/inbound/<source>/``: the signed inbound webhook (see threads.connectors.webhook for the shape).

Order of checks, cheapest refusal first, and nothing is stored before all of them pass:
unknown source → 403; declared or actual body over ``INBOUND_WEBHOOK_MAX_BYTES`` → 413; bad signature → 403;
paused source → 403; unreadable JSON or missing fields → 400. A valid event is stored as a RawEvent and answered
202 at once; a Celery task normalizes and ingests it. A replayed ``event_id`` stores nothing and answers 200
with ``"duplicate": true``.
"""

from __future__ import annotations

from django.conf import settings
from django.db import transaction
from django.http import HttpRequest
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.parsers import JSONParser
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from crm.api import error_response
from threads.connectors import RawEventIn
from threads.connectors.webhook import (
    EVENT_TYPE,
    SIGNATURE_HEADER,
    WebhookEventSerializer,
    parse_event,
    signature_valid,
    webhook_secret,
)
from threads.models import ChannelAccount
from threads.services.pipeline import raw_events_store

_FORBIDDEN = "Unknown source or bad signature."
# The signature header as OpenAPI documents it; listening's signed webhook uses the same scheme and parameter.
SIGNATURE_PARAMETER = OpenApiParameter(
    SIGNATURE_HEADER,
    OpenApiTypes.STR,
    OpenApiParameter.HEADER,
    required=True,
    description="sha256=<hex HMAC-SHA256 of the raw body, keyed with the source's secret>",
)

AcceptedSerializer = inline_serializer(
    "InboundAccepted",
    fields={
        "status": serializers.CharField(),
        "event_id": serializers.CharField(),
        "duplicate": serializers.BooleanField(),
    },
)
ErrorSerializer = inline_serializer(
    "InboundError",
    fields={
        "error": inline_serializer(
            "InboundErrorBody",
            fields={
                "code": serializers.CharField(),
                "message": serializers.CharField(),
                "fields": serializers.DictField(child=serializers.ListField(child=serializers.CharField())),
            },
        )
    },
)


def read_limited_body(request: Request | HttpRequest, limit: int) -> bytes | None:
    """At most ``limit`` bytes of the body, or None when it is longer: refused unread when the declared
    Content-Length says so, else read up to ``limit + 1`` bytes, so a lying or missing Content-Length cannot make
    us buffer more than that. Takes a DRF request (its ``.stream``) or a plain Django one (itself a stream)."""
    declared = getattr(request, "META", {}).get("CONTENT_LENGTH") or "0"
    if declared.isdigit() and int(declared) > limit:
        return None
    stream = request.stream if hasattr(request, "stream") else request
    if stream is None:
        return b""
    chunks: list[bytes] = []
    remaining = limit + 1
    while remaining > 0:
        chunk = stream.read(min(remaining, 64 * 1024))
        if not chunk:
            break
        chunks.append(chunk)
        remaining -= len(chunk)
    body = b"".join(chunks)
    return None if len(body) > limit else body


def read_signed_body(request: Request, *, limit: int, secret: str) -> bytes | Response:
    """The raw body, when it is at most ``limit`` bytes and signed with ``secret`` (``X-Threadline-Signature``);
    otherwise the answer to give: 413 before anything past the limit is read, 403 for a bad or missing signature.
    The signature is checked over the exact bytes received, before any parsing."""
    body = read_limited_body(request, limit)
    if body is None:
        return error_response("too_large", f"The body is larger than {limit} bytes.", 413)
    if not signature_valid(secret, body, request.headers.get(SIGNATURE_HEADER)):
        return error_response("forbidden", _FORBIDDEN, 403)
    return body


class InboundWebhookView(APIView):
    """Receive one message from another system, authenticated by the HMAC signature of its body."""

    # The signature is the authentication: no session (so no CSRF), no token.
    authentication_classes: list[type] = []
    permission_classes = [AllowAny]
    parser_classes = [JSONParser]  # documents the content type; the view reads and verifies the raw body itself

    @extend_schema(
        operation_id="inbound_webhook",
        summary="Deliver a message from another system (signed webhook)",
        description=(
            "Sign the raw request body with the source's secret: `X-Threadline-Signature: sha256=` followed by "
            "the hex HMAC-SHA256. `event_id` makes retries safe: a replay stores nothing and answers 200 with "
            "`duplicate: true`. The message is processed in the background."
        ),
        auth=[],
        request=WebhookEventSerializer,
        parameters=[SIGNATURE_PARAMETER],
        responses={
            202: OpenApiResponse(AcceptedSerializer, description="Stored; it will be processed shortly."),
            200: OpenApiResponse(AcceptedSerializer, description="Already received (duplicate event_id)."),
            400: OpenApiResponse(ErrorSerializer, description="Invalid JSON or fields; nothing stored."),
            403: OpenApiResponse(ErrorSerializer, description="Unknown source, bad signature or paused source."),
            413: OpenApiResponse(ErrorSerializer, description="Body larger than INBOUND_WEBHOOK_MAX_BYTES."),
        },
    )
    def post(self, request: Request, source: str) -> Response:
        limit = settings.INBOUND_WEBHOOK_MAX_BYTES
        account = ChannelAccount.objects.filter(slug=source, kind=ChannelAccount.Kind.WEBHOOK).first()
        if account is None:
            return error_response("forbidden", _FORBIDDEN, 403)
        body = read_signed_body(request, limit=limit, secret=webhook_secret(account))
        if isinstance(body, Response):
            return body
        if account.status == ChannelAccount.Status.PAUSED:
            return error_response("paused", f"The source {source!r} is paused.", 403)
        data, errors = parse_event(body)
        if data is None:
            return error_response("invalid", "The event has invalid fields; nothing was stored.", 400, errors)
        event_id = data["event_id"]
        with transaction.atomic():
            created = raw_events_store(
                account=account,
                events=[RawEventIn(provider_event_id=event_id, event_type=EVENT_TYPE, payload=body,
                                   meta={"source": source, "remote_addr": request.META.get("REMOTE_ADDR", "")})],
            )  # fmt: skip
            if created:
                from threads.tasks import raw_events_process_task

                transaction.on_commit(lambda: raw_events_process_task.delay(account.pk))
        duplicate = not created
        return Response(
            {"status": "accepted", "event_id": event_id, "duplicate": duplicate}, status=200 if duplicate else 202
        )
