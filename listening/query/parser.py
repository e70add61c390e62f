"""The listening query language: tokenizer, recursive-descent parser and limits (X translation: ``xsearch``).

Grammar, loosest binding first (operators are upper-case; lower-case "and", "or", "not", "near" are words)::

    query   := or
    or      := and ("OR" and)*
    and     := unary (["AND"] unary)*          adjacent items are ANDed
    unary   := "NOT" unary | near
    near    := primary ["NEAR/n" primary]       n = 1 … 20; each side a word, a phrase or an OR group of them
    primary := word | word* | "phrase" | "phrase*" | field:value | "(" or ")"

A word or phrase matches whole words, case- and accent-insensitively (see ``listening.query.text``); a word
written with punctuation ("e-mail", "acme.com") is the phrase of its parts. ``switch*`` matches words that start
with "switch" (at least 3 letters before the ``*``). ``a NEAR/n b`` holds when an occurrence of a and one of b,
in either order and not overlapping, are at most n words apart: NEAR/1 means adjacent, NEAR/2 allows one word
between them. Field filters: ``lang:xx`` (ISO 639-1), ``from:@handle`` / ``from:handle``, ``from:contact`` (any
known contact), ``from:customers``, ``from:segment:<id>``, ``channel:<name>``, ``geo:(lat,lng,km)``,
``sentiment:negative|neutral|positive``. Field names are case-insensitive; put text that looks like a field in
quotes to search for it ("note: pricing").

A rule must always need at least one word or phrase: ``a AND NOT b`` is fine, ``NOT a``, ``lang:en`` and
``a OR lang:en`` (the second alternative would match almost everything) are refused.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from dataclasses import dataclass

from listening.query import QueryError
from listening.query.text import is_no_space_char, words

MAX_QUERY_CHARS = 10_000
MAX_TERMS = 1_000
MAX_DEPTH = 40  # nested parentheses and NOTs; also bounds the parser's recursion
MAX_NEAR = 20
MAX_TERM_CHARS = 200  # Mention.matched_terms stores each term in 200 characters
MIN_WILDCARD_CHARS = 3

_ISO_639_1 = frozenset(
    [
        "aa", "ab", "ae", "af", "ak", "am", "an", "ar", "as", "av", "ay", "az", "ba", "be", "bg", "bh", "bi", "bm",
        "bn", "bo", "br", "bs", "ca", "ce", "ch", "co", "cr", "cs", "cu", "cv", "cy", "da", "de", "dv", "dz", "ee",
        "el", "en", "eo", "es", "et", "eu", "fa", "ff", "fi", "fj", "fo", "fr", "fy", "ga", "gd", "gl", "gn", "gu",
        "gv", "ha", "he", "hi", "ho", "hr", "ht", "hu", "hy", "hz", "ia", "id", "ie", "ig", "ii", "ik", "io", "is",
        "it", "iu", "ja", "jv", "ka", "kg", "ki", "kj", "kk", "kl", "km", "kn", "ko", "kr", "ks", "ku", "kv", "kw",
        "ky", "la", "lb", "lg", "li", "ln", "lo", "lt", "lu", "lv", "mg", "mh", "mi", "mk", "ml", "mn", "mr", "ms",
        "mt", "my", "na", "nb", "nd", "ne", "ng", "nl", "nn", "no", "nr", "nv", "ny", "oc", "oj", "om", "or", "os",
        "pa", "pi", "pl", "ps", "pt", "qu", "rm", "rn", "ro", "ru", "rw", "sa", "sc", "sd", "se", "sg", "si", "sk",
        "sl", "sm", "sn", "so", "sq", "sr", "ss", "st", "su", "sv", "sw", "ta", "te", "tg", "th", "ti", "tk", "tl",
        "tn", "to", "tr", "ts", "tt", "tw", "ty", "ug", "uk", "ur", "uz", "ve", "vi", "vo", "wa", "wo", "xh", "yi",
        "yo", "za", "zh", "zu",
    ]
)  # fmt: skip
FIELDS = ("lang", "from", "channel", "geo", "sentiment")
SENTIMENTS = ("negative", "neutral", "positive")


# AST -------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Term:
    """A word, phrase or wildcard. ``words`` are folded; with ``prefix`` the last one is a word's beginning."""

    raw: str  # as written, without quotes: what Match.terms reports
    words: tuple[str, ...]
    prefix: bool
    start: int
    end: int

    @property
    def key(self) -> str:
        """The term in the engine's space-joined folded text: spaces on both sides are the word boundaries."""
        return " " + " ".join(self.words) + ("" if self.prefix else " ")


