"""Text handling for the listening engine: folding, word tokens, sentiment, language and snippets.

Folding is defined one character at a time (:func:`fold_char`) so that the whole document can be folded with a
single ``str.translate`` call and every folded character still maps back to exactly one original character:

- case-fold and compatibility-decompose (NFKD: full-width letters, ligatures, "™" → "tm", "①" → "1");
- drop diacritics: the generic combining marks used by Latin, Greek and Cyrillic, Hebrew points, Arabic
  harakat and tatweel, variation selectors, zero-width joiners and the soft hyphen. Marks that are letters in
  their script (Devanagari vowel signs, Thai vowels, the kana voicing mark) stay, recomposed with NFC;
- letters, digits and the remaining marks are word characters; everything else (spaces, punctuation, symbols,
  emoji, control characters, binary junk) separates words;
- characters of scripts written without spaces (Han, kana, Hangul, Thai, Lao, Khmer, Myanmar) are each a word of
  their own, so a term in those scripts matches as a substring (a run of consecutive characters).

Only the first :data:`MAX_TEXT_CHARS` characters of a document are evaluated, so a 1 MB post or a binary blob
costs bounded time; a term that only occurs later is not found.
"""

from __future__ import annotations

import math
import re
import unicodedata
from bisect import bisect_right
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import filterfalse

from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

MAX_TEXT_CHARS = 100_000  # of a document's text evaluated by the engine (and the oracle)
SENTIMENT_MAX_CHARS = 5_000  # VADER is linear but slow (~1 µs per character)
LANG_MAX_CHARS = 2_000  # enough for py3langid; more only costs time

# Marks and invisible characters dropped by folding: accents, not letters. Ranges are inclusive.
_DROPPED_RANGES = (
    (0x0300, 0x036F),  # combining diacritical marks (Latin, Greek, Cyrillic after NFKD)
    (0x0483, 0x0489),  # Cyrillic combining marks
    (0x0591, 0x05C7),  # Hebrew cantillation and points
    (0x0610, 0x061A),  # Arabic signs
    (0x064B, 0x065F),  # Arabic harakat
    (0x0670, 0x0670),
    (0x06D6, 0x06ED),
    (0x0640, 0x0640),  # Arabic tatweel (stretching, not a letter)
    (0x1AB0, 0x1AFF),
    (0x1DC0, 0x1DFF),
    (0x20D0, 0x20FF),  # combining marks for symbols (keycap …)
    (0xFE20, 0xFE2F),
    (0x00AD, 0x00AD),  # soft hyphen
    (0x200C, 0x200D),  # zero-width non-joiner / joiner (inside Persian and Indic words, emoji sequences)
    (0x2060, 0x2060),  # word joiner
    (0xFE00, 0xFE0F),  # variation selectors
    (0xE0000, 0xE01EF),  # tags and variation selectors supplement
)

# Scripts written without spaces between words: every character is a word, so terms match as substrings.
_NO_SPACE_RANGES = (
    (0x0E00, 0x0EFF),  # Thai, Lao
    (0x1000, 0x109F),  # Myanmar
    (0x1100, 0x11FF),  # Hangul jamo
    (0x1780, 0x17FF),  # Khmer
    (0x3005, 0x3007),  # iteration mark, closing mark, ideographic zero
    (0x3040, 0x30FF),  # Hiragana, Katakana
    (0x3130, 0x318F),  # Hangul compatibility jamo
    (0x31F0, 0x31FF),
    (0x3400, 0x4DBF),  # CJK extension A
    (0x4E00, 0x9FFF),  # CJK unified ideographs
    (0xA960, 0xA97F),
    (0xAC00, 0xD7FF),  # Hangul syllables and jamo extended B
    (0xF900, 0xFAFF),  # CJK compatibility ideographs
    (0x1B000, 0x1B16F),  # kana supplement
    (0x20000, 0x3134F),  # CJK extensions B to G
)


def _in_ranges(cp: int, ranges: tuple[tuple[int, int], ...]) -> bool:
    return any(lo <= cp <= hi for lo, hi in ranges)


def is_no_space_char(ch: str) -> bool:
    return _in_ranges(ord(ch), _NO_SPACE_RANGES)


def fold_char(ch: str) -> str:
    """What one character of text becomes: folded word characters, with " " wherever words separate.

    The result may be empty (a dropped accent), longer than one character ("ß" → "ss", "½" → "1 2") or padded
    with spaces (a CJK character is a word of its own).
    """
    decomposed = unicodedata.normalize("NFKD", unicodedata.normalize("NFKD", ch).casefold())
    kept = "".join(c for c in decomposed if not _in_ranges(ord(c), _DROPPED_RANGES))
    out = []
    for c in unicodedata.normalize("NFC", kept):
        if c.isalnum() or unicodedata.category(c).startswith("M"):
            out.append(f" {c} " if is_no_space_char(c) else c)
        else:
            out.append(" ")
    return "".join(out)


