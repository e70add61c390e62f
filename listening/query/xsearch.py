"""A listening rule in X (Twitter) recent-search syntax, for sources that pre-filter at the provider.

X cannot say everything a rule says (no wildcards, no proximity, none of our field filters but ``lang:`` and
``from:``), so the translation is a superset: whatever X cannot express is dropped where dropping only widens the
search, and every post X returns is re-checked by the engine.
"""

from __future__ import annotations

import re

from listening.query import QueryError
from listening.query.parser import And, Field, Near, Node, Not, Or, Term, parse

_X_PLAIN = re.compile(r"[^\W_]+", re.UNICODE)


def _x_term(term: Term) -> str | None:
    if term.prefix:
        return None  # X has no wildcards
    raw = term.raw.removesuffix("*")  # a wildcard on Chinese, Japanese … is a plain term (substring match)
    if len(term.words) == 1 and _X_PLAIN.fullmatch(raw):
        return raw
    return '"' + raw.replace('"', "") + '"'


def _x(node: Node) -> tuple[str | None, bool]:
    """X query text for ``node`` (None when X cannot express it) and whether it holds a keyword (X refuses a
    query of negations and conjunction-required operators alone). Everything dropped only widens the search:
    the engine re-checks every fetched post, so X only has to return a superset."""
    if isinstance(node, Term):
        text = _x_term(node)
        return text, text is not None
    if isinstance(node, Field):
        if node.kind == "lang":
            return f"lang:{node.value}", False
        if node.kind == "from_handle":
            return f"from:{node.value}", True  # from: is a standalone operator in X
        return None, False  # contacts, customers, segments, channel, geo, sentiment: ours only
    if isinstance(node, Near):  # no proximity operator in X search: both sides must occur
        return _x(And((_near_side(node.left), _near_side(node.right)), node.start, node.end))
    if isinstance(node, Not):
        return _x_negated(node.child), False
    if isinstance(node, And):
        parts = [_x(child) for child in node.children]
        texts = [text for text, _ in parts if text]
        return " ".join(texts) or None, any(positive for _, positive in parts)
    assert isinstance(node, Or)
    alternatives = [_x(child) for child in node.children]
    if any(text is None for text, _ in alternatives):
        return None, False  # an alternative X cannot express: the OR cannot narrow the search
    return "(" + " OR ".join(text for text, _ in alternatives if text) + ")", all(p for _, p in alternatives)


def _near_side(terms: tuple[Term, ...]) -> Node:
    return terms[0] if len(terms) == 1 else Or(terms, terms[0].start, terms[-1].end)


def _x_negated(node: Node) -> str | None:
    if isinstance(node, Term):
        text = _x_term(node)
        return f"-{text}" if text else None
    if isinstance(node, Field) and node.kind == "lang":
        return f"-lang:{node.value}"
    if isinstance(node, Field) and node.kind == "from_handle":
        return f"-from:{node.value}"
    if isinstance(node, Or):  # NOT (a OR b) = NOT a AND NOT b; each part X cannot say is dropped (wider)
        parts = [p for p in map(_x_negated, node.children) if p]
        return " ".join(parts) or None
    return None  # NOT (a AND b), NOT (a NEAR b): dropping the exclusion only widens the search


def to_x_query(query: str) -> str:
    """The rule in X recent-search syntax, as a superset of what the rule matches (see ``_x``). Raises QueryError
    when X cannot narrow it with a keyword (e.g. a rule of wildcards only)."""
    root = parse(query)
    text, positive = _x(root)
    if not text or not positive:
        raise QueryError(
            "X search cannot express this rule (X has no wildcards or proximity): add a plain word or phrase",
            position=0,
            end=len(query),
        )
    if isinstance(root, Or):
        text = text[1:-1]
    return text
