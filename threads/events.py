"""Events the threads app emits. Higher apps (activities, listening) subscribe; threads never imports them.

``messages_ingested`` is sent once per ingested batch, after the transaction that stored it commits (the
pipeline uses ``transaction.on_commit``), with ``messages``: a list of :class:`IngestedMessage`, one per newly
stored message (a duplicate is never announced twice). Receivers work set-based on the whole list:

- activities stops the running plans of every contact who sent an inbound message;
- listening runs its rules over the new messages' text.
"""

from __future__ import annotations

from typing import NamedTuple

from django.dispatch import Signal


class IngestedMessage(NamedTuple):
    """Immutable; a NamedTuple rather than a frozen dataclass because ingest builds one per stored message."""

    message_id: int
    contact_id: int | None
    thread_id: int | None
    direction: str  # "inbound" or "outbound"
    channel: str  # "email", "sms", "twitter", "facebook", "call", "meeting", "in_person", ...


messages_ingested = Signal()

# Sent after commit when stored messages get a contact after the fact (an unmatched message assigned to a person),
# with ``message_ids`` (list[int]) and ``contact_id``: receivers that keyed rows by message re-point them.
messages_matched = Signal()