class _FoldTable(dict[int, str]):
    """``str.translate`` table computed on first sight of each code point. Bounded: binary junk spanning the whole
    code space cannot grow it past ``_LIMIT`` entries (later unseen characters are computed every time)."""

    _LIMIT = 200_000

    def __missing__(self, cp: int) -> str:
        value = fold_char(chr(cp))
        if len(self) < self._LIMIT:
            self[cp] = value
        return value


FOLD_TABLE = _FoldTable()
for _cp in range(0x250):  # ASCII, Latin-1, Latin Extended-A/B: the hot set, computed once at import
    FOLD_TABLE[_cp] = fold_char(chr(_cp))


_NON_ASCII_RUN = re.compile(r"[^\x00-\x7f]+")
# The caches below hold short pieces of real text (an accented word, an emoji): bounded in count and in the size of
# what they keep, so binary junk or a 1 MB word cannot grow them.
_CACHE_LIMIT = 50_000
_CACHED_PIECE_MAX = 64


@dataclass(frozen=True, slots=True)
class _Run:
    folded: str
    irregular: tuple[tuple[int, int], ...]  # (offset in the run, folded length) of characters that fold to ≠ 1


_RUNS: dict[str, _Run] = {}


def _run(text: str) -> _Run:
    run = _RUNS.get(text)
    if run is None:
        lengths = [len(FOLD_TABLE[ord(c)]) for c in text]
        run = _Run(text.translate(FOLD_TABLE), tuple((i, n) for i, n in enumerate(lengths) if n != 1))
        if len(text) <= _CACHED_PIECE_MAX:
            if len(_RUNS) >= _CACHE_LIMIT:
                _RUNS.clear()
            _RUNS[text] = run
    return run


def fold(text: str) -> str:
    """The folded text: same word order, words separated by one or more spaces (see module docstring)."""
    return text.translate(FOLD_TABLE)


def words(text: str) -> list[str]:
    """The folded words of ``text`` (what a rule term or a document is matched as)."""
    return joined_words(text).split()


# ASCII folds one byte to one byte, and UTF-8 never uses a byte below 0x80 inside a multi-byte character: so the
# ASCII part of any text folds with one ``bytes.translate`` (fast whatever else the text holds), after which only
# the few pieces holding other characters need the per-character table.
_BYTE_TABLE = bytes(ord(FOLD_TABLE[b]) if b < 0x80 else b for b in range(256))
_PIECES: dict[bytes, bytes] = {}  # a whitespace-free piece of text holding non-ASCII bytes → its folded words


def joined_words(text: str) -> str:
    """``" w1 w2 … wn "``: the folded words, one space around each. Equal to
    ``" " + " ".join(fold(text).split()) + " "``, computed several times faster (this is the engine's hot path:
    the only Python-level loop runs over the pieces holding non-ASCII characters, each folded once per process)."""
    if text.isascii():
        return " " + " ".join(text.translate(FOLD_TABLE).split()) + " "
    pieces = text.encode("utf-8", "surrogatepass").translate(_BYTE_TABLE).split()
    cache = _PIECES
    if len(cache) > _CACHE_LIMIT:
        cache.clear()
    # This document's non-ASCII pieces, folded (from the shared cache when seen before). A local map, so another
    # thread clearing the cache meanwhile cannot leave a piece unfolded.
    folded_pieces: dict[bytes, bytes] = {}
    for piece in filterfalse(bytes.isascii, pieces):
        folded_words = cache.get(piece)
        if folded_words is None:
            folded = piece.decode("utf-8", "surrogatepass").translate(FOLD_TABLE)
            folded_words = " ".join(folded.split()).encode("utf-8", "surrogatepass")
            if len(piece) <= _CACHED_PIECE_MAX:
                cache[piece] = folded_words
        folded_pieces[piece] = folded_words
    # ASCII pieces are not in the map, so get() returns them as they are; filter() drops the pieces that folded to
    # nothing (an emoji), which would otherwise leave a double space.
    joined = b" ".join(filter(None, map(folded_pieces.get, pieces, pieces)))
    return (b" " + joined + b" ").decode("utf-8", "surrogatepass")


_NON_SPACE = re.compile(r"\S+")


