"""Listening reads, visibility-filtered. (Skeleton: signatures agreed between the backend and the UI.)"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from django.db.models import QuerySet

from accounts.models import User
from listening.models import ListeningRule, ListeningSource, Mention, SpikeAlert


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


def rule_list(*, user: User) -> QuerySet[ListeningRule]:
    """Rules the user can see (owner / team / shared, admins all), with ``mention_count_7d`` annotated."""
    raise NotImplementedError


def rule_get(*, user: User, pk: int) -> ListeningRule:
    raise NotImplementedError  # NotFound when invisible


def rule_can_edit(*, user: User, rule: ListeningRule) -> bool:
    raise NotImplementedError


def source_list(*, user: User) -> QuerySet[ListeningSource]:
    raise NotImplementedError


def mention_list(*, user: User, filters: MentionFilters, cursor: str | None = None, limit: int = 50) -> MentionPage:
    """Newest first; select_related rule, contact, post; message bodies of private mailboxes hidden."""
    raise NotImplementedError


def mention_volume(*, user: User, rule_ids: list[int] | None = None, days: int = 30) -> list[dict[str, Any]]:
    """[{"rule_id", "rule", "series": [{"day": date, "count": n}, …]}] per rule, one point per day (zeros filled)."""
    raise NotImplementedError


def sentiment_mix(*, user: User, rule_ids: list[int] | None = None, days: int = 30) -> dict[str, int]:
    """{"negative": n, "neutral": n, "positive": n} over the window."""
    raise NotImplementedError


def spike_list(*, user: User, limit: int = 20) -> list[SpikeAlert]:
    raise NotImplementedError


def contact_mentions(*, user: User, contact_id: int, limit: int = 20) -> list[Mention]:
    raise NotImplementedError
