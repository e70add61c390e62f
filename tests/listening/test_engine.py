"""The compiled listening engine: what a rule matches, the terms and spans it reports, where it applies, and that
it stays bounded on hostile input (no database)."""

from __future__ import annotations

import os
import random
import time

import pytest

from listening.query import Document, Engine, Match, RuleSpec, highlight_snippet, sentiment
from listening.query.engine import CompiledEngine
from listening.query.text import MAX_TEXT_CHARS, fold, joined_words, token_spans


def engine(*queries: str, **options: object) -> Engine:
    return Engine.compile([RuleSpec(rule_id=i + 1, query=q, **options) for i, q in enumerate(queries)])  # type: ignore[arg-type]


def matched(query: str, text: str, **doc: object) -> bool:
    return bool(engine(query).match(Document(text=text, **doc)))  # type: ignore[arg-type]


def only(query: str, text: str, **doc: object) -> Match:
    found = engine(query).match(Document(text=text, **doc))  # type: ignore[arg-type]
    assert len(found) == 1, found
    return found[0]


# Words, phrases, case and accents ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "text", "expected"),
    [
        ("acme", "I love Acme!", True),
        ("acme", "I love ACME's app", True),
        ("acme", "acmeville is nice", False),
        ("acme", "the new-acme logo", True),
        ("acme", "#acme @acme", True),
        ("ACME", "acme", True),
        ("café", "Un cafe noir", True),
        ("cafe", "UN CAFÉ NOIR", True),
        ("cafe", "Un cafe\u0301 noir", True),  # decomposed accent in the text
        ("strasse", "Die Straße", True),
        ("acme", "\uff21\uff23\uff2d\uff25 full width", True),
        ("naive", "so naïve", True),
        ("istanbul", "İstanbul'da", True),
        ('"acme corp"', "ACME, corp.", True),
        ('"acme corp"', "acme big corp", False),
        ('"acme corp"', "corp acme", False),
        ('"e-mail"', "send an E mail", True),
        ("e-mail", "email me", False),
        ("don't", "I DON\u2019T know", True),  # curly apostrophe separates like the straight one
    ],
)
def test_words_and_phrases(query: str, text: str, expected: bool) -> None:
    assert matched(query, text) is expected


@pytest.mark.parametrize(
    ("query", "text", "expected"),
    [
        ("東京", "東京タワーへ行く", True),
        ("タワー", "東京タワーへ行く", True),
        ("東京", "京都", False),
        ("삼성", "삼성은 좋다", True),
        ("ดี", "อาหารดีมาก", True),
        ("東京 acme", "acmeの東京オフィス", True),
        ("москва", "Привет из МОСКВЫ и Москва", True),
        ("שלום", "שָׁלוֹם עולם", True),  # Hebrew points are dropped
    ],
)
def test_any_script(query: str, text: str, expected: bool) -> None:
    assert matched(query, text) is expected


def test_spans_point_into_the_original_text() -> None:
    text = "Ünd CAFÉ  Crème — « Straße » 東京タワー ½ ok"
    m = only('café OR "CREME" OR strasse OR タワー OR 2', text)
    pieces = [text[s:e] for s, e in m.spans]
    assert pieces == ["CAFÉ", "Crème", "Straße", "タワー", "½"]
    assert m.terms == ("café", "CREME", "strasse", "タワー", "2")


def test_spans_cover_a_decomposed_accent_and_the_whole_wildcard_word() -> None:
    text = "Cafe\u0301 switching now"
    m = only("café AND switch*", text)
    assert [text[s:e] for s, e in m.spans] == ["Cafe\u0301", "switching"]


def test_every_occurrence_is_highlighted_and_terms_are_as_written() -> None:
    m = only("Acme OR globex", "acme, ACME and Acme again; no globex here? globex!")
    assert m.terms == ("Acme", "globex")
    assert len(m.spans) == 5 and m.spans == tuple(sorted(m.spans))


# Operators -----------------------------------------------------------------------------------------------------


