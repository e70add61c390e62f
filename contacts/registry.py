"""Registries that let every app touching a contact plug into contacts without contacts importing it.

- **Timeline sources**: each returns a contact's (or company's) entries older than a cursor; the timeline
  selector merges them. One query per source per page, so the query count does not grow with history.
- **Merge handlers**: each moves its rows from a duplicate to the survivor, returns what it moved (JSON), and can
  move them back on unmerge.
- **Personal-data sources**: each exports what it holds about a contact (GDPR access) and erases it (GDPR
  erasure), returning counts only.

contacts registers its own sources in ``contacts/apps.py``; threads, activities, deals, campaigns and listening
register theirs from their own ``AppConfig.ready()``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from accounts.models import User
    from contacts.models import Company, Contact


# --- Timeline ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TimelineEntry:
    """One line on a timeline. ``(at, source, id)`` is the keyset cursor: unique and totally ordered."""

    at: datetime
    source: str
    id: int
    kind: str  # e.g. "life_event", "identity_added", "change"; templates pick an icon by it
    title: str
    body: str = ""
    url: str = ""
    actor: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def cursor(self) -> tuple[datetime, str, int]:
        return (self.at, self.source, self.id)


@dataclass(frozen=True)
class TimelineQuery:
    """What a source is asked for: entries of these contacts strictly older than ``before``, newest first."""

    user: User
    contact_ids: list[int]
    before: tuple[datetime, str, int] | None
    limit: int
    company: Company | None = None


@dataclass(frozen=True)
class TimelineSource:
    key: str
    label: str
    fetch: Callable[[TimelineQuery], list[TimelineEntry]]


_TIMELINE: dict[str, TimelineSource] = {}


def register_timeline_source(source: TimelineSource) -> None:
    _TIMELINE[source.key] = source


def timeline_sources() -> list[TimelineSource]:
    return [_TIMELINE[k] for k in sorted(_TIMELINE)]


# --- Merge ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MergeHandler:
    """``move(primary, duplicate)`` re-points rows and returns a JSON-able record of exactly what it changed,
    plus conflicts it refused to resolve (never silently dropped). ``restore(primary, duplicate, record)`` undoes
    that record after the duplicate has been re-created with its old id, and returns conflict messages for rows
    that changed since the merge and cannot be put back.
    """

    key: str
    move: Callable[[Contact, Contact], tuple[dict[str, Any], list[str]]]
    restore: Callable[[Contact, Contact, dict[str, Any]], list[str]]
    order: int = 100


_MERGE: dict[str, MergeHandler] = {}


def register_merge_handler(handler: MergeHandler) -> None:
    _MERGE[handler.key] = handler


def merge_handlers() -> list[MergeHandler]:
    return sorted(_MERGE.values(), key=lambda h: (h.order, h.key))


# --- Personal data (GDPR) ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class PersonalDataSource:
    """``export(contact)`` returns JSON-able data held about the person; ``erase(contact)`` deletes or
    anonymizes it and returns how many rows it touched. Erasure runs sources in ``order`` before the contact row
    itself is removed.
    """

    key: str
    export: Callable[[Contact], Any]
    erase: Callable[[Contact], int]
    order: int = 100


_PERSONAL: dict[str, PersonalDataSource] = {}


def register_personal_data_source(source: PersonalDataSource) -> None:
    _PERSONAL[source.key] = source


def personal_data_sources() -> list[PersonalDataSource]:
    return sorted(_PERSONAL.values(), key=lambda s: (s.order, s.key))