@dataclass(frozen=True, slots=True)
class Field:
    kind: str  # lang, from_handle, from_contact, from_customers, from_segment, channel, geo, sentiment
    value: object
    raw: str
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class Not:
    child: Node
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class And:
    children: tuple[Node, ...]
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class Or:
    children: tuple[Node, ...]
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class Near:
    left: tuple[Term, ...]  # an OR group of terms (often just one)
    right: tuple[Term, ...]
    distance: int
    start: int
    end: int


Node = Term | Field | Not | And | Or | Near


# Tokens ----------------------------------------------------------------------------------------------------

_TOKEN_RE = re.compile(
    r"""
      (?P<space>\s+)
    | (?P<lparen>\()
    | (?P<rparen>\))
    | (?P<quote>"[^"]*"?)
    | (?P<geo>[gG][eE][oO]:\([^()"]*\)?)
    | (?P<word>[^\s()"]+)
    """,
    re.X,
)
_FIELD_RE = re.compile(r"([A-Za-z_]+):(.*)", re.S)
_NEAR_RE = re.compile(r"NEAR(?:/(\S*))?")
_HANDLE_RE = re.compile(r"@?([A-Za-z0-9_.\-]{1,100})")
_CHANNEL_RE = re.compile(r"[a-z0-9_]{1,20}")
_GEO_RE = re.compile(r"\(\s*([-+]?[\d.]+)\s*,\s*([-+]?[\d.]+)\s*,\s*([\d.]+)\s*(?:km)?\s*\)", re.I)

# Token kinds
_LP, _RP, _AND, _OR, _NOT, _NEAR, _TERM, _FIELD = "(", ")", "AND", "OR", "NOT", "NEAR", "TERM", "FIELD"


@dataclass(slots=True)
class _Token:
    kind: str
    start: int
    end: int
    node: Term | Field | None = None
    distance: int = 0


def _term(raw: str, body: str, prefix: bool, start: int, end: int) -> Term:
    if len(raw) > MAX_TERM_CHARS:
        raise QueryError(f"A word or phrase can be at most {MAX_TERM_CHARS} characters", position=start, end=end)
    folded = tuple(words(body))
    if not folded:
        raise QueryError(f"“{raw}” has no letters or digits to match", position=start, end=end)
    if prefix and is_no_space_char(folded[-1][-1]):
        prefix = False  # Chinese, Japanese, Thai … terms already match inside longer runs of text
    if prefix and sum(map(len, folded)) < MIN_WILDCARD_CHARS:
        raise QueryError(
            f"Put at least {MIN_WILDCARD_CHARS} letters before the * wildcard (“{raw}” would match too much)",
            position=start,
            end=end,
        )
    return Term(raw, folded, prefix, start, end)


def _field(name: str, value: str, raw: str, start: int, end: int) -> Field:
    vstart = start + len(name) + 1

    def bad(message: str) -> QueryError:
        return QueryError(message, position=vstart if value else start, end=end)

    if name == "lang":
        code = value.lower()
        if code not in _ISO_639_1:
            raise bad(f"“{value}” is not a language code: use two letters (ISO 639-1) such as en, fr, de, es")
        return Field("lang", code, raw, start, end)
    if name == "from":
        lowered = value.lower()
        if lowered in ("contact", "contacts"):
            return Field("from_contact", None, raw, start, end)
        if lowered in ("customer", "customers"):
            return Field("from_customers", None, raw, start, end)
        if lowered.startswith("segment:"):
            segment = lowered[len("segment:") :]
            if not segment.isascii() or not segment.isdigit():
                raise bad("from:segment: takes a segment number, e.g. from:segment:12")
            return Field("from_segment", int(segment), raw, start, end)
        handle = _HANDLE_RE.fullmatch(value)
        if not handle:
            raise bad("from: takes @handle, contact, customers or segment:<number>")
        return Field("from_handle", handle.group(1).lower(), raw, start, end)
    if name == "channel":
        channel = value.lower()
        if not _CHANNEL_RE.fullmatch(channel):
            raise bad("channel: takes a channel name such as twitter, facebook, email, sms, blog")
        return Field("channel", channel, raw, start, end)
    if name == "sentiment":
        label = value.lower()
        if label not in SENTIMENTS:
            raise bad("sentiment: takes negative, neutral or positive")
        return Field("sentiment", label, raw, start, end)
    # geo
    geo = _GEO_RE.fullmatch(value)
    if not value.startswith("("):
        raise bad("geo: takes (latitude,longitude,km), e.g. geo:(48.85,2.35,25)")
    if not value.endswith(")"):
        raise QueryError("geo:( is missing its closing parenthesis", position=vstart, end=end)
    try:
        lat, lng, km = (float(geo.group(i)) for i in (1, 2, 3)) if geo else (None, None, None)
    except ValueError:
        lat = lng = km = None
    if lat is None or lng is None or km is None:
        raise bad("geo: takes (latitude,longitude,km), e.g. geo:(48.85,2.35,25)")
    if not -90 <= lat <= 90 or not -180 <= lng <= 180:
        raise bad("geo: latitude must be between -90 and 90 and longitude between -180 and 180")
    if not 0 < km <= 20_000:
        raise bad("geo: the radius must be more than 0 and at most 20,000 km")
    return Field("geo", (lat, lng, km), raw, start, end)