def test_and_or_not() -> None:
    assert matched("acme AND refund", "refund please, acme")
    assert not matched("acme AND refund", "acme please")
    assert matched("acme OR globex", "globex here")
    assert matched("acme NOT jobs", "acme rocks")
    assert not matched("acme NOT jobs", "acme jobs board")
    assert not matched("acme NOT (jobs OR hiring)", "Acme is hiring")
    assert matched("(acme OR globex) AND NOT (acme hiring)", "acme rocks")
    assert not matched("(acme OR globex) AND NOT (acme hiring)", "acme is hiring")


def test_or_branch_alone_makes_the_rule_a_candidate() -> None:
    e = engine('(acme AND refund) OR "globex support" OR initech*')
    assert e.match(Document(text="globex support was slow"))
    assert e.match(Document(text="Initechs"))
    assert e.match(Document(text="refund from acme"))
    assert not e.match(Document(text="acme"))


def test_terms_report_only_positive_terms_that_occur() -> None:
    m = only("(acme OR globex) refund NOT jobs", "acme refund")
    assert m.terms == ("acme", "refund")


@pytest.mark.parametrize(
    ("distance", "text", "expected"),
    [
        (1, "acme refund", True),
        (1, "refund acme", True),
        (1, "acme a refund", False),
        (2, "acme a refund", True),
        (2, "refund, a; acme", True),
        (2, "acme a b refund", False),
        (5, "acme 1 2 3 4 refund", True),
        (5, "acme 1 2 3 4 5 refund", False),
        (5, "refund 1 2 3 4 5 acme ... refund", True),  # the second refund is close
        (20, "acme " + "x " * 19 + "refund", True),
        (20, "acme " + "x " * 20 + "refund", False),
    ],
)
def test_near_distance_in_either_order(distance: int, text: str, expected: bool) -> None:
    assert matched(f"acme NEAR/{distance} refund", text) is expected


def test_near_with_phrases_groups_and_wildcards() -> None:
    query = '(acme OR "acme corp") NEAR/2 switch*'
    assert matched(query, "Acme Corp is switching")
    assert matched(query, "switched to acme")
    assert not matched(query, "acme corp is not switching")
    # The distance counts from the end of the phrase.
    assert matched('"acme corp" NEAR/1 price', "price acme corp")
    assert matched('"acme corp" NEAR/1 price', "acme corp price")
    assert not matched('"acme corp" NEAR/1 price', "acme price corp")


def test_near_needs_two_distinct_occurrences() -> None:
    assert not matched("acme NEAR/3 acme", "acme is here")
    assert matched("acme NEAR/3 acme", "acme and acme")
    assert not matched("acme NEAR/3 acm*", "acme only")


def test_wildcards_match_word_beginnings_only() -> None:
    assert matched("switch*", "SWITCHING now")
    assert matched("switch*", "switch")
    assert not matched("switch*", "nintendoswitch")
    assert matched('"customer serv*"', "Customer Service rocks")
    assert not matched('"customer serv*"', "customer care service")
    assert matched("cafe*", "Cafétéria")


# Field filters --------------------------------------------------------------------------------------------------


def test_lang_uses_the_provider_language_first() -> None:
    assert matched("acme lang:fr", "acme is great", lang="fr-FR")
    assert not matched("acme lang:en", "acme is great", lang="fr")


def test_lang_is_detected_lazily_when_the_provider_says_nothing() -> None:
    doc = Document(text="Je trouve que acme est vraiment une très bonne entreprise française", lang="und")
    assert engine("acme lang:fr").match(doc)
    assert doc.lang == "fr" and doc.extra["lang"] == "fr"
    untouched = Document(text="nothing here is about the brand")
    assert not engine("acme lang:fr").match(untouched)
    assert "lang" not in untouched.extra  # no candidate, no detection


def test_sentiment_is_computed_only_when_a_candidate_needs_it_and_cached() -> None:
    e = engine("acme sentiment:negative", "globex")
    doc = Document(text="globex is terrible and I hate it")
    assert [m.rule_id for m in e.match(doc)] == [2]
    assert doc.sentiment_label is None
    doc = Document(text="acme is terrible and I hate it")
    assert [m.rule_id for m in e.match(doc)] == [1]
    assert doc.sentiment_label == "negative" and doc.sentiment_score is not None and doc.sentiment_score < 0
    given = Document(text="acme is wonderful", sentiment_label="negative")
    assert e.match(given)  # a label the caller already has is used, not recomputed


