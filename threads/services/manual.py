"""Manual channels: calls, meetings, in-person touches, voicemail and notes logged as thread messages.

Both ways in go through ``ingest_batch`` like every connector, so a logged touch lands in the contact's main
thread, moves ``last_touch_at`` forwards and announces itself with ``messages_ingested``:

- ``message_log_manual``: a rep logs a touch by hand (contact page, API);
- ``message_record_activity``: activities calls it when a call, meeting or in-person activity is completed. The
  activity's id is the message's global key, so completing (or re-recording) it twice never adds a second one.
  threads sits below activities: this reads attributes of the object it is given and never imports activities.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from typing import Any

from django.db import transaction
from django.utils import timezone

from accounts.models import User
from accounts.selectors import can_see
from contacts.models import Contact
from crm.errors import DomainError, NotFound
from threads.connectors import NormalizedMessage
from threads.models import MANUAL_CHANNELS, Channel, Direction, Message
from threads.services.pipeline import ingest_batch

MAX_DURATION_MINUTES = 24 * 60
MAX_PARTICIPANTS = 50
# A phone's clock that runs a little fast must not turn "just now" into "in the future".
FUTURE_TOLERANCE = dt.timedelta(minutes=5)


def _ingest_one(message: NormalizedMessage) -> Message | None:
    result = ingest_batch(account=None, messages=[message])
    if result.created:
        return Message.objects.get(pk=result.created[0])
    return None


@transaction.atomic
def message_log_manual(
    *,
    actor: User,
    contact: Contact,
    channel: str,
    direction: str = Direction.OUTBOUND,
    subject: str = "",
    body: str = "",
    sent_at: dt.datetime | None = None,
    duration_minutes: int | None = None,
    outcome: str = "",
    participants: Sequence[str] = (),
) -> Message:
    """Log a touch that happened outside any connected channel in ``contact``'s main thread."""
    if not can_see(actor, contact):
        raise NotFound("No such contact.")
    errors: dict[str, list[str]] = {}
    if channel not in MANUAL_CHANNELS:
        errors["channel"] = [f"One of: {', '.join(str(c) for c in MANUAL_CHANNELS)}."]
    if direction not in Direction.values:
        errors["direction"] = ["Inbound or outbound."]
    now = timezone.now()
    sent_at = sent_at or now
    if timezone.is_naive(sent_at):
        sent_at = timezone.make_aware(sent_at)
    if sent_at > now + FUTURE_TOLERANCE:
        errors["sent_at"] = ["Is in the future: log a touch once it happened, or schedule an activity."]
    if duration_minutes is not None and not 0 <= duration_minutes <= MAX_DURATION_MINUTES:
        errors["duration_minutes"] = [f"Between 0 and {MAX_DURATION_MINUTES} minutes."]
    if len(subject) > 300:
        errors["subject"] = ["At most 300 characters."]
    if len(outcome) > 64:
        errors["outcome"] = ["At most 64 characters."]
    people = [p.strip()[:200] for p in participants if p and p.strip()]
    if len(people) > MAX_PARTICIPANTS:
        errors["participants"] = [f"At most {MAX_PARTICIPANTS}."]
    if channel == Channel.NOTE and not body.strip() and not subject.strip():
        errors["body"] = ["A note needs some text."]
    if errors:
        raise DomainError("The touch could not be logged.", fields=errors, code="invalid_manual_message")
    meta: dict[str, Any] = {"duration_minutes": duration_minutes, "outcome": outcome.strip(), "participants": people}
    message = _ingest_one(
        NormalizedMessage(
            channel=channel, direction=direction, external_id=f"manual:{uuid.uuid4()}", sent_at=sent_at,
            subject=subject.strip(), body_text=body, body_display=body, meta=meta, created_by_id=actor.pk,
            contact_id=contact.pk,
        )
    )  # fmt: skip
    if message is None:  # a fresh uuid cannot collide; if it somehow did, say so instead of returning nothing
        raise DomainError("The touch was not stored; try again.", code="manual_message_conflict")
    return message


@transaction.atomic
def message_record_activity(*, activity: Any, channel: str) -> Message | None:
    """Record a completed call, meeting or in-person ``activity`` in its contact's thread, once.

    Returns the new message, or None when the activity has no contact or was recorded before.
    """
    if getattr(activity, "contact_id", None) is None:
        return None
    if channel not in MANUAL_CHANNELS:
        raise DomainError(f"{channel!r} is not a manual channel.", code="invalid_channel")
    meta: dict[str, Any] = {
        "activity_id": activity.pk,
        "outcome": getattr(activity, "outcome", "") or "",
        "duration_minutes": getattr(activity, "duration_minutes", None),
    }
    location = getattr(activity, "location", "")
    if location:
        meta["location"] = location
    notes = getattr(activity, "notes", "") or ""
    key = f"activity:{activity.pk}"
    return _ingest_one(
        NormalizedMessage(
            channel=channel, direction=Direction.OUTBOUND, external_id=key, global_key=key,
            sent_at=getattr(activity, "done_at", None) or timezone.now(), subject=activity.subject or "",
            body_text=notes, body_display=notes, meta=meta, created_by_id=getattr(activity, "owner_id", None),
            contact_id=activity.contact_id,
        )
    )  # fmt: skip
