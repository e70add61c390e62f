"""The compiled engine: every active rule's terms in one Aho-Corasick automaton, rules evaluated only when hit.

How a document is matched:

1. Its text (the first ``MAX_TEXT_CHARS`` characters) is folded once with ``str.translate`` and re-joined as
   ``" w1 w2 … wn "``: one space around every word, so a term's key ``" acme corp "`` can only match whole words
   and consecutive words, and a wildcard's key ``" swit"`` (no trailing space) only the beginning of a word.
2. One pass of the automaton over that string finds every occurrence of every term of every rule.
3. The rules to evaluate are those *triggered* by a hit key. Each rule has a trigger set chosen at compile time
   such that any document it matches must contain one of those keys: a term triggers itself; an OR needs the
   triggers of all its alternatives; an AND (or NEAR) needs those of only one operand, the one least likely to
   occur (so ``the AND acme`` is triggered by "acme" alone, not by every post containing "the"); NOT and field
   filters never trigger (the parser refuses rules that would match without a positive term).
4. Each candidate's conditions are evaluated on the hits: presence, NEAR distances in word positions, field
   filters (language detection and VADER sentiment run lazily, at most once per document, and only when a
   candidate reaches such a filter; cheap conditions of an AND are evaluated first).
5. A satisfied rule's Match reports every positive term of the rule (not under NOT) that occurs in the document,
   as written, in query order, and the spans of all their occurrences in the original text (so a NEAR term is
   highlighted wherever it occurs, not only where it was near).

No step loops over all rules; a document that contains none of the terms costs one fold, one split/join and one
automaton pass. Invalid rules are left out at compile time and kept in ``errors``; matching never raises for a
rule.
"""

from __future__ import annotations

import gc
import logging
import re
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable
from typing import Any

import ahocorasick

from listening.query import Document, Engine, Match, QueryError, RuleSpec
from listening.query.parser import And, Field, Near, Node, Not, Or, Term, iter_terms, parse
from listening.query.text import (
    MAX_TEXT_CHARS,
    OffsetMap,
    detect_lang,
    fold,
    haversine_km,
    joined_words,
    provider_lang,
    sentiment,
)

log = logging.getLogger(__name__)

Predicate = Callable[["_Doc"], bool]
_NON_SPACE = re.compile(r"\S+")

# Words so common that a rule should never be triggered by them when it has anything rarer (trigger choice only;
# they match like any other word).
_COMMON = frozenset(
    [
        "a", "an", "and", "are", "as", "at", "be", "but", "by", "for", "from", "has", "have", "i", "in", "is", "it",
        "its", "my", "no", "not", "of", "on", "or", "our", "so", "that", "the", "their", "this", "to", "was", "we",
        "were", "with", "you", "your",
    ]
)  # fmt: skip


class _Doc:
    """One document being matched: its folded words, the automaton hits, and what was computed lazily."""

    __slots__ = ("_occ", "_offsets", "_starts", "_word_spans", "doc", "hits", "joined", "key_len", "text")

    def __init__(self, doc: Document, text: str, joined: str, hits: dict[int, list[int]], key_len: list[int]) -> None:
        self.doc = doc
        self.text = text
        self.joined = joined
        self.hits = hits  # key id → end offsets (inclusive) in ``joined``, ascending
        self.key_len = key_len
        self._starts: list[int] | None = None
        self._word_spans: list[tuple[int, int]] | None = None
        self._offsets: OffsetMap | None = None
        self._occ: dict[int, list[int]] = {}

    def first_tokens(self, kid: int) -> list[int]:
        """Index of the first word of each occurrence of key ``kid``, ascending."""
        occ = self._occ.get(kid)
        if occ is not None:
            return occ
        offset = 2 - self.key_len[kid]  # end - len + 1 is the key's leading space; the word starts one further
        joined = self.joined
        if len(joined) < 2_000:
            # Word i is preceded by i + 1 spaces; counting them is cheaper than a position table for a tweet.
            occ = [joined.count(" ", 0, end + offset) - 1 for end in self.hits[kid]]
        else:
            starts = self._starts
            if starts is None:
                starts, pos = [], 1
                for token in joined.split():
                    starts.append(pos)
                    pos += len(token) + 1
                self._starts = starts
            occ = [bisect_left(starts, end + offset) for end in self.hits[kid]]
        self._occ[kid] = occ
        return occ

    def span(self, first: int, last: int) -> tuple[int, int]:
        """Original offsets of words ``first`` … ``last`` (for highlighting)."""
        if self._word_spans is None:
            self._word_spans = [m.span() for m in _NON_SPACE.finditer(fold(self.text))]
            self._offsets = OffsetMap(self.text)
        offsets = self._offsets
        assert offsets is not None
        return offsets.char_at(self._word_spans[first][0]), offsets.span(*self._word_spans[last])[1]

    # Field filters, computed once per document ------------------------------------------------------------

    def lang(self) -> str:
        doc = self.doc
        code = doc.extra.get("lang")
        if code is None:
            code = provider_lang(doc.lang) or detect_lang(self.text)
            doc.extra["lang"] = code
            if code and not provider_lang(doc.lang):
                doc.lang = code
        return str(code)

    def sentiment_label(self) -> str:
        doc = self.doc
        if doc.sentiment_label is None:
            doc.sentiment_score, doc.sentiment_label = sentiment(self.text)
        return doc.sentiment_label