def test_from_filters() -> None:
    assert matched("acme from:@AcmeHelp", "acme", author_handle="acmehelp")
    assert matched("acme from:acmehelp", "acme", author_handle="@AcmeHelp")
    assert not matched("acme from:acmehelp", "acme", author_handle="someone")
    assert matched("acme from:contact", "acme", author_contact_id=7)
    assert not matched("acme from:contact", "acme")
    assert matched("acme from:customers", "acme", author_is_customer=True)
    assert not matched("acme from:customers", "acme", author_contact_id=7)
    assert matched("acme from:segment:3", "acme", author_segment_ids=frozenset({3, 4}))
    assert not matched("acme from:segment:3", "acme", author_segment_ids=frozenset({4}))


def test_channel_and_geo_filters() -> None:
    assert matched("acme channel:twitter", "acme", channel="Twitter")
    assert not matched("acme channel:twitter", "acme", channel="facebook")
    paris = {"latitude": 48.8566, "longitude": 2.3522}
    versailles = {"latitude": 48.8049, "longitude": 2.1204}  # about 17.5 km from Paris
    assert matched("acme geo:(48.8566,2.3522,20)", "acme", **versailles)
    assert not matched("acme geo:(48.8566,2.3522,15)", "acme", **versailles)
    assert matched("acme geo:(48.8566,2.3522,1)", "acme", **paris)
    assert not matched("acme geo:(48.8566,2.3522,20000)", "acme")  # no coordinates, no match
    assert matched("acme NOT geo:(48.8566,2.3522,20)", "acme")


def test_filters_combine_with_or_inside_an_and() -> None:
    query = "acme (lang:fr OR from:customers)"
    assert matched(query, "acme", lang="fr")
    assert matched(query, "acme", lang="en", author_is_customer=True)
    assert not matched(query, "acme", lang="en")


# Where a rule applies ---------------------------------------------------------------------------------------------


def test_rule_scope_by_kind_channel_and_source() -> None:
    e = Engine.compile(
        [
            RuleSpec(1, "acme", include_messages=False),
            RuleSpec(2, "acme", include_posts=False),
            RuleSpec(3, "acme", channels=frozenset({"twitter"})),
            RuleSpec(4, "acme", source_ids=frozenset({9})),
        ]
    )

    def ids(**doc: object) -> list[int]:
        return [m.rule_id for m in e.match(Document(text="acme", **doc))]  # type: ignore[arg-type]

    assert ids(kind="post", channel="twitter", source_id=9) == [1, 3, 4]
    assert ids(kind="post", channel="facebook", source_id=2) == [1]
    assert ids(kind="message", channel="twitter") == [2, 3, 4]  # sources narrow posts, not messages
    assert ids(kind="message", channel="email") == [2, 4]


def test_matches_come_in_rule_id_order() -> None:
    e = Engine.compile([RuleSpec(30, "acme"), RuleSpec(4, "acme OR globex"), RuleSpec(17, "globex")])
    assert [m.rule_id for m in e.match(Document(text="acme globex"))] == [4, 17, 30]


# Compile errors and scale ----------------------------------------------------------------------------------------


def test_invalid_rules_are_skipped_and_recorded() -> None:
    e = Engine.compile([RuleSpec(1, "acme"), RuleSpec(2, "(broken"), RuleSpec(3, "NOT acme"), RuleSpec(4, "")])
    assert set(e.errors) == {2, 3, 4}
    assert e.errors[2].position == 0
    assert [m.rule_id for m in e.match(Document(text="acme"))] == [1]


def test_an_engine_without_rules_matches_nothing() -> None:
    e = Engine.compile([])
    assert e.match(Document(text="anything")) == []
    assert Engine.compile([RuleSpec(1, "NOT x")]).match(Document(text="y")) == []


