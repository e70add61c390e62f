"""What listening services return (shared by the UI and the API)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from listening.query import QueryError


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
    matched: int = 0  # every match among the scanned documents (``hits`` stops at ``max_hits``)


@dataclass
class EvaluateResult:
    mentions: list[int] = field(default_factory=list)  # new Mention ids
    alerts: int = 0
    activities: int = 0
    tagged: int = 0
    posts_created: int = 0  # posts_ingest: posts stored for the first time
    posts_duplicate: int = 0  # posts_ingest: already stored (a re-fetch or a replayed webhook)
    posts_deleted: int = 0  # posts_ingest: stored posts newly marked deleted
    evaluated: int = 0  # documents run through the engine

    def merge(self, other: EvaluateResult) -> None:
        self.mentions.extend(other.mentions)
        for name in ("alerts", "activities", "tagged", "posts_created", "posts_duplicate", "posts_deleted"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.evaluated += other.evaluated
