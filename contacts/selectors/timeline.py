"""The timeline: one chronological, keyset-paginated feed per contact (or company) merged from every source.

Each registered source (contacts.registry) returns at most ``limit`` entries strictly older than the cursor, in
one query; the entries are merge-sorted here. So a page costs one query per source, whatever the history size.

Order is ``(at, source, id)`` descending. That triple is unique, so pages never skip or repeat an entry even when
many entries share a timestamp. Sources build their "older than the cursor" condition with :func:`keyset_before_q`
(ORM) or :func:`keyset_before_sql` (raw SQL).
"""

from __future__ import annotations

import base64
import binascii
import heapq
import json
from dataclasses import dataclass
from datetime import datetime
from itertools import islice

from django.db.models import Q

from accounts.models import User
from accounts.selectors import visible
from contacts.models import Company, Contact
from contacts.registry import TimelineEntry, TimelineQuery, timeline_sources
from crm.errors import DomainError, NotFound

DEFAULT_LIMIT = 30
MAX_LIMIT = 100
# A company timeline merges its contacts' feeds; beyond this many people the page would be dominated by the
# `contact_id = ANY(...)` lists, so the newest-created contacts win.
COMPANY_CONTACT_CAP = 500

Cursor = tuple[datetime, str, int]


@dataclass(frozen=True)
class TimelinePage:
    entries: list[TimelineEntry]
    next: str | None  # opaque cursor of the last entry; None on the last page


def encode_cursor(cursor: Cursor) -> str:
    at, source, pk = cursor
    raw = json.dumps([at.isoformat(), source, pk], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(token: str | None) -> Cursor | None:
    """The cursor of an ``Older`` link, or None for the first page. A tampered token is a clear 400, never a 500."""
    if not token:
        return None
    try:
        padded = token + "=" * (-len(token) % 4)
        at, source, pk = json.loads(base64.urlsafe_b64decode(padded.encode()))
        parsed = datetime.fromisoformat(at)
        if parsed.tzinfo is None or not isinstance(source, str) or not isinstance(pk, int):
            raise ValueError("bad cursor parts")
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError):
        raise DomainError("This timeline link is invalid; reload the page.", code="invalid_cursor") from None
    return parsed, source, pk


def keyset_before_q(before: Cursor | None, *, source: str, at_field: str, id_field: str = "pk") -> Q:
    """Rows of ``source`` that sort strictly after ``before`` in (at, source, id) DESC order."""
    if before is None:
        return Q()
    at, cursor_source, pk = before
    if source < cursor_source:
        return Q(**{f"{at_field}__lte": at})
    if source > cursor_source:
        return Q(**{f"{at_field}__lt": at})
    return Q(**{f"{at_field}__lt": at}) | Q(**{at_field: at, f"{id_field}__lt": pk})


def keyset_before_sql(before: Cursor | None, *, source: str, at_col: str, id_col: str) -> tuple[str, list[object]]:
    """The same condition as :func:`keyset_before_q` as an SQL fragment and its parameters."""
    if before is None:
        return "TRUE", []
    at, cursor_source, pk = before
    if source < cursor_source:
        return f"{at_col} <= %s", [at]
    if source > cursor_source:
        return f"{at_col} < %s", [at]
    return f"({at_col}, {id_col}) < (%s, %s)", [at, pk]


def _sort_key(entry: TimelineEntry) -> tuple[datetime, str, int]:
    return entry.cursor


def _merged_page(query: TimelineQuery) -> TimelinePage:
    feeds = []
    for source in timeline_sources():
        entries = sorted(source.fetch(query), key=_sort_key, reverse=True)[: query.limit]
        feeds.append(entries)
    merged = list(islice(heapq.merge(*feeds, key=_sort_key, reverse=True), query.limit))
    # A short page proves every source is exhausted; a full one may have more behind it.
    next_cursor = encode_cursor(merged[-1].cursor) if len(merged) == query.limit else None
    return TimelinePage(entries=merged, next=next_cursor)


def _clamp(limit: int) -> int:
    return max(1, min(int(limit), MAX_LIMIT))


def contact_timeline(*, user: User, contact: Contact, before: str | None, limit: int = DEFAULT_LIMIT) -> TimelinePage:
    """One page of ``contact``'s timeline, newest first, older than the ``before`` cursor."""
    cursor = decode_cursor(before)
    if not visible(Contact.objects.filter(pk=contact.pk), user).exists():
        raise NotFound("No such contact.")
    query = TimelineQuery(user=user, contact_ids=[contact.pk], before=cursor, limit=_clamp(limit))
    return _merged_page(query)


def company_timeline(*, user: User, company: Company, before: str | None, limit: int = DEFAULT_LIMIT) -> TimelinePage:
    """The company's own changes plus the timelines of the people at it that ``user`` may see."""
    cursor = decode_cursor(before)
    if not visible(Company.objects.filter(pk=company.pk), user).exists():
        raise NotFound("No such company.")
    people = visible(Contact.objects.filter(company_id=company.pk), user).order_by("-id")
    contact_ids = list(people.values_list("id", flat=True)[:COMPANY_CONTACT_CAP])
    query = TimelineQuery(user=user, contact_ids=contact_ids, before=cursor, limit=_clamp(limit), company=company)
    return _merged_page(query)