def test_a_malformed_document_field_skips_the_rule_instead_of_raising() -> None:
    e = engine("acme geo:(48.8,2.3,10)", "acme")
    found = e.match(Document(text="acme", latitude="north", longitude=2.3))  # type: ignore[arg-type]
    assert [m.rule_id for m in found] == [2]


def test_version_is_kept() -> None:
    assert Engine.compile([], version=42).version == 42


def test_a_common_word_does_not_make_every_post_a_candidate() -> None:
    e = engine("the AND acme", "acme NEAR/3 the", "(the OR a) AND globex", "the OR a")
    assert isinstance(e, CompiledEngine)
    assert e.candidates(Document(text="a the a the")) == [4]
    assert e.candidates(Document(text="the acme")) == [1, 2, 4]
    assert [m.rule_id for m in e.match(Document(text="the acme"))] == [1, 2, 4]
    assert [m.rule_id for m in e.match(Document(text="a globex"))] == [3, 4]


def test_empty_text_and_only_punctuation() -> None:
    e = engine("acme")
    for text in ("", "   ", "!!! ... ???", "😀😀😀", "\x00\x01\x02"):
        assert e.match(Document(text=text)) == []


def test_one_megabyte_post_is_bounded() -> None:
    e = engine("acme NEAR/3 refund", "the AND NOT zzz", "thin* AND NOT b", "needle")
    text = ("the refund of a thing acme " * 40_000)[:1_000_000] + " needle"
    started = time.perf_counter()
    found = e.match(Document(text=text))
    elapsed = time.perf_counter() - started
    assert elapsed < 5, elapsed
    assert [m.rule_id for m in found] == [1, 2, 3]  # "needle" lies beyond the evaluated part
    assert max(end for m in found for _, end in m.spans) <= MAX_TEXT_CHARS


def test_binary_junk_and_every_script_are_bounded() -> None:
    rng = random.Random(7)
    e = engine("acme", "東京", "ab* AND NOT zz")
    junk = os.urandom(200_000).decode("latin-1") + "".join(chr(rng.randrange(0x20, 0x30000)) for _ in range(50_000))
    started = time.perf_counter()
    e.match(Document(text=junk))
    assert time.perf_counter() - started < 10
    # Lone surrogates (text decoded with surrogateescape) separate words like any other non-letter.
    assert [m.spans for m in e.match(Document(text="\ud800acme\udfff"))] == [((1, 5),)]


# Text helpers ----------------------------------------------------------------------------------------------------


def test_joined_words_equals_the_plain_definition_on_any_text() -> None:
    rng = random.Random(3)
    for _ in range(3_000):
        text = "".join(
            chr(rng.choice([rng.randrange(0, 0x80), rng.randrange(0x80, 0x3000), rng.randrange(0x3000, 0x110000)]))
            for _ in range(rng.randrange(0, 30))
        )
        for variant in (text, text.replace(" ", "") * 9):  # and pieces too long to be cached
            assert joined_words(variant) == " " + " ".join(fold(variant).split()) + " "
            assert len(token_spans(variant, fold(variant))) == len(fold(variant).split())


def test_sentiment_labels() -> None:
    score, label = sentiment("This is terrible, I hate it")
    assert label == "negative" and score <= -0.05
    score, label = sentiment("I love it, wonderful service!")
    assert label == "positive" and score >= 0.05
    assert sentiment("The box is on the table")[1] == "neutral"
    sentiment("bad " * 100_000)  # bounded input: returns promptly


def test_highlight_snippet_keeps_the_first_match_and_shifts_spans() -> None:
    text = "intro " * 100 + "the Acme refund\nwas slow " + "outro " * 100
    start = text.index("Acme")
    snippet, highlights = highlight_snippet(text, [(start, start + 4), (start + 5, start + 11)], width=120)
    assert len(snippet) <= 122 and snippet.startswith("…") and snippet.endswith("…")
    assert [snippet[s:e] for s, e in highlights] == ["Acme", "refund"]
    assert "\n" not in snippet
    short, spans = highlight_snippet("acme rocks", [(0, 4)])
    assert short == "acme rocks" and spans == [[0, 4]]
