"""SMTP sender (filled by the SMTP work)."""

from __future__ import annotations

from typing import Any

from threads.connectors import OutgoingDraft, SendResult
from threads.models import ChannelAccount


def prepare_email(account: ChannelAccount, draft: OutgoingDraft, thread: Any, reply_to: Any) -> OutgoingDraft:
    raise NotImplementedError


def send_email(account: ChannelAccount, draft: OutgoingDraft) -> SendResult:
    raise NotImplementedError