class OffsetMap:
    """Maps offsets in ``fold(text)`` back to ``text``.

    Most characters fold to exactly one character; only the others ("ß" → "ss", a dropped accent → "", a CJK
    character → " 東 ") shift offsets, so only they are recorded, in order, as (original index, folded start,
    folded length); between two of them offsets move in step.
    """

    __slots__ = ("_folded_starts", "_irregular")

    def __init__(self, text: str) -> None:
        irregular: list[tuple[int, int, int]] = []
        starts: list[int] = []
        shift = 0
        if not text.isascii():
            for m in _NON_ASCII_RUN.finditer(text):
                for offset, length in _run(m.group()).irregular:
                    index = m.start() + offset
                    irregular.append((index, index + shift, length))
                    starts.append(index + shift)
                    shift += length - 1
        self._irregular = irregular
        self._folded_starts = starts

    def char_at(self, pos: int) -> int:
        """The original character whose folding holds folded offset ``pos``."""
        k = bisect_right(self._folded_starts, pos) - 1
        if k < 0:
            return pos
        index, start, length = self._irregular[k]
        return index if pos < start + length else index + 1 + pos - (start + length)

    def chars_ending_by(self, pos: int) -> int:
        """How many original characters fold entirely before folded offset ``pos``."""
        k = bisect_right(self._folded_starts, pos) - 1
        if k < 0:
            return pos
        index, start, length = self._irregular[k]
        return index + 1 + pos - (start + length) if start + length <= pos else index

    def span(self, start: int, end: int) -> tuple[int, int]:
        """Original span of the folded word [start, end). The character holding its last folded character ends
        it, and so do dropped accents right after it when the word ends where that character's folding ends
        ("e\u0301" yes; "a½" folds to "a1 2", and "a1" ends inside "½", so no)."""
        return self.char_at(start), max(self.char_at(end - 1) + 1, self.chars_ending_by(end))


def token_spans(text: str, folded: str) -> list[tuple[int, int]]:
    """Offsets into ``text`` of each word of ``folded`` (= ``fold(text)``), in order."""
    if text.isascii():
        return [m.span() for m in _NON_SPACE.finditer(folded)]
    offsets = OffsetMap(text)
    return [offsets.span(*m.span()) for m in _NON_SPACE.finditer(folded)]


# Sentiment -------------------------------------------------------------------------------------------------

_ANALYZER = SentimentIntensityAnalyzer()


def sentiment(text: str) -> tuple[float, str]:
    """VADER compound score (-1 … 1) and its label, over the first SENTIMENT_MAX_CHARS characters."""
    score = float(_ANALYZER.polarity_scores(text[:SENTIMENT_MAX_CHARS])["compound"])
    if score <= -0.05:
        return score, "negative"
    if score >= 0.05:
        return score, "positive"
    return score, "neutral"


# Language --------------------------------------------------------------------------------------------------

_UNKNOWN_LANGS = frozenset({"", "und", "zxx", "qme", "qht", "qam", "qst", "mul"})


def detect_lang(text: str) -> str:
    """ISO 639-1 code guessed by py3langid (its model loads on first use, ~1 s), or "" for text with no letters."""
    sample = text[:LANG_MAX_CHARS]
    if not any(c.isalpha() for c in sample):
        return ""
    import py3langid

    return str(py3langid.classify(sample)[0])


def provider_lang(code: str) -> str:
    """A provider's language tag as ISO 639-1 ("en-GB" → "en"), "" when it is unknown or undetermined."""
    code = (code or "").strip().lower().replace("_", "-").split("-")[0]
    return "" if code in _UNKNOWN_LANGS else code


# Geography -------------------------------------------------------------------------------------------------


def haversine_km(lat1: float, lng1: float, lat2: float, lng2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lng2 - lng1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * 6371.0088 * math.asin(min(1.0, math.sqrt(a)))


# Snippets --------------------------------------------------------------------------------------------------


def highlight_snippet(text: str, spans: Iterable[tuple[int, int]], *, width: int = 280) -> tuple[str, list[list[int]]]:
    """About ``width`` characters of ``text`` around the first span, with the spans that fall inside it shifted
    to the snippet. Line breaks become spaces (same length, so offsets hold); "…" marks a cut."""
    spans = sorted((max(0, s), min(len(text), e)) for s, e in spans if e > s and s < len(text))
    if len(text) <= width:
        start, end = 0, len(text)
    else:
        first = spans[0][0] if spans else 0
        start = max(0, min(first - width // 4, len(text) - width))
        if start > 0:  # begin at a word
            space = text.find(" ", start, min(first, start + 20))
            if space != -1:
                start = space + 1
        end = min(len(text), start + width)
        if end < len(text):
            space = text.rfind(" ", max(start, end - 20), end)
            if space > start and (not spans or space >= spans[0][1]):
                end = space
    prefix = "…" if start > 0 else ""
    suffix = "…" if end < len(text) else ""
    body = re.sub(r"[\r\n\t]", " ", text[start:end])
    shift = start - len(prefix)
    highlights = [[max(s, start) - shift, min(e, end) - shift] for s, e in spans if s < end and e > start]
    return prefix + body + suffix, highlights
