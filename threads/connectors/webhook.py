"""Signed inbound webhook: any system (IM, Skype, voicemail transcription, blog comments …) posts one message
per request to ``POST /api/v1/inbound/<source>/``.

The request is authenticated by an HMAC-SHA256 of its raw body with the source's secret
(``X-Threadline-Signature: sha256=<hex>``); ``event_id`` makes retries idempotent (it is the RawEvent's
provider event id). The JSON shape::

    {
      "event_id": "im-48213",                 # required, unique within the source, at most 255 characters
      "channel": "im",                        # im, skype, voicemail, blog_comment, webhook, call, meeting, note …
      "direction": "inbound",                 # or "outbound" (then "to" names the customer); default inbound
      "sent_at": "2025-03-01T10:15:00Z",      # ISO 8601; default: when we received it
      "from": {"kind": "email", "address": "ann@example.com", "name": "Ann"},
      "to": [{"kind": "phone", "address": "+15551234567", "name": ""}],
      "subject": "",                          # optional
      "text": "Hi, is the offer still valid?",  # required (may be empty for a voicemail without transcript)
      "html": "",                             # optional, sanitized before it is stored
      "thread_key": "conv-991",               # optional: the conversation id in the source system
      "url": "https://im.example.com/c/991"   # optional link back
    }

``kind`` is a contact identity kind: email, phone, twitter, facebook, linkedin, skype, im or other. The API view
validates the same serializer before anything is stored, so a malformed request is a 400 that stores nothing;
the normalizer validates again when it reads the stored event (a replay after a rule change), and whatever it
cannot read is dead-lettered.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
from typing import TYPE_CHECKING, Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.utils import timezone
from rest_framework import serializers

from contacts.identities import normalize_identity
from threads.connectors import NormalizedMessage, NormalizeError, Party, register_normalizer
from threads.models import Channel, Direction

if TYPE_CHECKING:
    from threads.models import ChannelAccount, RawEvent

EVENT_TYPE = "webhook"
SIGNATURE_HEADER = "X-Threadline-Signature"
SIGNATURE_PREFIX = "sha256="
# Channels with their own connectors arrive through them; a webhook claiming to be one would bypass their rules.
WEBHOOK_CHANNELS = [
    c for c in Channel.values if c not in (Channel.EMAIL, Channel.SMS, Channel.TWITTER, Channel.FACEBOOK)
]
PARTY_KINDS = ["email", "phone", "twitter", "facebook", "linkedin", "skype", "im", "other"]
TEXT_MAX_CHARS = 100_000
HTML_MAX_CHARS = 500_000
MAX_RECIPIENTS = 50


def sign(secret: str, body: bytes) -> str:
    """The header value a sender puts in ``X-Threadline-Signature`` for ``body``."""
    return SIGNATURE_PREFIX + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def signature_valid(secret: str, body: bytes, header: str | None) -> bool:
    if not secret or not header:
        return False
    # Constant-time comparison: a byte-by-byte early exit would let an attacker learn the signature prefix.
    return hmac.compare_digest(sign(secret, body).encode(), header.strip().lower().encode())


def webhook_secret(account: ChannelAccount) -> str:
    try:
        data = json.loads(account.credentials or "{}")
    except ValueError:
        return ""
    return str(data.get("secret", "")) if isinstance(data, dict) else ""


class WebhookPartySerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=PARTY_KINDS, help_text="A contact identity kind.")
    address = serializers.CharField(max_length=320, help_text="E-mail, phone number, handle or id.")
    name = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        try:
            normalized, handle = normalize_identity(attrs["kind"], attrs["address"])
        except DjangoValidationError as exc:
            raise serializers.ValidationError({"address": exc.messages}) from None
        return {**attrs, "normalized": normalized, "handle": handle}


class WebhookEventSerializer(serializers.Serializer):
    """One message delivered by a signed inbound webhook."""

    event_id = serializers.CharField(max_length=255, help_text="Unique within the source; a retry reuses it.")
    channel = serializers.ChoiceField(choices=WEBHOOK_CHANNELS, default=Channel.WEBHOOK)
    direction = serializers.ChoiceField(choices=Direction.choices, default=Direction.INBOUND)
    sent_at = serializers.DateTimeField(required=False, help_text="ISO 8601; defaults to the time of receipt.")
    sender = WebhookPartySerializer(help_text="Who wrote it.")
    to = WebhookPartySerializer(many=True, required=False, default=list, help_text="Recipients (outbound).")
    subject = serializers.CharField(max_length=998, required=False, allow_blank=True, default="")
    text = serializers.CharField(max_length=TEXT_MAX_CHARS, allow_blank=True, trim_whitespace=False)
    html = serializers.CharField(max_length=HTML_MAX_CHARS, required=False, allow_blank=True, default="")
    thread_key = serializers.CharField(max_length=400, required=False, allow_blank=True, default="")
    url = serializers.URLField(max_length=2000, required=False, allow_blank=True, default="")

    def get_fields(self) -> dict[str, serializers.Field]:
        # "from" is a Python keyword: the field is declared as ``sender`` and renamed on the wire.
        fields = super().get_fields()
        fields["from"] = fields.pop("sender")
        return fields

    def validate_sent_at(self, value: Any) -> Any:
        if value is not None and value > timezone.now() + dt.timedelta(days=1):
            raise serializers.ValidationError("Is in the future.")
        return value

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if len(attrs.get("to") or []) > MAX_RECIPIENTS:
            raise serializers.ValidationError({"to": [f"At most {MAX_RECIPIENTS} recipients."]})
        if attrs["direction"] == Direction.OUTBOUND and not attrs.get("to"):
            raise serializers.ValidationError({"to": ["An outbound message needs at least one recipient."]})
        return attrs


def parse_event(body: bytes) -> tuple[dict[str, Any] | None, dict[str, list[str]]]:
    """(validated data, {}) or (None, field errors) for a raw request body."""
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, ValueError) as exc:
        return None, {"body": [f"Not valid JSON: {exc}"]}
    if not isinstance(data, dict):
        return None, {"body": ["Expected a JSON object."]}
    serializer = WebhookEventSerializer(data=data)
    if not serializer.is_valid():
        return None, _flatten(serializer.errors)
    return dict(serializer.validated_data), {}


def _flatten(errors: Any, prefix: str = "") -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    if isinstance(errors, dict):
        for key, value in errors.items():
            name = key if key != "non_field_errors" or not prefix else ""
            out.update(_flatten(value, f"{prefix}.{name}".strip(".") if name else prefix))
    elif isinstance(errors, list):
        if errors and all(isinstance(e, str) for e in errors):
            out[prefix or "non_field_errors"] = [str(e) for e in errors]
        else:
            for i, value in enumerate(errors):
                if value:
                    out.update(_flatten(value, f"{prefix}.{i}"))
    else:
        out[prefix or "non_field_errors"] = [str(errors)]
    return out


def _party(data: dict[str, Any], role: str) -> Party:
    return Party(kind=data["kind"], address=data["normalized"], name=data.get("name", ""), role=role,
                 handle=data.get("handle", ""))  # fmt: skip


def normalize_webhook_event(event: RawEvent, account: ChannelAccount) -> list[NormalizedMessage]:
    data, errors = parse_event(bytes(event.payload))
    if data is None:
        detail = "; ".join(f"{field}: {' '.join(messages)}" for field, messages in errors.items())
        raise NormalizeError(f"Webhook event cannot be read: {detail}")
    author = _party(data["from"], "from")
    recipients = [_party(p, "to") for p in data["to"]]
    inbound = data["direction"] == Direction.INBOUND
    thread_key = data["thread_key"]
    meta: dict[str, Any] = {"source": account.slug or ""}
    if data["url"]:
        meta["url"] = data["url"]
    return [
        NormalizedMessage(
            channel=data["channel"], direction=data["direction"], external_id=data["event_id"],
            # Scoped to the source: two systems may both number their events from 1.
            global_key=f"webhook:{account.pk}:{data['event_id']}",
            sent_at=data.get("sent_at") or event.received_at,
            provider_thread_key=f"webhook:{account.pk}:{thread_key}" if thread_key else "",
            author=author, counterparts=[author] if inbound else recipients,
            subject=data["subject"], body_text=data["text"], body_display=data["text"], body_html=data["html"],
            meta=meta,
        )
    ]  # fmt: skip


register_normalizer(EVENT_TYPE, normalize_webhook_event)