def _tokenize(query: str) -> list[_Token]:
    tokens: list[_Token] = []
    terms = 0
    for m in _TOKEN_RE.finditer(query):
        kind = m.lastgroup
        start, end = m.span()
        text = m.group()
        if kind == "space":
            continue
        if kind == "lparen":
            tokens.append(_Token(_LP, start, end))
            continue
        if kind == "rparen":
            tokens.append(_Token(_RP, start, end))
            continue
        if kind == "geo":
            tokens.append(_Token(_FIELD, start, end, _field("geo", text[4:], text, start, end)))
            continue
        if kind == "quote":
            if len(text) < 2 or not text.endswith('"'):
                raise QueryError("This quote is never closed", position=start, end=len(query))
            inner = text[1:-1].strip()
            if not inner:
                raise QueryError("Empty quotes: put a word or phrase between them", position=start, end=end)
            prefix = inner.endswith("*") and len(inner) > 1 and not inner[-2].isspace()
            node: Term | Field = _term(inner, inner[:-1] if prefix else inner, prefix, start, end)
            terms += 1
            if terms > MAX_TERMS:
                raise QueryError(f"A rule can have at most {MAX_TERMS:,} words and phrases", position=start, end=end)
            tokens.append(_Token(_TERM, start, end, node))
            continue
        # A bare word: an operator, a field filter or a term.
        if text in ("AND", "OR", "NOT"):
            tokens.append(_Token(text, start, end))
            continue
        near = _NEAR_RE.fullmatch(text)
        if near:
            n = near.group(1)
            if n is None or not n.isascii() or not n.isdigit():
                raise QueryError(
                    "NEAR needs a distance in words, e.g. NEAR/5 (to search for the word, put it in quotes)",
                    position=start,
                    end=end,
                )
            distance = int(n[:6])
            if not 1 <= distance <= MAX_NEAR:
                raise QueryError(f"NEAR/n takes a distance from 1 to {MAX_NEAR} words", position=start, end=end)
            tokens.append(_Token(_NEAR, start, end, distance=distance))
            continue
        field = _FIELD_RE.fullmatch(text)
        if field and field.group(2) and not field.group(2).startswith("//"):
            name = field.group(1).lower()
            if name not in FIELDS:
                raise QueryError(
                    f"Unknown field “{field.group(1)}:”; fields are lang:, from:, channel:, geo: and sentiment: "
                    "(put text in quotes to search for it)",
                    position=start,
                    end=start + len(name) + 1,
                )
            tokens.append(_Token(_FIELD, start, end, _field(name, field.group(2), text, start, end)))
            continue
        if text.startswith("-") and len(text) > 1 and text[1].isalnum():
            raise QueryError(f"To exclude a word write NOT {text[1:]}", position=start, end=end)
        star = text.find("*")
        if star != -1 and star != len(text) - 1:
            raise QueryError("A * wildcard only goes at the end of a word", position=start + star)
        prefix = star != -1
        tokens.append(_Token(_TERM, start, end, _term(text, text[:-1] if prefix else text, prefix, start, end)))
        terms += 1
        if terms > MAX_TERMS:
            raise QueryError(f"A rule can have at most {MAX_TERMS:,} words and phrases", position=start, end=end)
    return tokens


