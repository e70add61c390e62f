"""IMAP poller (filled by the IMAP work)."""

from __future__ import annotations

from threads.models import ChannelAccount


def poll_account(account: ChannelAccount) -> None:
    raise NotImplementedError
