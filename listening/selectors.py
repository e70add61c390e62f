"""Listening reads, visibility-filtered here and nowhere else.

- A **rule** (and a source) is visible per accounts.selectors: owner, team, managers of the owner's teams; admins
  see all.
- A **mention** is visible when its rule is, and, for a mention of a thread message, when its message is: the
  message's contact is visible (or, still unmatched, the channel account that received it). A private mailbox's
  message keeps its text to the mailbox owner (threads' ``hide_private_bodies`` rule): for anyone else the
  snippet, highlights and matched terms are blanked on the instance.
- A mention of a public **post** does not need its contact to be visible; the contact link is then hidden (the
  instance's ``contact`` is cleared).

Lists are keyset-paginated on ``(occurred_at, id)`` with an opaque cursor: never OFFSET, never an uncapped COUNT.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.db.models import Count, IntegerField, OuterRef, Q, QuerySet, Subquery
from django.db.models.functions import TruncDate
from django.utils import timezone

from accounts.models import Membership, User
from accounts.selectors import can_see, user_managed_team_ids, visibility_q, visible
from contacts.models import Contact
from crm.errors import DomainError, NotFound
from listening.models import ListeningRule, ListeningSource, Mention, Post, SpikeAlert
from threads.models import ChannelAccount, Message
from threads.selectors import decode_cursor, encode_cursor

MAX_LIMIT = 200
COUNT_CAP = 10_000  # counts shown in lists stop here ("10,000+")
SENTIMENTS = ("negative", "neutral", "positive")


@dataclass
class MentionFilters:
    rule_id: int | None = None
    sentiment: str = ""  # negative / neutral / positive
    channel: str = ""
    contact: str = ""  # "" any, "known", "unknown", or a contact id
    since: dt.date | None = None
    until: dt.date | None = None
    q: str = ""  # words in the snippet


@dataclass
class MentionPage:
    items: list[Mention]
    next: str | None  # opaque keyset cursor for the following page (never OFFSET)


class CappedCount(Subquery):
    """``(SELECT count(*) FROM (<sliced subquery>))``: a count that stops at the subquery's LIMIT."""

    template = "(SELECT count(*) FROM (%(subquery)s) AS _capped)"
    output_field = IntegerField()


def can_edit_owned(user: User, owner_id: int | None, team_id: int | None) -> bool:
    """May ``user`` change a rule or source: the owner, an admin, or a manager of its team or of a team the owner
    belongs to (the managers who see it through the owner)."""
    if not user.is_authenticated or not user.is_active:
        return False
    if user.is_admin_role or (owner_id is not None and owner_id == user.pk):
        return True
    managed = user_managed_team_ids(user)
    if not managed:
        return False
    if team_id in managed:
        return True
    return owner_id is not None and Membership.objects.filter(user_id=owner_id, team_id__in=managed).exists()


# --- Rules and sources --------------------------------------------------------------------------------------------


def rule_visible_q(user: User, *, prefix: str = "") -> Q:
    return visibility_q(user, prefix=prefix)


def rule_list(*, user: User) -> QuerySet[ListeningRule]:
    """Rules the user can see (owner / team / shared, admins all), with ``mention_count_7d`` annotated (the mentions
    of the last 7 days the user may see, capped at COUNT_CAP)."""
    since = timezone.now() - dt.timedelta(days=7)
    recent = mention_queryset(user=user).filter(rule=OuterRef("pk"), occurred_at__gte=since).values("pk")[:COUNT_CAP]
    return visible(ListeningRule.objects.all(), user).annotate(mention_count_7d=CappedCount(recent))


def rule_get(*, user: User, pk: int) -> ListeningRule:
    rule = visible(ListeningRule.objects.filter(pk=pk), user).select_related("owner", "team").first()
    if rule is None:
        raise NotFound("No such rule.")
    return rule


def rule_can_edit(*, user: User, rule: ListeningRule) -> bool:
    """The owner, their manager (a manager of the rule's team or of a team the owner is in), or an admin."""
    return can_edit_owned(user, rule.owner_id, rule.team_id) and can_see(user, rule)


def source_list(*, user: User) -> QuerySet[ListeningSource]:
    return visible(ListeningSource.objects.all(), user)


def source_get(*, user: User, pk: int) -> ListeningSource:
    source = source_list(user=user).filter(pk=pk).select_related("owner", "team", "channel_account").first()
    if source is None:
        raise NotFound("No such source.")
    return source


def source_can_edit(*, user: User, source: ListeningSource) -> bool:
    return can_edit_owned(user, source.owner_id, source.team_id) and can_see(user, source)


