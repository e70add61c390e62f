"""A slow reference evaluator for the listening language, and a regex translation for the benchmark baseline.

:func:`oracle_match` is written to be obviously correct rather than fast: it tokenizes the document one
character at a time (with the shared per-character definition ``text.fold_char``, not the engine's translate
table, byte-level fast path or offset map), then loops over every rule and evaluates its AST directly: a term is
checked word by word at each position where its first word occurs, NEAR compares every pair of occurrences, field
filters read the Document. No automaton, no trigger sets, no predicate compilation; it only remembers, per
document, what it already computed (a term's occurrences, the language, the sentiment). The engine must agree
with it exactly: same rules, same terms, same spans.

:func:`regex_for` turns a rule into one ``re`` pattern, the way a naive implementation would run a rule set
(one regex per rule per post). It is meant to be run with ``pattern.search(fold(text))``, i.e. over the folded
text (case and accents already folded, words separated by spaces) so that its verdicts on the words are the
engine's: terms are whole-word (space-bounded) and case-insensitive (IGNORECASE, redundant after folding), AND
and NOT are lookaheads from the start, NEAR/n is a bounded gap of at most n-1 words in either order (exact on the
folded text). The approximation: field filters (lang, from, channel, geo, sentiment) are not text and are left
out of the pattern (an AND ignores them, an OR or NOT containing one is treated as satisfied), and a rule's
channels/sources are not checked. The regex answers the text part of a rule only.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass

from listening.query import Document, RuleSpec
from listening.query.parser import And, Field, Near, Node, Not, Or, Term, iter_terms, parse
from listening.query.text import (
    MAX_TEXT_CHARS,
    detect_lang,
    fold_char,
    haversine_km,
    provider_lang,
    sentiment,
)


@dataclass(frozen=True)
class OracleMatch:
    rule_id: int
    terms: tuple[str, ...]
    spans: tuple[tuple[int, int], ...]


@dataclass(frozen=True)
class _Token:
    word: str
    start: int  # into the original text
    end: int


# The per-character definition, memoized on its own (not the engine's translate table).
_fold_char = functools.lru_cache(maxsize=65_536)(fold_char)


def oracle_tokens(text: str) -> list[_Token]:
    """The document's words with their original offsets, built character by character."""
    text = text[:MAX_TEXT_CHARS]
    tokens: list[_Token] = []
    word: list[str] = []
    start = end = 0
    for i, ch in enumerate(text):
        folded = _fold_char(ch)
        if folded == "" and word:
            end = i + 1  # a dropped accent belongs to the word it follows
        for piece in folded:
            if piece == " ":
                if word:
                    tokens.append(_Token("".join(word), start, end))
                    word = []
            else:
                if not word:
                    start = i
                word.append(piece)
                end = i + 1
    if word:
        tokens.append(_Token("".join(word), start, end))
    return tokens


def _occurrences(term: Term, tokens: list[_Token], starts: Iterable[int] | None = None) -> list[tuple[int, int]]:
    """(first word, last word) of every place the term's words occur consecutively (looking only at ``starts``
    when given: a shortcut for positions known to hold a possible first word; each is still fully checked)."""
    n = len(term.words)
    found = []
    for i in range(len(tokens) - n + 1) if starts is None else sorted(s for s in starts if s <= len(tokens) - n):
        ok = True
        for j, w in enumerate(term.words):
            word = tokens[i + j].word
            last = j == n - 1
            if not (word.startswith(w) if (term.prefix and last) else word == w):
                ok = False
                break
        if ok:
            found.append((i, i + n - 1))
    return found


class _Memo:
    """What one document's evaluation computes once: term occurrences, its language, its sentiment. (Only to keep
    the oracle usable on thousands of posts; every value is what a direct computation returns.)"""

    def __init__(self, doc: Document, text: str, tokens: list[_Token]) -> None:
        self.doc = doc
        self.text = text
        self.tokens = tokens
        self._occurrences: dict[tuple[tuple[str, ...], bool], list[tuple[int, int]]] = {}
        self._positions: dict[str, list[int]] = {}  # word → where it occurs
        for i, token in enumerate(tokens):
            self._positions.setdefault(token.word, []).append(i)
        self._lang: str | None = None
        self._sentiment: str | None = None

    def occurrences(self, term: Term) -> list[tuple[int, int]]:
        key = (term.words, term.prefix)
        found = self._occurrences.get(key)
        if found is None:
            first = term.words[0]
            if term.prefix and len(term.words) == 1:
                starts = [i for word, at in self._positions.items() if word.startswith(first) for i in at]
            else:
                starts = self._positions.get(first, [])
            found = self._occurrences[key] = _occurrences(term, self.tokens, starts) if starts else []
        return found

    def lang(self) -> str:
        if self._lang is None:
            given = self.doc.extra.get("lang")
            self._lang = str(given) if given is not None else provider_lang(self.doc.lang) or detect_lang(self.text)
        return self._lang

    def sentiment(self) -> str:
        if self._sentiment is None:
            label = self.doc.sentiment_label
            self._sentiment = label if label is not None else sentiment(self.text)[1]
        return self._sentiment