def _near(ctx: _Doc, left: tuple[tuple[int, int], ...], right: tuple[tuple[int, int], ...], distance: int) -> bool:
    """An occurrence of a ``left`` term and one of a ``right`` term, not overlapping, at most ``distance`` words
    apart (1 = adjacent), in either order. Sorted occurrence lists and bisection keep a long document linear."""
    hits = ctx.hits
    left_occ = [(s, s + n - 1) for kid, n in left if kid in hits for s in ctx.first_tokens(kid)]
    if not left_occ:
        return False
    right_starts = sorted(s for kid, n in right if kid in hits for s in ctx.first_tokens(kid))
    if not right_starts:
        return False
    right_ends = sorted(s + n - 1 for kid, n in right if kid in hits for s in ctx.first_tokens(kid))
    for first, last in left_occ:
        j = bisect_right(right_starts, last)  # the first right occurrence starting after this one ends
        if j < len(right_starts) and right_starts[j] - last <= distance:
            return True
        j = bisect_left(right_ends, first) - 1  # the last right occurrence ending before this one starts
        if j >= 0 and first - right_ends[j] <= distance:
            return True
    return False


class _Rule:
    __slots__ = ("channels", "include_messages", "include_posts", "positive", "predicate", "rule_id", "source_ids")

    def __init__(self, spec: RuleSpec, predicate: Predicate | None, positive: tuple[tuple[str, int, int], ...]):
        self.rule_id = spec.rule_id
        self.channels = frozenset(c.lower() for c in spec.channels)
        self.include_messages = spec.include_messages
        self.include_posts = spec.include_posts
        self.source_ids = frozenset(spec.source_ids)
        self.predicate = predicate  # None: being triggered is matching (a term, or an OR of terms)
        self.positive = positive  # (term as written, key id, words in the key), once per term

    def applies_to(self, doc: Document) -> bool:
        if doc.kind == "message":
            if not self.include_messages:
                return False
        else:
            if not self.include_posts:
                return False
            if self.source_ids and doc.source_id not in self.source_ids:
                return False
        return not self.channels or (doc.channel or "").lower() in self.channels


