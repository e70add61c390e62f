"""The e-mail digest: each owner of rules with ``alert_email_digest`` gets one e-mail with the mentions their rules
stored since the last digest (``digest_sent_at``), as they may see them."""

from __future__ import annotations

import datetime as dt
import logging
from collections import defaultdict

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.template.loader import render_to_string
from django.utils import timezone

from accounts.models import User
from listening.models import ListeningRule
from listening.selectors import mention_queryset, mentions_prepare
from listening.services.actions import mentions_url

log = logging.getLogger(__name__)

DIGEST_MENTIONS_PER_RULE = 20
DIGEST_COUNT_CAP = 1000


def _site_url(path: str) -> str:
    return f"{(getattr(settings, 'SITE_URL', '') or '').rstrip('/')}{path}"


def _owner_digest(owner: User, rules: list[ListeningRule], now: dt.datetime) -> bool:
    """Claim each rule's window (a conditional UPDATE on ``digest_sent_at``: a concurrent run claims nothing),
    then send one e-mail. In one transaction: a failed send releases the claims, and the next run retries."""
    sections = []
    for rule in rules:
        claimed = (
            ListeningRule.objects.filter(pk=rule.pk, digest_sent_at=rule.digest_sent_at)
            if rule.digest_sent_at is not None
            else ListeningRule.objects.filter(pk=rule.pk, digest_sent_at__isnull=True)
        ).update(digest_sent_at=now)
        if not claimed:
            continue
        since = rule.digest_sent_at or rule.created_at
        qs = mention_queryset(user=owner).filter(rule_id=rule.pk, created_at__gt=since, created_at__lte=now)
        mentions = list(qs.select_related("contact").order_by("-occurred_at", "-id")[:DIGEST_MENTIONS_PER_RULE])
        if not mentions:
            continue
        count = len(mentions)
        if count == DIGEST_MENTIONS_PER_RULE:
            count = qs.order_by()[:DIGEST_COUNT_CAP].count()
        sections.append(
            {
                "rule": rule, "mentions": mentions_prepare(mentions, owner), "count": count,
                "capped": count >= DIGEST_COUNT_CAP, "url": _site_url(mentions_url(rule.pk)),
            }
        )  # fmt: skip
    if not sections:
        return False
    total = sum(s["count"] for s in sections)
    subject = f"Listening digest: {total}{'+' if any(s['capped'] for s in sections) else ''} new mentions"
    body = render_to_string("listening/email/mention_digest.txt", {"user": owner, "sections": sections, "now": now})
    send_mail(subject, body, None, [owner.email])
    return True


def mention_digests_send(*, now: dt.datetime | None = None) -> int:
    """Mail each rule owner the mentions since ``digest_sent_at`` and advance it. Idempotent: a second run right
    after finds nothing new. Returns the number of e-mails sent."""
    now = now or timezone.now()
    rules = (
        ListeningRule.objects.filter(active=True, alert_email_digest=True, owner__is_active=True)
        .exclude(owner__email="")
        .select_related("owner")
        .order_by("owner_id", "name", "id")
    )
    by_owner: dict[int, list[ListeningRule]] = defaultdict(list)
    owners: dict[int, User] = {}
    for rule in rules:
        by_owner[rule.owner_id].append(rule)  # type: ignore[index]
        owners[rule.owner_id] = rule.owner  # type: ignore[index,assignment]
    sent = 0
    for owner_id, owned in by_owner.items():
        try:
            with transaction.atomic():
                sent += _owner_digest(owners[owner_id], owned, now)
        except Exception:  # one owner's bad mail server address must not stop everyone else's digest
            log.exception("listening digest for user %s failed; it is retried on the next run", owner_id)
    return sent
