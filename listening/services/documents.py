"""How a stored message or post becomes a ``listening.query.Document``: one place, so the dry run sees exactly
what evaluation sees."""

from __future__ import annotations

from typing import Any

from django.db.models import F, QuerySet

from contacts.models import Contact
from listening.query import Document
from threads.models import MANUAL_CHANNELS, Direction, Message

# Listening hears what people say: everything inbound, and what reps logged about a conversation (a call note,
# a meeting summary). Our own outbound e-mails, SMS and replies are not listening material: a rule watching
# "cancel" would otherwise fire on every retention offer we send.
LISTENED_MANUAL_CHANNELS = frozenset(str(c) for c in MANUAL_CHANNELS)


def message_is_listened(direction: str, channel: str) -> bool:
    return direction == Direction.INBOUND or channel in LISTENED_MANUAL_CHANNELS


MESSAGE_VALUES = (
    "id", "channel", "direction", "subject", "body_display", "body_text", "contact_id", "sent_at", "meta",
    "author_address", "author_name", "is_private", "body_visible_to", "deleted_at", "channel_account_id",
)  # fmt: skip


def message_values(qs: QuerySet[Message]) -> QuerySet[Message]:
    """The fields a Document needs, with the author's handle and whether the contact is a customer: one query."""
    return qs.values(*MESSAGE_VALUES).annotate(
        author_handle=F("author_identity__handle"), lifecycle_stage=F("contact__lifecycle_stage")
    )


def message_text(row: dict[str, Any]) -> str:
    """The subject (when there is one) and the new part of the body: quoted history and signatures are cut, so a
    reply does not match again on the words of the message it quotes."""
    body = row["body_display"] or row["body_text"] or ""
    subject = (row["subject"] or "").strip()
    return f"{subject}\n{body}" if subject else body


def _float(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if -180.0 <= number <= 180.0 else None


def geo_from_meta(meta: dict[str, Any]) -> tuple[float | None, float | None]:
    """Latitude and longitude a connector put in ``meta`` (``latitude``/``longitude``, or ``geo: {lat, lon}``)."""
    if not isinstance(meta, dict):
        return None, None
    geo = meta.get("geo") if isinstance(meta.get("geo"), dict) else {}
    lat = _float(meta.get("latitude", geo.get("lat", geo.get("latitude"))))
    lon = _float(meta.get("longitude", geo.get("lon", geo.get("lng", geo.get("longitude")))))
    if lat is None or lon is None or not -90.0 <= lat <= 90.0:
        return None, None
    return lat, lon


def clean_handle(handle: str) -> str:
    return (handle or "").strip().lstrip("@").lower()


def message_document(row: dict[str, Any]) -> Document:
    meta = row["meta"] if isinstance(row["meta"], dict) else {}
    lat, lon = geo_from_meta(meta)
    lang = meta.get("lang") if isinstance(meta.get("lang"), str) else ""
    return Document(
        text=message_text(row), kind="message", channel=row["channel"],
        lang=lang[:8].lower(), author_handle=clean_handle(row.get("author_handle") or row["author_address"]),
        author_contact_id=row["contact_id"], author_is_customer=row.get("lifecycle_stage") == Contact.Stage.CUSTOMER,
        latitude=lat, longitude=lon,
    )  # fmt: skip


def post_text(title: str, text: str) -> str:
    title = (title or "").strip()
    return f"{title}\n{text}" if title and title not in text else text
