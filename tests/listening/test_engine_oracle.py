"""The compiled engine agrees exactly with the slow reference evaluator (``listening.query.oracle``) on thousands
of generated posts and hundreds of generated rules using every operator and filter (fixed seed, no database)."""

from __future__ import annotations

import random
import re

import pytest

from listening.query import Document, Engine, RuleSpec
from listening.query.oracle import oracle_match, oracle_tokens, regex_for
from listening.query.text import fold

SEED = 6061

# Words chosen to collide: the same word in several cases and accents, prefixes of one another, words that fold
# to several ("½", "ß", "ﬁ"), scripts without spaces, emoji and punctuation glued to words.
VOCAB = [
    "acme", "Acmé", "ACME", "acmes", "globex", "Globex's", "café", "CAFE", "cafe\u0301", "naïve", "naive",
    "switch", "switching", "Switched", "switchboard", "price", "prices", "pricing", "refund", "refunds",
    "東京", "京都", "東京タワー", "タワー", "ดีมาก", "ดี", "삼성", "삼성은", "straße", "STRASSE", "½", "1", "2",
    "don't", "don\u2019t", "don", "t", "e-mail", "email", "E-Mail", "the", "a", "of", "İstanbul", "istanbul",
    "ﬁne", "fine", "😀", "❤️", "👍🏽", "#acme", "@acme", "acme.com", "crème", "brûlée", "Zürich", "zurich",
    "ß", "ss", "x", "y", "z", "jobs", "hiring", "love", "hate", "terrible", "great", "Москва", "москвы",
]  # fmt: skip
GLUE = [" ", " ", " ", "", ", ", ". ", "! ", "\n", " — ", "…", "(", ")", '"', "\u200d", "\u0301", "\t", "  "]
TERMS = [
    "acme", "acmé", "ACME", "globex", "cafe", "café", "naive", "switch*", "swi*", "pric*", "refund", "東京", "京",
    "タワー", "ดี", "삼성", "strasse", "straße", '"don\'t"', "dont", '"e-mail"', "email", "the", "istanbul", "fine",
    '"acme globex"', '"café crème"', '"switch price*"', "zurich", "ss", "x", '"x y"', "1", "2", '"1 2"',
    "acme.com", "crème*", "brû*", "москва", "jobs", "love", "hate",
]  # fmt: skip
FIELDS = [
    "lang:en", "lang:fr", "lang:ja", "from:@acme", "from:contact", "from:customers", "from:segment:3",
    "channel:twitter", "channel:email", "geo:(48.85,2.35,50)", "geo:(40.7,-74.0,5)", "sentiment:negative",
    "sentiment:positive", "sentiment:neutral",
]  # fmt: skip


def _post(rng: random.Random) -> str:
    parts = []
    for _ in range(rng.randint(0, 45)):
        parts.append(rng.choice(VOCAB))
        parts.append(rng.choice(GLUE))
    return "".join(parts)


def _side(rng: random.Random) -> str:
    if rng.random() < 0.6:
        return rng.choice(TERMS)
    return "(" + " OR ".join(rng.sample(TERMS, rng.randint(2, 3))) + ")"


def _expr(rng: random.Random, depth: int = 0) -> str:
    r = rng.random()
    if depth > 3 or r < 0.3:
        return rng.choice(TERMS)
    if r < 0.42:
        return f"({_expr(rng, depth + 1)} OR {_expr(rng, depth + 1)})"
    if r < 0.52:
        return f"{_expr(rng, depth + 1)} AND {_expr(rng, depth + 1)}"
    if r < 0.6:
        return f"{_expr(rng, depth + 1)} {_expr(rng, depth + 1)}"
    if r < 0.7:
        negated = _expr(rng, depth + 1) if rng.random() < 0.7 else rng.choice(FIELDS)
        return f"{_expr(rng, depth + 1)} AND NOT {negated}"
    if r < 0.85:
        return f"({_side(rng)} NEAR/{rng.randint(1, 6)} {_side(rng)})"
    if r < 0.93:
        return f"({_expr(rng, depth + 1)} {rng.choice(FIELDS)})"
    return f"({_expr(rng, depth + 1)} ({rng.choice(FIELDS)} OR {rng.choice(FIELDS)}))"


