"""Builders shared by the Inbox tests (selectors, operations, views, API): conversations ingested through the
real pipeline, for the contacts of the ``world`` fixture."""

from __future__ import annotations

import datetime as dt
import itertools

from django.db import transaction
from django.utils import timezone

from contacts.models import Contact, ContactIdentity
from tests.threads.factories import inbound_email
from threads.connectors import NormalizedMessage
from threads.models import ChannelAccount, Message, Thread
from threads.services.pipeline import ingest_batch

_seq = itertools.count(1)
BASE = timezone.now().replace(microsecond=0) - dt.timedelta(days=1)

ADDRESSES = {
    "a1_shared": "ann@example.com",
    "a1_private": "abe@example.com",
    "a2_shared": "amy@example.com",
    "a2_private": "al@example.com",
    "b1_shared": "bea@example.com",
}


def at(minutes: int) -> dt.datetime:
    return BASE + dt.timedelta(minutes=minutes)


def identity(contact: Contact, address: str, kind: str = "email") -> ContactIdentity:
    return ContactIdentity.objects.get_or_create(
        kind=kind, normalized=address, defaults={"contact": contact, "value": address}
    )[0]


def ingest(account: ChannelAccount | None, messages: list[NormalizedMessage]) -> list[int]:
    with transaction.atomic():
        return ingest_batch(account=account, messages=messages).created


def email_from(
    account: ChannelAccount, sender: str, *, subject: str = "Hello", body: str = "Hi there", minutes: int = 0,
    thread_key: str = "", external_id: str | None = None, html: str = "", full: str = "",
) -> Message:  # fmt: skip
    message = inbound_email(
        sender, subject=subject, body=body, sent_at=at(minutes), thread_key=thread_key,
        external_id=external_id or f"h4-{next(_seq)}@example.com",
    )  # fmt: skip
    message.body_html = html
    if full:
        message.body_text = full
    (mid,) = ingest(account, [message])
    return Message.objects.get(pk=mid)


def call_with(contact: Contact, *, minutes: int = 0, notes: str = "Talked about pricing") -> Message:
    """A logged phone call (a manual channel: no channel account)."""
    n = next(_seq)
    message = NormalizedMessage(
        channel="call", direction="outbound", external_id=f"call-{n}", sent_at=at(minutes), contact_id=contact.pk,
        subject="Phone call", body_text=notes, body_display=notes, meta={"outcome": "reached"},
    )  # fmt: skip
    (mid,) = ingest(None, [message])
    return Message.objects.get(pk=mid)


def world_conversations(world, account: ChannelAccount, b_account: ChannelAccount) -> dict[str, Thread]:  # type: ignore[no-untyped-def]
    """One inbound e-mail per world contact (b1's through team B's mailbox); returns contact key → main thread."""
    threads = {}
    for i, (key, address) in enumerate(ADDRESSES.items()):
        contact = world.contacts[key]
        identity(contact, address)
        message = email_from(b_account if key == "b1_shared" else account, address, subject=f"From {key}", minutes=i)
        threads[key] = message.thread
    return threads