def _field(node: Field, memo: _Memo) -> bool:
    kind, value, doc = node.kind, node.value, memo.doc
    if kind == "lang":
        return memo.lang() == value
    if kind == "sentiment":
        return memo.sentiment() == value
    if kind == "channel":
        return (doc.channel or "").lower() == value
    if kind == "from_handle":
        return (doc.author_handle or "").lower().lstrip("@") == value
    if kind == "from_contact":
        return doc.author_contact_id is not None
    if kind == "from_customers":
        return bool(doc.author_is_customer)
    if kind == "from_segment":
        return value in (doc.author_segment_ids or ())
    lat, lng, km = value  # type: ignore[misc]
    if doc.latitude is None or doc.longitude is None:
        return False
    return haversine_km(lat, lng, doc.latitude, doc.longitude) <= km


def _evaluate(node: Node, memo: _Memo) -> bool:
    if isinstance(node, Term):
        return bool(memo.occurrences(node))
    if isinstance(node, Field):
        return _field(node, memo)
    if isinstance(node, Not):
        return not _evaluate(node.child, memo)
    if isinstance(node, And):
        return all(_evaluate(child, memo) for child in node.children)
    if isinstance(node, Or):
        return any(_evaluate(child, memo) for child in node.children)
    assert isinstance(node, Near)
    left = [occ for term in node.left for occ in memo.occurrences(term)]
    right = [occ for term in node.right for occ in memo.occurrences(term)]
    for a_first, a_last in left:
        for b_first, b_last in right:
            if b_first > a_last and b_first - a_last <= node.distance:
                return True
            if a_first > b_last and a_first - b_last <= node.distance:
                return True
    return False


def _applies(spec: RuleSpec, doc: Document) -> bool:
    if doc.kind == "message":
        if not spec.include_messages:
            return False
    else:
        if not spec.include_posts:
            return False
        if spec.source_ids and doc.source_id not in spec.source_ids:
            return False
    return not spec.channels or (doc.channel or "").lower() in {c.lower() for c in spec.channels}


class Oracle:
    """The rules parsed once (invalid ones left out), to evaluate many documents one rule after another."""

    def __init__(self, specs: Iterable[RuleSpec]) -> None:
        self.rules: list[tuple[RuleSpec, Node]] = []
        for spec in sorted(specs, key=lambda s: s.rule_id):
            try:
                self.rules.append((spec, parse(spec.query)))
            except ValueError:
                continue

    def match(self, doc: Document) -> list[OracleMatch]:
        return _match_all(self.rules, doc)


def oracle_match(specs: Iterable[RuleSpec], doc: Document) -> list[OracleMatch]:
    """Every rule ``doc`` satisfies, by rule id, with the positive terms that occur and all their spans."""
    return Oracle(specs).match(doc)


def _match_all(rules: list[tuple[RuleSpec, Node]], doc: Document) -> list[OracleMatch]:
    text = (doc.text or "")[:MAX_TEXT_CHARS]
    tokens = oracle_tokens(text)
    memo = _Memo(doc, text, tokens)
    matches = []
    for spec, root in rules:
        if not _applies(spec, doc) or not _evaluate(root, memo):
            continue
        terms: list[str] = []
        spans: set[tuple[int, int]] = set()
        for term, negated in iter_terms(root):
            if negated or term.raw in terms:
                continue
            occurrences = memo.occurrences(term)
            if occurrences:
                terms.append(term.raw)
                spans.update((tokens[first].start, tokens[last].end) for first, last in occurrences)
        matches.append(OracleMatch(spec.rule_id, tuple(terms), tuple(sorted(spans))))
    return matches


# Regex baseline --------------------------------------------------------------------------------------------


def _term_regex(term: Term) -> str:
    body = " +".join(re.escape(w) for w in term.words)
    return r"(?<!\S)" + body + (r"\S*" if term.prefix else "") + r"(?!\S)"


def _assertion(node: Node) -> str | None:
    """A zero-width pattern, true at the start of the text when ``node`` holds; None for "not text" (fields)."""
    if isinstance(node, Term):
        return "(?=.*?" + _term_regex(node) + ")"
    if isinstance(node, Field):
        return None
    if isinstance(node, Not):
        inner = _assertion(node.child)
        return None if inner is None else "(?!" + inner + ")"
    if isinstance(node, And):
        parts = [p for p in map(_assertion, node.children) if p is not None]
        return "".join(parts) if parts else None
    if isinstance(node, Or):
        parts = [_assertion(child) for child in node.children]
        if any(p is None for p in parts):
            return None
        return "(?:" + "|".join(p for p in parts if p) + ")"
    assert isinstance(node, Near)
    left = "(?:" + "|".join(_term_regex(t) for t in node.left) + ")"
    right = "(?:" + "|".join(_term_regex(t) for t in node.right) + ")"
    gap = rf"(?: +\S+){{0,{node.distance - 1}}} +"
    return "(?=.*?(?:" + left + gap + right + "|" + right + gap + left + "))"


def regex_for(query: str) -> re.Pattern[str]:
    """One pattern for the rule, to ``search`` in ``text.fold(document)`` (see the module docstring)."""
    assertion = _assertion(parse(query)) or ""
    return re.compile(r"\A" + assertion, re.IGNORECASE | re.DOTALL)