def _rules(rng: random.Random, count: int) -> list[RuleSpec]:
    specs = []
    for i in range(count):
        specs.append(
            RuleSpec(
                rule_id=i + 1,
                query=_expr(rng),
                channels=frozenset(rng.choice([[], [], [], ["twitter"], ["email", "sms"]])),
                include_messages=rng.random() < 0.85,
                include_posts=rng.random() < 0.85,
                source_ids=frozenset(rng.choice([[], [], [], [1], [2, 3]])),
            )
        )
    # A few invalid rules: skipped by both, recorded by the engine.
    specs.append(RuleSpec(rule_id=count + 1, query="NOT acme"))
    specs.append(RuleSpec(rule_id=count + 2, query="(acme"))
    return specs


def _document(rng: random.Random) -> dict[str, object]:
    located = rng.random() < 0.5
    fields: dict[str, object] = {
        "text": _post(rng),
        "kind": rng.choice(["post", "message"]),
        "channel": rng.choice(["twitter", "email", "sms", "facebook", "Twitter"]),
        "source_id": rng.choice([None, 1, 2, 3]),
        "lang": rng.choice(["", "en", "fr", "fr-FR", "und", "ja", "EN"]),
        "author_handle": rng.choice(["", "acme", "Acme", "@acme", "bob"]),
        "author_contact_id": rng.choice([None, 5]),
        "author_is_customer": rng.random() < 0.3,
        "author_segment_ids": frozenset(rng.choice([[], [3], [4], [3, 4]])),
        "latitude": rng.choice([48.86, 40.7, 48.2]) if located else None,
        "longitude": rng.choice([2.35, -74.0, 2.9]) if located else None,
    }
    if rng.random() < 0.8:  # the others are computed (VADER, ~1 ms each) when a rule asks
        fields["sentiment_label"] = rng.choice(["negative", "neutral", "positive"])
    return fields


def _as_tuples(matches: list) -> list[tuple]:  # type: ignore[type-arg]
    return [(m.rule_id, tuple(m.terms), tuple(m.spans)) for m in matches]


def test_engine_matches_the_oracle_on_generated_rules_and_posts() -> None:
    rng = random.Random(SEED)
    specs = _rules(rng, 300)
    engine = Engine.compile(specs)
    assert set(engine.errors) == {301, 302}
    total = mismatched = 0
    for _ in range(2_000):
        fields = _document(rng)
        got = _as_tuples(engine.match(Document(**fields)))  # type: ignore[arg-type]
        want = _as_tuples(oracle_match(specs, Document(**fields)))  # type: ignore[arg-type]
        total += len(want)
        if got != want:
            mismatched += 1
            assert got == want, fields["text"]
    assert mismatched == 0
    assert total > 4_000  # the generated world matches a lot: the comparison is not vacuous


def test_oracle_catches_an_engine_that_is_off_by_one_on_near() -> None:
    """The oracle comparison is sensitive: a NEAR that allows one word too many disagrees with it."""
    specs = [RuleSpec(1, "acme NEAR/2 refund")]
    doc = {"text": "acme one two refund"}
    assert _as_tuples(oracle_match(specs, Document(**doc))) == []  # type: ignore[arg-type]
    assert _as_tuples(oracle_match([RuleSpec(1, "acme NEAR/3 refund")], Document(**doc))) != []  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "text",
    ["Cafe\u0301 au lait", "a½b", "東京\u0301タワー", "x\u200dy ß ﬁne", "İstanbul", "", "😀 👍🏽 ❤️", "\ud800acme"],
)
def test_oracle_tokens_agree_with_the_folded_words(text: str) -> None:
    assert [t.word for t in oracle_tokens(text)] == fold(text).split()


def test_regex_baseline_agrees_with_the_oracle_on_text_only_rules() -> None:
    """regex_for is the benchmark's naive baseline: on rules without field filters it must be faithful."""
    rng = random.Random(SEED + 1)
    specs = [s for s in _rules(rng, 200) if ":" not in s.query and s.rule_id <= 200]
    specs = [RuleSpec(s.rule_id, s.query) for s in specs]
    patterns = {s.rule_id: regex_for(s.query) for s in specs}
    for _ in range(300):
        text = _post(rng)
        want = {m.rule_id for m in oracle_match(specs, Document(text=text))}
        folded = fold(text)
        got = {rule_id for rule_id, pattern in patterns.items() if pattern.search(folded)}
        assert got == want, text


def test_regex_for_translates_operators() -> None:
    pattern = regex_for('(acme OR "big corp") NEAR/2 switch* AND NOT jobs lang:en')
    assert isinstance(pattern, re.Pattern)
    assert pattern.flags & re.IGNORECASE
    assert pattern.search(fold("Big Corp, switching"))
    assert not pattern.search(fold("big corp is switching jobs"))
    assert not pattern.search(fold("acme is not switching"))
