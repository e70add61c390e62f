"""Builders for the listening tests: rules, sources, posts and messages through the real services."""

from __future__ import annotations

import datetime as dt
import itertools
from typing import Any

from django.db import transaction
from django.utils import timezone

from accounts.models import User, Visibility
from contacts.models import Contact, ContactIdentity
from listening.models import ListeningRule, ListeningSource
from listening.services import EvaluateResult, posts_ingest, ruleset_bump
from tests.threads.factories import inbound_email
from threads.connectors import Party, PublicPost
from threads.models import ChannelAccount, Message
from threads.services.pipeline import ingest_batch

_seq = itertools.count(1)

QUIET = {"alert_in_app": False, "spike_alerts": False}


def make_rule(owner: User | None, *, query: str = "acme", name: str | None = None, **fields: Any) -> ListeningRule:
    """A rule stored directly (as a fixture would), with the version bumped so the engine sees it."""
    fields.setdefault("team", owner.teams.order_by("id").first() if owner is not None else None)
    fields.setdefault("visibility", Visibility.TEAM)
    sources = fields.pop("sources", None)
    rule = ListeningRule.objects.create(owner=owner, name=name or f"Rule {next(_seq)}", query=query, **fields)
    if sources:
        rule.sources.set(sources)
    ruleset_bump()
    return rule


def make_source(owner: User, **fields: Any) -> ListeningSource:
    n = next(_seq)
    fields.setdefault("name", f"Source {n}")
    fields.setdefault("slug", f"source-{n}")
    fields.setdefault("kind", ListeningSource.Kind.WEBHOOK)
    fields.setdefault("team", owner.teams.order_by("id").first())
    fields.setdefault("visibility", Visibility.TEAM)
    source = ListeningSource.objects.create(owner=owner, **fields)
    ruleset_bump()
    return source


def public_post(text: str, *, external_id: str | None = None, author: Party | None = None, **fields: Any) -> PublicPost:
    fields.setdefault("channel", "twitter")
    fields.setdefault("posted_at", timezone.now() - dt.timedelta(minutes=1))
    return PublicPost(external_id=external_id or f"p{next(_seq)}", text=text, author=author, **fields)


def ingest_posts(source: ListeningSource, posts: list[PublicPost]) -> EvaluateResult:
    with transaction.atomic():
        return posts_ingest(source=source, posts=posts)


def email_identity(contact: Contact, address: str) -> ContactIdentity:
    return ContactIdentity.objects.get_or_create(
        kind="email", normalized=address, defaults={"contact": contact, "value": address}
    )[0]


def ingest_email(account: ChannelAccount, sender: str, body: str, **fields: Any) -> Message:
    """An inbound e-mail stored through the threads pipeline (without running its on-commit event)."""
    message = inbound_email(sender, body=body, **fields)
    with transaction.atomic():
        created = ingest_batch(account=account, messages=[message]).created
    return Message.objects.get(pk=created[0])
