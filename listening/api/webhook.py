"""The signed webhook through which other systems push public posts: POST /api/v1/listening/sources/<slug>/posts/."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from django.utils import timezone
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.parsers import JSONParser
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from contacts.identities import normalize_identity
from crm.api import error_response
from listening import services
from listening.api.common import CHANNEL_RE, WebhookErrorSerializer
from listening.models import ListeningSource
from threads.api.inbound import SIGNATURE_PARAMETER, read_signed_body
from threads.connectors import Party, PublicPost
from threads.connectors.webhook import PARTY_KINDS


class WebhookAuthorSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=PARTY_KINDS, required=False, help_text="A contact identity kind.")
    address = serializers.CharField(max_length=320, required=False, help_text="E-mail, phone, handle or user id.")
    name = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    handle = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if bool(attrs.get("kind")) != bool(attrs.get("address")):
            raise serializers.ValidationError({"address": ["Give both kind and address, or neither."]})
        if attrs.get("kind"):
            try:
                normalized, handle = normalize_identity(attrs["kind"], attrs["address"])
            except DjangoValidationError as exc:
                raise serializers.ValidationError({"address": exc.messages}) from None
            attrs = {**attrs, "normalized": normalized, "handle": attrs.get("handle") or handle}
        return attrs


class WebhookPostSerializer(serializers.Serializer):
    """One public post pushed by another system."""

    id = serializers.CharField(max_length=512, help_text="Unique within the source; a retry reuses it.")
    text = serializers.CharField(max_length=100_000, allow_blank=True, trim_whitespace=False)
    title = serializers.CharField(max_length=1000, required=False, allow_blank=True, default="")
    channel = serializers.RegexField(CHANNEL_RE, required=False, default="web", help_text="blog, news, web …")
    posted_at = serializers.DateTimeField(required=False, help_text="ISO 8601; defaults to the time of receipt.")
    url = serializers.URLField(max_length=2000, required=False, allow_blank=True, default="")
    author = WebhookAuthorSerializer(required=False, allow_null=True, default=None)
    lang = serializers.RegexField(
        r"^[A-Za-z]{2,3}([-_][A-Za-z0-9]{1,8})?$", required=False, allow_blank=True, default=""
    )
    latitude = serializers.FloatField(min_value=-90, max_value=90, required=False, allow_null=True, default=None)
    longitude = serializers.FloatField(min_value=-180, max_value=180, required=False, allow_null=True, default=None)
    place = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    deleted = serializers.BooleanField(required=False, default=False, help_text="The post was deleted at the source.")

    def validate_posted_at(self, value: dt.datetime) -> dt.datetime:
        if value > timezone.now() + dt.timedelta(days=1):
            raise serializers.ValidationError("Is in the future.")
        return value


class WebhookBatchSerializer(serializers.Serializer):
    posts = WebhookPostSerializer(many=True, help_text="Or send one post object as the whole body.")


WebhookResultSerializer = inline_serializer(
    "ListeningWebhookResult",
    fields={
        "received": serializers.IntegerField(),
        "created": serializers.IntegerField(),
        "duplicates": serializers.IntegerField(),
        "deleted": serializers.IntegerField(),
        "mentions": serializers.IntegerField(),
    },
)
_FORBIDDEN = "Unknown source or bad signature."


def _flatten(errors: Any, prefix: str = "") -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    if isinstance(errors, dict):
        for key, value in errors.items():
            name = "" if key == "non_field_errors" else str(key)
            out.update(_flatten(value, f"{prefix}.{name}".strip(".") if name else prefix))
    elif isinstance(errors, list) and errors and all(isinstance(e, str) for e in errors):
        out[prefix or "non_field_errors"] = [str(e) for e in errors]
    elif isinstance(errors, list):
        for i, value in enumerate(errors):
            if value:
                out.update(_flatten(value, f"{prefix}.{i}".strip(".")))
    elif errors:
        out[prefix or "non_field_errors"] = [str(errors)]
    return out


def parse_posts(body: bytes, *, received_at: dt.datetime) -> tuple[list[PublicPost] | None, dict[str, list[str]]]:
    """(posts, {}) or (None, field errors) for a webhook body: one post object, or {"posts": [...]}."""
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, ValueError) as exc:
        return None, {"body": [f"Not valid JSON: {exc}"]}
    if not isinstance(data, dict):
        return None, {"body": ['Expected a JSON object: one post, or {"posts": [...]}.']}
    limit = settings.LISTENING_WEBHOOK_MAX_POSTS
    if "posts" in data:
        if not isinstance(data["posts"], list):
            return None, {"posts": ["Expected a list of posts."]}
        if not data["posts"]:
            return None, {"posts": ["Send at least one post."]}
        if len(data["posts"]) > limit:
            return None, {"posts": [f"At most {limit} posts per request."]}
        serializer: serializers.Serializer = WebhookPostSerializer(data=data["posts"], many=True)
        prefix = "posts"
    else:
        serializer = WebhookPostSerializer(data=data)
        prefix = ""
    if not serializer.is_valid():
        return None, _flatten(serializer.errors, prefix)
    items = serializer.validated_data if prefix else [serializer.validated_data]
    posts = []
    for item in items:
        author = item.get("author") or None
        party = None
        if author:
            party = Party(
                kind=author.get("kind", ""), address=author.get("normalized", ""), name=author.get("name", ""),
                role="from", handle=author.get("handle", ""),
            )  # fmt: skip
        posts.append(
            PublicPost(
                external_id=item["id"], channel=item["channel"], text=item["text"], title=item["title"],
                posted_at=item.get("posted_at") or received_at, url=item["url"], author=party, lang=item["lang"],
                latitude=item["latitude"], longitude=item["longitude"], place=item["place"], deleted=item["deleted"],
            )
        )  # fmt: skip
    return posts, {}


class ListeningWebhookView(APIView):
    """Receive public posts from another system, authenticated by the HMAC signature of the body."""

    # The signature is the authentication: no session (so no CSRF), no token.
    authentication_classes: list[type] = []
    permission_classes = [AllowAny]
    parser_classes = [JSONParser]  # documents the content type; the view reads and verifies the raw body itself

    @extend_schema(
        operation_id="listening_webhook_posts",
        summary="Push public posts into a listening source (signed webhook)",
        description=(
            "Sign the raw request body with the source's secret: `X-Threadline-Signature: sha256=` followed by "
            "the hex HMAC-SHA256 (the same scheme as `/api/v1/inbound/`). The body is one post, or "
            '`{"posts": [...]}` with up to LISTENING_WEBHOOK_MAX_POSTS posts. A post\'s `id` makes retries '
            "safe: a post already stored is counted in `duplicates` and stored nothing twice. The posts are "
            "stored and run through the rules before the answer."
        ),
        auth=[],
        request=WebhookBatchSerializer,
        parameters=[SIGNATURE_PARAMETER],
        responses={
            200: OpenApiResponse(WebhookResultSerializer, description="Stored (or already stored) and evaluated."),
            400: OpenApiResponse(WebhookErrorSerializer, description="Invalid JSON or fields; nothing stored."),
            403: OpenApiResponse(WebhookErrorSerializer, description="Unknown source, bad signature or paused."),
            413: OpenApiResponse(WebhookErrorSerializer, description="Body larger than LISTENING_WEBHOOK_MAX_BYTES."),
        },
    )
    def post(self, request: Request, slug: str) -> Response:
        limit = settings.LISTENING_WEBHOOK_MAX_BYTES
        source = ListeningSource.objects.filter(slug=slug, kind=ListeningSource.Kind.WEBHOOK).first()
        if source is None:
            return error_response("forbidden", _FORBIDDEN, 403)
        body = read_signed_body(request, limit=limit, secret=source.secret)
        if isinstance(body, Response):
            return body
        if source.status == ListeningSource.Status.PAUSED:
            return error_response("paused", f"The source {slug!r} is paused.", 403)
        posts, errors = parse_posts(body, received_at=timezone.now())
        if posts is None:
            return error_response("invalid", "The posts have invalid fields; nothing was stored.", 400, errors)
        result = services.posts_ingest(source=source, posts=posts)
        ListeningSource.objects.filter(pk=source.pk).update(last_fetched_at=timezone.now())
        return Response(
            {
                "received": len(posts), "created": result.posts_created, "duplicates": result.posts_duplicate,
                "deleted": result.posts_deleted, "mentions": len(result.mentions),
            }
        )  # fmt: skip
