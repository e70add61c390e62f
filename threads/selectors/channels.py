"""Reads of channel accounts and their raw events, visibility-filtered.

An account is an owned record (accounts.selectors decides who sees it); its raw events are visible with it.
"""

from __future__ import annotations

from django.db.models import QuerySet

from accounts.models import User
from accounts.selectors import visible
from crm.errors import DomainError, NotFound
from threads.models import ChannelAccount, RawEvent


def channel_account_list(*, user: User, kind: str = "", status: str = "") -> QuerySet[ChannelAccount]:
    qs = visible(ChannelAccount.objects.select_related("owner", "team"), user)
    if kind:
        qs = qs.filter(kind=kind)
    if status:
        qs = qs.filter(status=status)
    return qs


def channel_account_get(*, user: User, pk: int) -> ChannelAccount:
    account = visible(ChannelAccount.objects.select_related("owner", "team"), user).filter(pk=pk).first()
    if account is None:
        raise NotFound("No such channel account.")
    return account


def raw_event_list(*, user: User, status: str = "", account_id: int | None = None) -> QuerySet[RawEvent]:
    """Raw events of the accounts ``user`` may see, without their payloads (they can be megabytes each)."""
    if status and status not in RawEvent.Status.values:
        raise DomainError(
            f"Unknown status {status!r}.", fields={"status": [f"One of: {', '.join(RawEvent.Status.values)}."]}
        )
    qs = visible(RawEvent.objects.select_related("channel_account"), user, prefix="channel_account__").defer("payload")
    if status:
        qs = qs.filter(status=status)
    if account_id is not None:
        qs = qs.filter(channel_account_id=account_id)
    return qs


def raw_event_get(*, user: User, pk: int) -> RawEvent:
    event = visible(RawEvent.objects.select_related("channel_account"), user, prefix="channel_account__").filter(pk=pk)
    found = event.first()
    if found is None:
        raise NotFound("No such raw event.")
    return found