# --- Mentions -----------------------------------------------------------------------------------------------------


def mention_visibility_q(user: User) -> Q:
    if user is None or not user.is_authenticated or not user.is_active:
        return Q(pk__in=[])
    if user.is_admin_role:
        return Q()
    of_post = Q(message__isnull=True)
    of_thread_message = Q(message__contact__isnull=False) & visibility_q(user, prefix="message__contact__")
    unmatched = Q(message__contact__isnull=True, message__isnull=False) & Q(
        message__channel_account__in=visible(ChannelAccount.objects.all(), user).values("pk")
    )
    return visibility_q(user, prefix="rule__") & (of_post | of_thread_message | unmatched)


def mention_queryset(*, user: User) -> QuerySet[Mention]:
    """Every mention ``user`` may see (before the per-instance text hiding of :func:`mentions_prepare`)."""
    return Mention.objects.filter(mention_visibility_q(user))


def mentions_prepare(mentions: list[Mention], user: User) -> list[Mention]:
    """Blank what ``user`` may not read on the instances: a private mailbox's text (snippet, highlights, terms),
    and the contact of a post mention whose contact they may not see. Sets ``text_hidden`` on each."""
    message_ids = [m.message_id for m in mentions if m.message_id]
    private: dict[int, list[int]] = {}
    if message_ids:
        private = dict(Message.objects.filter(pk__in=message_ids, is_private=True).values_list("pk", "body_visible_to"))
    post_contacts = {m.contact_id for m in mentions if m.post_id and m.contact_id}
    seen: set[int] = set()
    if post_contacts:
        seen = set(visible(Contact.objects.filter(pk__in=post_contacts), user).values_list("pk", flat=True))
    for mention in mentions:
        hidden = mention.message_id in private and user.pk not in private[mention.message_id]
        mention.text_hidden = hidden  # type: ignore[attr-defined]
        if hidden:
            mention.snippet, mention.highlights, mention.matched_terms = "", [], []
        if mention.post_id and mention.contact_id and mention.contact_id not in seen:
            mention.contact_id = None
            mention.contact = None
    return mentions


def _day_start(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time.min, tzinfo=timezone.get_current_timezone())


def _filtered(qs: QuerySet[Mention], filters: MentionFilters, user: User) -> QuerySet[Mention]:
    if filters.rule_id:
        qs = qs.filter(rule_id=filters.rule_id)
    if filters.sentiment:
        if filters.sentiment not in SENTIMENTS:
            raise DomainError("Sentiment is negative, neutral or positive.", fields={"sentiment": ["Invalid."]})
        qs = qs.filter(sentiment=filters.sentiment)
    if filters.channel:
        qs = qs.filter(channel=filters.channel)
    contact = str(filters.contact or "")
    if contact == "known":
        qs = qs.filter(contact__isnull=False)
    elif contact == "unknown":
        qs = qs.filter(contact__isnull=True)
    elif contact:
        if not contact.isdigit():
            raise DomainError("Contact is “known”, “unknown” or a contact id.", fields={"contact": ["Invalid."]})
        qs = qs.filter(contact_id=int(contact))
    if filters.since:
        qs = qs.filter(occurred_at__gte=_day_start(filters.since))
    if filters.until:
        qs = qs.filter(occurred_at__lt=_day_start(filters.until + dt.timedelta(days=1)))
    if filters.q:
        # Searching the text must not find what the text-hiding blanks: a private mailbox's message whose body
        # ``user`` may not read would otherwise answer "does it say X?".
        readable = (
            Q(message__isnull=True) | Q(message__is_private=False) | Q(message__body_visible_to__contains=[user.pk])
        )
        qs = qs.filter(readable, snippet__icontains=filters.q.strip()[:200])
    return qs


def mention_list(*, user: User, filters: MentionFilters, cursor: str | None = None, limit: int = 50) -> MentionPage:
    """Newest first; select_related rule, contact, post; message bodies of private mailboxes hidden."""
    limit = max(1, min(int(limit), MAX_LIMIT))
    qs = _filtered(mention_queryset(user=user), filters, user)
    position = decode_cursor(cursor)
    if position is not None:
        at, pk = position
        qs = qs.filter(Q(occurred_at__lt=at) | Q(occurred_at=at, pk__lt=pk))
    rows = list(qs.select_related("rule", "contact", "post").order_by("-occurred_at", "-id")[: limit + 1])
    more = len(rows) > limit
    rows = mentions_prepare(rows[:limit], user)
    last = rows[-1] if rows else None
    return MentionPage(items=rows, next=encode_cursor(last.occurred_at, last.pk) if more and last else None)


