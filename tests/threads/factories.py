"""Factories and builders for threads tests."""

from __future__ import annotations

import datetime as dt
import itertools

import factory
from django.utils import timezone

from accounts.models import Visibility
from threads.connectors import NormalizedMessage, Party
from threads.models import ChannelAccount

_seq = itertools.count(1)


class ChannelAccountFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ChannelAccount

    kind = ChannelAccount.Kind.EMAIL
    name = factory.Sequence(lambda n: f"Mailbox {n}")
    address = factory.Sequence(lambda n: f"sales{n}@ourco.example")
    visibility = Visibility.TEAM


def inbound_email(
    sender: str, *, subject: str = "Hello", body: str = "Hi there", external_id: str | None = None,
    thread_key: str = "", sent_at: dt.datetime | None = None, name: str = "",
) -> NormalizedMessage:  # fmt: skip
    """A normalized inbound e-mail from ``sender`` (already lower-case)."""
    external_id = external_id or f"m{next(_seq)}@example.com"
    author = Party("email", sender, name, "from")
    return NormalizedMessage(
        channel="email", direction="inbound", external_id=external_id, sent_at=sent_at or timezone.now(),
        provider_thread_key=thread_key or external_id, author=author, counterparts=[author], subject=subject,
        body_text=body, body_display=body,
    )  # fmt: skip
