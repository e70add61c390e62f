"""Robust MIME → NormalizedMessage (filled by the e-mail MIME work)."""

from __future__ import annotations

from threads.connectors import NormalizedMessage, NormalizeError
from threads.models import ChannelAccount, RawEvent


def normalize_email_event(event: RawEvent, account: ChannelAccount) -> list[NormalizedMessage]:
    raise NormalizeError("not implemented yet")
