"""The listening query language and the one compiled engine that runs every active rule over a document.

Public interface (everything else in this package is private to it):

- :class:`QueryError` — a rule that cannot be parsed or is not allowed; ``position``/``end`` are 0-based character
  offsets into the query, so the editor can underline the problem.
- :func:`parse` — query text → AST (raises QueryError). ``validate(query)`` is parse plus the limits.
- :class:`RuleSpec` — what the engine needs of a ListeningRule (its query plus where it applies).
- :class:`Document` — one post or message to evaluate, with the fields the field filters read.
- :class:`Engine` — ``Engine.compile(specs)`` builds one Aho-Corasick automaton over the literal terms of all
  rules; ``engine.match(doc)`` returns the :class:`Match` of every rule the document satisfies, evaluating only
  the rules whose terms occur in it.
- :func:`literal_terms` / :func:`to_x_query` — a rule's positive terms, and the same in X (Twitter) search syntax,
  for sources that pre-filter at the provider (results are re-checked locally by the engine).
- :func:`sentiment` — VADER compound score and label for a text.
- :func:`highlight_snippet` — a short excerpt around the first match, with the match spans inside it.

The slow, obviously correct reference evaluator used by the oracle test and the benchmark lives in
``listening.query.oracle``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field


class QueryError(ValueError):
    def __init__(self, message: str, *, position: int = 0, end: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.position = position
        self.end = position + 1 if end is None else end

    def __str__(self) -> str:
        return f"{self.message} (at character {self.position + 1})"


@dataclass(frozen=True)
class RuleSpec:
    """What the engine needs of a ListeningRule. Empty ``channels``/``source_ids`` mean "all"."""

    rule_id: int
    query: str
    channels: frozenset[str] = frozenset()
    include_messages: bool = True
    include_posts: bool = True
    source_ids: frozenset[int] = frozenset()


@dataclass
class Document:
    """One post or message. ``kind`` is "message" (threads) or "post" (a listening source's public post)."""

    text: str
    kind: str = "post"
    channel: str = ""
    source_id: int | None = None
    lang: str = ""  # ISO 639-1 from the provider; detected lazily (py3langid) only when a rule asks lang:
    author_handle: str = ""  # lower-case, without "@"
    author_contact_id: int | None = None
    author_is_customer: bool = False
    author_segment_ids: frozenset[int] = frozenset()  # for from:segment:<id> once campaigns land
    latitude: float | None = None
    longitude: float | None = None
    sentiment_label: str | None = None  # computed lazily with VADER when a rule asks sentiment:
    sentiment_score: float | None = None
    # Set by the engine as it computes them; callers may read them after match().
    extra: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class Match:
    rule_id: int
    terms: tuple[str, ...]  # the rule's terms that occurred, as written in the rule
    spans: tuple[tuple[int, int], ...]  # character offsets into Document.text, sorted


def parse(query: str):  # type: ignore[no-untyped-def]
    from listening.query.parser import parse as _parse

    return _parse(query)


def validate(query: str) -> None:
    """Raise QueryError when ``query`` cannot be a rule (syntax, limits, NOT-only, no positive term …)."""
    from listening.query.parser import validate as _validate

    _validate(query)


class Engine:
    """Compiled form of every active rule. Immutable once built; build a new one when the rule set changes."""

    version: int
    errors: dict[int, QueryError]  # rules that failed to compile (skipped, never raising at match time)

    @classmethod
    def compile(cls, specs: Iterable[RuleSpec], *, version: int = 0) -> Engine:
        from listening.query.engine import compile_engine

        return compile_engine(specs, version=version)

    def match(self, doc: Document) -> list[Match]:  # pragma: no cover - implemented by the compiled subclass
        raise NotImplementedError


def literal_terms(query: str) -> list[str]:
    from listening.query.parser import literal_terms as _literal_terms

    return _literal_terms(query)


def to_x_query(query: str) -> str:
    from listening.query.parser import to_x_query as _to_x_query

    return _to_x_query(query)


def sentiment(text: str) -> tuple[float, str]:
    from listening.query.text import sentiment as _sentiment

    return _sentiment(text)


def highlight_snippet(text: str, spans: Iterable[tuple[int, int]], *, width: int = 280) -> tuple[str, list[list[int]]]:
    from listening.query.text import highlight_snippet as _highlight

    return _highlight(text, spans, width=width)


SentimentFn = Callable[[str], tuple[float, str]]