def mention_get(*, user: User, pk: int) -> Mention:
    mention = mention_queryset(user=user).filter(pk=pk).select_related("rule", "contact", "post").first()
    if mention is None:
        raise NotFound("No such mention.")
    return mentions_prepare([mention], user)[0]


def _window(days: int) -> tuple[dt.date, dt.datetime]:
    days = max(1, min(int(days), 366))
    first = timezone.localdate() - dt.timedelta(days=days - 1)
    return first, _day_start(first)


def _chart_rules(user: User, rule_ids: Iterable[int] | None) -> list[ListeningRule]:
    qs = visible(ListeningRule.objects.all(), user)
    if rule_ids is not None:
        qs = qs.filter(pk__in=list(rule_ids))
    return list(qs.only("id", "name").order_by("name", "id"))


def mention_volume(*, user: User, rule_ids: list[int] | None = None, days: int = 30) -> list[dict[str, Any]]:
    """[{"rule_id", "rule", "series": [{"day": date, "count": n}, …]}] per rule, one point per day (zeros filled)."""
    rules = _chart_rules(user, rule_ids)
    if not rules:
        return []
    first, start = _window(days)
    tz = timezone.get_current_timezone()
    counts: dict[tuple[int, dt.date], int] = {}
    rows = (
        mention_queryset(user=user)
        .filter(rule_id__in=[r.pk for r in rules], occurred_at__gte=start)
        .annotate(day=TruncDate("occurred_at", tzinfo=tz))
        .values("rule_id", "day")
        .annotate(n=Count("id"))
        .order_by()
    )
    for row in rows:
        counts[(row["rule_id"], row["day"])] = row["n"]
    span = [first + dt.timedelta(days=i) for i in range((timezone.localdate() - first).days + 1)]
    return [
        {
            "rule_id": rule.pk, "rule": rule.name,
            "series": [{"day": day, "count": counts.get((rule.pk, day), 0)} for day in span],
        }
        for rule in rules
    ]  # fmt: skip


def sentiment_mix(*, user: User, rule_ids: list[int] | None = None, days: int = 30) -> dict[str, int]:
    """{"negative": n, "neutral": n, "positive": n} over the window."""
    _, start = _window(days)
    qs = mention_queryset(user=user).filter(occurred_at__gte=start)
    if rule_ids is not None:
        qs = qs.filter(rule_id__in=list(rule_ids))
    mix = dict.fromkeys(SENTIMENTS, 0)
    for row in qs.values("sentiment").annotate(n=Count("id")).order_by():
        if row["sentiment"] in mix:
            mix[row["sentiment"]] = row["n"]
    return mix


def spike_list(*, user: User, limit: int = 20) -> list[SpikeAlert]:
    limit = max(1, min(int(limit), MAX_LIMIT))
    return list(
        SpikeAlert.objects.filter(visibility_q(user, prefix="rule__"))
        .select_related("rule")
        .order_by("-window_end", "-id")[:limit]
    )


def contact_mentions(*, user: User, contact_id: int, limit: int = 20) -> list[Mention]:
    contact = Contact.objects.filter(pk=contact_id).first()
    if contact is None or not can_see(user, contact):
        raise NotFound("No such contact.")
    limit = max(1, min(int(limit), MAX_LIMIT))
    rows = list(
        mention_queryset(user=user)
        .filter(contact_id=contact_id)
        .select_related("rule", "post")
        .order_by("-occurred_at", "-id")[:limit]
    )
    return mentions_prepare(rows, user)


def my_listening_alerts(*, user: User, days: int = 7, limit: int = 10) -> dict[str, Any]:
    """My day: recent spike alerts and newest mentions of the rules ``user`` owns."""
    since = timezone.now() - dt.timedelta(days=days)
    spikes = list(
        SpikeAlert.objects.filter(rule__owner=user, window_end__gte=since)
        .select_related("rule")
        .order_by("-window_end", "-id")[:limit]
    )
    mentions = list(
        mention_queryset(user=user)
        .filter(rule__owner=user, occurred_at__gte=since)
        .select_related("rule", "contact")
        .order_by("-occurred_at", "-id")[:limit]
    )
    return {"spikes": spikes, "mentions": mentions_prepare(mentions, user)}


def post_list_for_contacts(*, user: User, contact_ids: list[int]) -> QuerySet[Post]:
    """Public posts written by these contacts, from sources ``user`` may see."""
    return Post.objects.filter(contact_id__in=contact_ids).filter(visibility_q(user, prefix="source__"))