# Parser ----------------------------------------------------------------------------------------------------


class _Parser:
    def __init__(self, query: str, tokens: list[_Token]) -> None:
        self.query = query
        self.tokens = tokens
        self.i = 0
        self.depth = 0

    def peek(self) -> _Token | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def _needs_operand(self, op: _Token, *, extra: tuple[str, ...] = ()) -> None:
        nxt = self.peek()
        if nxt is None or nxt.kind in (_RP, _AND, _OR, *extra):
            raise QueryError(
                f"{op.kind} needs a word, phrase or group after it", position=op.start, end=op.end
            )  # fmt: skip

    def parse(self) -> Node:
        node = self.parse_or()
        tok = self.peek()
        if tok is not None:  # only a closing parenthesis stops parse_or early
            raise QueryError("This ) has no matching (", position=tok.start, end=tok.end)
        return node

    def parse_or(self) -> Node:
        items = [self.parse_and()]
        while (tok := self.peek()) is not None and tok.kind == _OR:
            self.i += 1
            self._needs_operand(tok)
            items.append(self.parse_and())
        if len(items) == 1:
            return items[0]
        flat: list[Node] = []
        for item in items:
            flat.extend(item.children if isinstance(item, Or) else (item,))
        return Or(tuple(flat), items[0].start, items[-1].end)

    def parse_and(self) -> Node:
        items = [self.parse_unary()]
        while (tok := self.peek()) is not None and tok.kind not in (_RP, _OR):
            if tok.kind == _AND:
                self.i += 1
                self._needs_operand(tok)
            items.append(self.parse_unary())
        if len(items) == 1:
            return items[0]
        flat: list[Node] = []
        for item in items:
            flat.extend(item.children if isinstance(item, And) else (item,))
        return And(tuple(flat), items[0].start, items[-1].end)

    def parse_unary(self) -> Node:
        tok = self.peek()
        if tok is not None and tok.kind == _NOT:
            self.i += 1
            self._needs_operand(tok, extra=(_NEAR,))
            self._enter(tok)
            child = self.parse_unary()
            self.depth -= 1
            return Not(child, tok.start, child.end)
        return self.parse_near()

    def parse_near(self) -> Node:
        left = self.parse_primary()
        tok = self.peek()
        if tok is None or tok.kind != _NEAR:
            return left
        self.i += 1
        self._needs_operand(tok, extra=(_NEAR, _NOT))
        right = self.parse_primary()
        nxt = self.peek()
        if nxt is not None and nxt.kind == _NEAR:
            raise QueryError(
                "Only two sides per NEAR: combine them with AND, e.g. (a NEAR/3 b) AND (b NEAR/3 c)",
                position=nxt.start,
                end=nxt.end,
            )
        return Near(self._near_side(left), self._near_side(right), tok.distance, left.start, right.end)

    def _near_side(self, node: Node) -> tuple[Term, ...]:
        if isinstance(node, Term):
            return (node,)
        if isinstance(node, Or) and all(isinstance(child, Term) for child in node.children):
            return tuple(node.children)  # type: ignore[arg-type]
        raise QueryError(
            "Each side of NEAR must be a word, a phrase or an OR group of them, e.g. (acme OR globex) NEAR/5 price",
            position=node.start,
            end=node.end,
        )

    def parse_primary(self) -> Node:
        tok = self.peek()
        if tok is None:  # callers check for an operand first; kept as a guard
            raise QueryError("The rule ends too early", position=len(self.query))
        if tok.kind in (_TERM, _FIELD):
            self.i += 1
            assert tok.node is not None
            return tok.node
        if tok.kind == _LP:
            self.i += 1
            nxt = self.peek()
            if nxt is not None and nxt.kind == _RP:
                raise QueryError("Empty parentheses", position=tok.start, end=nxt.end)
            if nxt is None:
                raise QueryError("This ( is never closed", position=tok.start, end=tok.end)
            self._enter(tok)
            inner = self.parse_or()
            self.depth -= 1
            close = self.peek()
            if close is None:
                raise QueryError("This ( is never closed", position=tok.start, end=tok.end)
            self.i += 1
            return _regroup(inner, tok.start, close.end)
        if tok.kind == _RP:
            raise QueryError("This ) has no matching (", position=tok.start, end=tok.end)
        raise QueryError(
            f"{tok.kind} needs a word, phrase or group on each side", position=tok.start, end=tok.end
        )  # fmt: skip

    def _enter(self, tok: _Token) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise QueryError(f"Nested more than {MAX_DEPTH} levels deep", position=tok.start, end=tok.end)