class _Compiler:
    """Turns ASTs into predicates over a _Doc, assigning one key id per distinct term key."""

    def __init__(self) -> None:
        self.keys: dict[str, int] = {}
        self.key_len: list[int] = []
        self.key_cost: list[float] = []

    def key(self, term: Term) -> int:
        key = term.key
        kid = self.keys.get(key)
        if kid is None:
            kid = self.keys[key] = len(self.key_len)
            self.key_len.append(len(key))
            self.key_cost.append(_key_cost(term))
        return kid

    def predicate(self, node: Node) -> tuple[Predicate, int]:
        """The node's predicate and how expensive it is to evaluate (to order AND/OR operands)."""
        if isinstance(node, Term):
            kid = self.key(node)
            return (lambda c: kid in c.hits), 0
        if isinstance(node, Near):
            left = tuple((self.key(t), len(t.words)) for t in node.left)
            right = tuple((self.key(t), len(t.words)) for t in node.right)
            distance = node.distance
            return (lambda c: _near(c, left, right, distance)), 2
        if isinstance(node, Not):
            inner, cost = self.predicate(node.child)
            return (lambda c: not inner(c)), cost
        if isinstance(node, Field):
            return _field_predicate(node)
        assert isinstance(node, And | Or)
        parts = sorted((self.predicate(child) for child in node.children), key=lambda pc: pc[1])
        preds = tuple(p for p, _ in parts)
        cost = max(c for _, c in parts)
        if isinstance(node, And):
            if len(preds) == 2:
                a, b = preds
                return (lambda c: a(c) and b(c)), cost
            return (lambda c: all(p(c) for p in preds)), cost
        if len(preds) == 2:
            a, b = preds
            return (lambda c: a(c) or b(c)), cost
        return (lambda c: any(p(c) for p in preds)), cost

    def triggers(self, node: Node) -> tuple[float, frozenset[int]] | None:
        """The cheapest set of keys one of which every matching document contains, with its cost (see module)."""
        if isinstance(node, Term):
            kid = self.key(node)
            return self.key_cost[kid], frozenset((kid,))
        if isinstance(node, Near):
            sides = [self.triggers(Or(side, node.start, node.end)) for side in (node.left, node.right)]
            return min((s for s in sides if s is not None), key=lambda s: s[0])
        if isinstance(node, And):
            options = [t for t in map(self.triggers, node.children) if t is not None]
            return min(options, key=lambda t: t[0]) if options else None
        if isinstance(node, Or):
            union: set[int] = set()
            total = 0.0
            for child in node.children:
                t = self.triggers(child)
                if t is None:
                    return None
                total += t[0]
                union |= t[1]
            return total, frozenset(union)
        return None  # Not, Field


def _key_cost(term: Term) -> float:
    """How likely a key is to occur in any post (a guess: long words and phrases are rare, "the" is everywhere)."""
    if len(term.words) > 1:
        return 0.5
    word = term.words[0]
    if word in _COMMON:
        cost = 100.0
    elif len(word) <= 2:
        cost = 20.0
    elif len(word) == 3:
        cost = 3.0
    else:
        cost = 1.0
    return cost * 2 if term.prefix else cost


def _field_predicate(node: Field) -> tuple[Predicate, int]:
    kind, value = node.kind, node.value
    if kind == "lang":
        return (lambda c: c.lang() == value), 3
    if kind == "sentiment":
        return (lambda c: c.sentiment_label() == value), 4
    if kind == "channel":
        return (lambda c: (c.doc.channel or "").lower() == value), 1
    if kind == "from_handle":
        return (lambda c: (c.doc.author_handle or "").lower().lstrip("@") == value), 1
    if kind == "from_contact":
        return (lambda c: c.doc.author_contact_id is not None), 1
    if kind == "from_customers":
        return (lambda c: bool(c.doc.author_is_customer)), 1
    if kind == "from_segment":
        return (lambda c: value in (c.doc.author_segment_ids or ())), 1
    assert kind == "geo"
    lat, lng, km = value  # type: ignore[misc]

    def near_point(c: _Doc) -> bool:
        d = c.doc
        if d.latitude is None or d.longitude is None:
            return False
        return haversine_km(lat, lng, d.latitude, d.longitude) <= km

    return near_point, 1


