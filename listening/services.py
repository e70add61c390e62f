"""Listening writes. (Skeleton: signatures agreed between the backend and the UI; the backend fills them in and
may turn this module into a package ``listening/services/`` re-exporting the same names.)"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from accounts.models import User
from listening.models import ListeningRule, ListeningSource, Mention
from listening.query import Match, QueryError


@dataclass
class DryRunHit:
    kind: str  # "message" or "post"
    object_id: int
    channel: str
    occurred_at: Any
    author: str
    contact_id: int | None
    snippet: str
    highlights: list[list[int]]  # [[start, end], …] into snippet
    terms: list[str]
    sentiment: str


@dataclass
class DryRunResult:
    scanned: int = 0
    hits: list[DryRunHit] = field(default_factory=list)
    error: QueryError | None = None
    elapsed_ms: float = 0.0


@dataclass
class EvaluateResult:
    mentions: list[int] = field(default_factory=list)  # new Mention ids
    alerts: int = 0
    activities: int = 0
    tagged: int = 0


def rule_create(*, actor: User, data: dict[str, Any]) -> ListeningRule:
    """``data``: name, query, description, active, include_messages, include_posts, channels, source_ids, action
    fields of ListeningRule, visibility, team. Raises DomainError (fields={"query": ["… at character N"]}, and
    ``extra={"position": n, "end": m}`` for the editor) when the query does not parse. Bumps RuleSetVersion."""
    raise NotImplementedError


def rule_update(*, actor: User, rule: ListeningRule, data: dict[str, Any]) -> ListeningRule:
    raise NotImplementedError


def rule_delete(*, actor: User, rule: ListeningRule) -> None:
    raise NotImplementedError


def rule_dry_run(
    *, actor: User, query: str, channels: list[str] | None = None, include_messages: bool = True,
    include_posts: bool = True, limit: int = 1000, max_hits: int = 50,
) -> DryRunResult:  # fmt: skip
    """What ``query`` would have matched in the last ``limit`` stored posts and messages ``actor`` can see. Never
    raises for a bad query: returns ``error`` instead (the editor shows it live)."""
    raise NotImplementedError


def source_create(*, actor: User, data: dict[str, Any]) -> ListeningSource:
    raise NotImplementedError


def source_update(*, actor: User, source: ListeningSource, data: dict[str, Any]) -> ListeningSource:
    raise NotImplementedError


def mentions_evaluate_messages(*, message_ids: list[int]) -> EvaluateResult:
    """Run the current engine over stored thread messages; store mentions and run actions. Idempotent."""
    raise NotImplementedError


def posts_ingest(*, source: ListeningSource, posts: list[Any]) -> EvaluateResult:
    """Store public posts once each (UNIQUE(source, external_id)), then evaluate the new ones. Idempotent."""
    raise NotImplementedError


def spike_scan(*, now: Any = None) -> int:
    """Raise spike alerts for every active rule whose last-24 h volume exceeds its 7-day mean + k std devs."""
    raise NotImplementedError


def mention_matches(mention: Mention) -> list[Match]:  # pragma: no cover - helper for the UI, optional
    raise NotImplementedError