def _regroup(node: Node, start: int, end: int) -> Node:
    """A parenthesized group keeps its operands; its span grows to the parentheses (for error positions)."""
    if isinstance(node, And):
        return And(node.children, start, end)
    if isinstance(node, Or):
        return Or(node.children, start, end)
    return node


# Semantics checks ------------------------------------------------------------------------------------------


def iter_terms(node: Node, *, negated: bool = False) -> Iterator[tuple[Term, bool]]:
    """Every term with whether it sits under a NOT, in query order."""
    if isinstance(node, Term):
        yield node, negated
    elif isinstance(node, Not):
        yield from iter_terms(node.child, negated=True)
    elif isinstance(node, And | Or):
        for child in node.children:
            yield from iter_terms(child, negated=negated)
    elif isinstance(node, Near):
        for term in (*node.left, *node.right):
            yield term, negated


def anchored(node: Node) -> bool:
    """True when every document matching ``node`` must contain one of its (positive) terms."""
    if isinstance(node, Term | Near):
        return True
    if isinstance(node, And):
        return any(anchored(child) for child in node.children)
    if isinstance(node, Or):
        return all(anchored(child) for child in node.children)
    return False  # Not, Field


def _loose_alternative(node: Node) -> Node | None:
    """The first OR alternative without a word of its own, inside an unanchored ``node``."""
    if isinstance(node, Or):
        for child in node.children:
            if not anchored(child):
                return _loose_alternative(child) or child
    if isinstance(node, And):
        for child in node.children:
            found = _loose_alternative(child)
            if found is not None:
                return found
    return None


def _check_anchored(query: str, root: Node) -> None:
    if anchored(root):
        return
    terms = list(iter_terms(root))
    if not terms:
        raise QueryError(
            "A rule needs at least one word or phrase (field filters only narrow it down)", position=0, end=len(query)
        )
    if all(negated for _, negated in terms):
        raise QueryError(
            "A rule needs at least one word or phrase that is not under NOT, e.g. acme AND NOT jobs",
            position=0,
            end=len(query),
        )
    loose = _loose_alternative(root)
    if loose is None:  # pragma: no cover - anchored() and _loose_alternative() agree on every tree
        raise QueryError("A rule needs at least one word or phrase", position=0, end=len(query))
    raise QueryError(
        "This OR alternative has no word or phrase of its own, so the rule would match almost everything: "
        "add a word to it or move it out of the OR",
        position=loose.start,
        end=loose.end,
    )


# Public ----------------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=20_000)
def _parse_cached(query: str) -> Node:
    if len(query) > MAX_QUERY_CHARS:
        raise QueryError(
            f"A rule can be at most {MAX_QUERY_CHARS:,} characters long", position=MAX_QUERY_CHARS, end=len(query)
        )
    if not query.strip():
        raise QueryError("The rule is empty: write a word or phrase to listen for", position=0, end=max(1, len(query)))
    tokens = _tokenize(query)
    root = _Parser(query, tokens).parse()
    _check_anchored(query, root)
    return root


def parse_cache_clear() -> None:
    """Forget parsed queries (a benchmark timing a cold compile; tests)."""
    _parse_cached.cache_clear()


def parse(query: str) -> Node:
    """Query text → AST. Raises QueryError (with 0-based ``position``/``end``) for anything that is not a rule."""
    if not isinstance(query, str):
        raise QueryError("The rule must be text")
    return _parse_cached(query)


def validate(query: str) -> None:
    parse(query)


def literal_terms(query: str) -> list[str]:
    """The rule's positive words and phrases (not those under NOT), as written, once each, in query order."""
    seen: dict[str, None] = {}
    for term, negated in iter_terms(parse(query)):
        if not negated:
            seen.setdefault(term.raw, None)
    return list(seen)


def to_x_query(query: str) -> str:
    """The rule in X recent-search syntax (see ``listening.query.xsearch``)."""
    from listening.query.xsearch import to_x_query as _to_x_query

    return _to_x_query(query)