class CompiledEngine(Engine):
    def __init__(self, *, version: int, automaton: Any, rules: list[_Rule], triggered: list[tuple[int, ...]],
                 key_len: list[int], errors: dict[int, QueryError]) -> None:  # fmt: skip
        self.version = version
        self.errors = errors
        self._automaton = automaton
        self._rules = rules
        self._triggered = triggered  # key id → indexes in _rules of the rules it triggers
        self._key_len = key_len

    @property
    def rule_count(self) -> int:
        return len(self._rules)

    @property
    def key_count(self) -> int:
        return len(self._key_len)

    def _scan(self, text: str) -> tuple[str, dict[int, list[int]], set[int]]:
        """The document's joined words, every key occurrence in them, and the rules those keys trigger."""
        joined = joined_words(text)
        hits: dict[int, list[int]] = {}
        for end, kid in self._automaton.iter(joined):
            ends = hits.get(kid)
            if ends is None:
                hits[kid] = [end]
            else:
                ends.append(end)
        candidates: set[int] = set()
        if hits:
            triggered = self._triggered
            for kid in hits:
                candidates.update(triggered[kid])
        return joined, hits, candidates

    def candidates(self, doc: Document) -> list[int]:
        """Ids of the rules ``match`` would evaluate for ``doc`` (for tests and diagnostics)."""
        if self._automaton is None:
            return []
        return [self._rules[i].rule_id for i in sorted(self._scan((doc.text or "")[:MAX_TEXT_CHARS])[2])]

    def match(self, doc: Document) -> list[Match]:
        if self._automaton is None:
            return []
        text = doc.text or ""
        if len(text) > MAX_TEXT_CHARS:
            text = text[:MAX_TEXT_CHARS]
        joined, hits, candidates = self._scan(text)
        if not candidates:
            return []
        ctx = _Doc(doc, text, joined, hits, self._key_len)
        matches = []
        rules = self._rules
        for index in sorted(candidates):
            rule = rules[index]
            try:
                if not rule.applies_to(doc):
                    continue
                if rule.predicate is not None and not rule.predicate(ctx):
                    continue
            except (TypeError, ValueError):  # a malformed Document field (say, a latitude that is not a number)
                log.warning("listening rule %s skipped for a document it cannot evaluate", rule.rule_id, exc_info=True)
                continue
            matches.append(self._match(rule, ctx))
        return matches

    def _match(self, rule: _Rule, ctx: _Doc) -> Match:
        terms = []
        found = set()
        for raw, kid, n in rule.positive:
            if kid not in ctx.hits:
                continue
            terms.append(raw)
            for first in ctx.first_tokens(kid):
                found.add(ctx.span(first, first + n - 1))
        return Match(rule_id=rule.rule_id, terms=tuple(terms), spans=tuple(sorted(found)))


def compile_engine(specs: Iterable[RuleSpec], *, version: int = 0) -> CompiledEngine:
    """Compile every valid spec into one engine; a spec that does not parse is left out and kept in ``errors``."""
    # Building allocates hundreds of thousands of long-lived objects (ASTs, closures): the cyclic garbage collector
    # would rescan them all again and again for nothing (none of them is garbage), doubling the compile time.
    enabled = gc.isenabled()
    gc.disable()
    try:
        return _compile(specs, version)
    finally:
        if enabled:
            gc.enable()


def _compile(specs: Iterable[RuleSpec], version: int) -> CompiledEngine:
    compiler = _Compiler()
    rules: list[_Rule] = []
    rule_triggers: list[frozenset[int]] = []
    errors: dict[int, QueryError] = {}
    for spec in sorted(specs, key=lambda s: s.rule_id):
        try:
            root = parse(spec.query)
            found = compiler.triggers(root)
            if found is None:  # pragma: no cover - parse() refuses unanchored rules
                raise QueryError("A rule needs at least one word or phrase", position=0, end=len(spec.query))
            simple = isinstance(root, Term) or (
                isinstance(root, Or) and all(isinstance(c, Term) for c in root.children)
            )
            predicate = None if simple else compiler.predicate(root)[0]
        except QueryError as exc:
            errors[spec.rule_id] = exc
            continue
        except Exception as exc:  # one broken rule must never stop the others from compiling
            errors[spec.rule_id] = QueryError(f"This rule could not be compiled: {exc}")
            continue
        positive: dict[str, tuple[str, int, int]] = {}
        for term, negated in iter_terms(root):
            if not negated and term.raw not in positive:
                positive[term.raw] = (term.raw, compiler.key(term), len(term.words))
        rules.append(_Rule(spec, predicate, tuple(positive.values())))
        rule_triggers.append(found[1])

    triggered: list[list[int]] = [[] for _ in compiler.key_len]
    for index, kids in enumerate(rule_triggers):
        for kid in kids:
            triggered[kid].append(index)
    automaton = None
    if compiler.keys:
        automaton = ahocorasick.Automaton()
        for key, kid in compiler.keys.items():
            automaton.add_word(key, kid)
        automaton.make_automaton()
    return CompiledEngine(
        version=version,
        automaton=automaton,
        rules=rules,
        triggered=[tuple(t) for t in triggered],
        key_len=compiler.key_len,
        errors=errors,
    )
