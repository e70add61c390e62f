"""The listening query language: what parses to what, and where a bad rule is pointed at (no database)."""

from __future__ import annotations

import time

import pytest

from listening.query import QueryError, literal_terms, parse, to_x_query, validate
from listening.query.parser import MAX_QUERY_CHARS, MAX_TERMS, And, Field, Near, Not, Or, Term


def error(query: str) -> QueryError:
    with pytest.raises(QueryError) as info:
        parse(query)
    return info.value


# Structure ---------------------------------------------------------------------------------------------------


def test_word_phrase_and_wildcard_terms() -> None:
    assert parse("Acme") == Term("Acme", ("acme",), False, 0, 4)
    assert parse('"Acme  Corp"') == Term("Acme  Corp", ("acme", "corp"), False, 0, 12)
    assert parse("switch*") == Term("switch*", ("switch",), True, 0, 7)
    assert parse('"customer serv*"') == Term("customer serv*", ("customer", "serv"), True, 0, 16)


def test_word_with_punctuation_is_the_phrase_of_its_parts() -> None:
    node = parse("e-mail")
    assert isinstance(node, Term) and node.words == ("e", "mail")
    assert parse("acme.com").words == ("acme", "com")  # type: ignore[union-attr]


def test_terms_are_case_and_accent_folded() -> None:
    assert parse("CAFÉ").words == ("cafe",)  # type: ignore[union-attr]
    assert parse("Straße").words == ("strasse",)  # type: ignore[union-attr]
    assert parse("\uff21\uff23\uff2d\uff25").words == ("acme",)  # type: ignore[union-attr]


def test_cjk_term_is_a_run_of_characters_and_needs_no_wildcard() -> None:
    node = parse("東京*")
    assert isinstance(node, Term) and node.words == ("東", "京") and not node.prefix


def test_implicit_and_between_adjacent_items() -> None:
    node = parse('acme "big deal" lang:en')
    assert isinstance(node, And)
    assert [type(c) for c in node.children] == [Term, Term, Field]


def test_precedence_not_binds_tightest_then_and_then_or() -> None:
    node = parse("a OR b c AND NOT d")
    assert isinstance(node, Or)
    a, rest = node.children
    assert isinstance(a, Term) and isinstance(rest, And)
    assert isinstance(rest.children[2], Not)


def test_parentheses_group_and_flatten() -> None:
    node = parse("(a OR (b OR c)) AND (d e)")
    assert isinstance(node, And)
    assert [t.raw for t in node.children[0].children] == ["a", "b", "c"]  # type: ignore[union-attr]
    assert [t.raw for t in node.children[1:]] == ["d", "e"]  # type: ignore[union-attr]


def test_lower_case_operators_are_words() -> None:
    node = parse("salt and pepper or not")
    assert isinstance(node, And) and [t.raw for t in node.children] == ["salt", "and", "pepper", "or", "not"]  # type: ignore[union-attr]


def test_near_takes_terms_or_or_groups_of_terms() -> None:
    node = parse('(acme OR "acme corp") NEAR/5 switch*')
    assert isinstance(node, Near)
    assert [t.raw for t in node.left] == ["acme", "acme corp"]
    assert [t.raw for t in node.right] == ["switch*"]
    assert node.distance == 5


def test_not_covers_a_near() -> None:
    node = parse("acme AND NOT acme NEAR/2 jobs")
    assert isinstance(node, And) and isinstance(node.children[1], Not)
    assert isinstance(node.children[1].child, Near)


@pytest.mark.parametrize(
    ("query", "kind", "value"),
    [
        ("lang:FR", "lang", "fr"),
        ("from:@Acme_HQ", "from_handle", "acme_hq"),
        ("from:acme.fr", "from_handle", "acme.fr"),
        ("from:contact", "from_contact", None),
        ("from:customers", "from_customers", None),
        ("from:segment:12", "from_segment", 12),
        ("channel:Twitter", "channel", "twitter"),
        ("geo:(48.85,2.35,25)", "geo", (48.85, 2.35, 25.0)),
        ("geo:( -33.9 , 151.2 , 10km )", "geo", (-33.9, 151.2, 10.0)),
        ("sentiment:Negative", "sentiment", "negative"),
        ("LANG:en", "lang", "en"),
    ],
)
def test_field_filters(query: str, kind: str, value: object) -> None:
    node = parse(f"acme {query}")
    assert isinstance(node, And)
    field = node.children[1]
    assert isinstance(field, Field) and (field.kind, field.value) == (kind, value)


def test_text_that_merely_contains_a_colon_is_a_term() -> None:
    assert parse("note:").words == ("note",)  # type: ignore[union-attr]
    assert parse("https://acme.com/x").words == ("https", "acme", "com", "x")  # type: ignore[union-attr]
    assert parse('"foo:bar"').words == ("foo", "bar")  # type: ignore[union-attr]


def test_a_positive_term_with_not_and_filters_is_fine() -> None:
    validate("acme AND NOT jobs")
    validate("acme NOT (jobs OR hiring) lang:en")
    validate("x AND (acme OR lang:en)")  # the OR is narrowed by x
    validate("(a OR b) AND NOT c")


# Errors and their positions ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "position", "end", "words"),
    [
        ("(acme OR globex", 0, 1, "never closed"),
        ("x (a OR (b c)", 2, 3, "never closed"),
        ("acme OR globex)", 14, 15, "no matching"),
        ("a ) b", 2, 3, "no matching"),
        ("()", 0, 2, "Empty parentheses"),
        ("", 0, 1, "empty"),
        ("   ", 0, 3, "empty"),
        ("NOT acme", 0, 8, "not under NOT"),
        ("NOT (a OR b) AND NOT c", 0, 22, "not under NOT"),
        ("lang:en", 0, 7, "at least one word"),
        ("lang:en from:customers", 0, 22, "at least one word"),
        ("acme OR lang:en", 8, 15, "OR alternative"),
        ("acme OR NOT jobs", 8, 16, "OR alternative"),
        ("a NEAR/0 b", 2, 8, "from 1 to 20"),
        ("a NEAR/1000 b", 2, 11, "from 1 to 20"),
        ("a NEAR/21 b", 2, 9, "from 1 to 20"),
        ("a NEAR b", 2, 6, "distance"),
        ("a NEAR/x b", 2, 8, "distance"),
        ("(a b) NEAR/3 c", 0, 5, "Each side of NEAR"),
        ("a NEAR/3 lang:en", 9, 16, "Each side of NEAR"),
        ("a NEAR/3 b NEAR/3 c", 11, 17, "Only two sides"),
        ("a NEAR/3", 2, 8, "needs a word"),
        ("NEAR/3 a", 0, 6, "each side"),
        ("a NEAR/3 NOT b", 2, 8, "needs a word"),
        ("acme color:red", 5, 11, "Unknown field"),
        ("acme geo:(91,0,5)", 9, 17, "latitude"),
        ("acme geo:(1,2)", 9, 14, "geo: takes"),
        ("acme geo:(1,2,0)", 9, 16, "radius"),
        ("acme geo:(1,2,3", 9, 15, "closing parenthesis"),
        ("acme geo:paris", 9, 14, "geo: takes"),
        ("acme lang:xx", 10, 12, "language code"),
        ("acme lang:english", 10, 17, "language code"),
        ("acme from:segment:abc", 10, 21, "segment number"),
        ("acme from:a/b", 10, 13, "from: takes"),
        ("acme sentiment:angry", 15, 20, "negative, neutral or positive"),
        ("acme channel:tw!tter", 13, 20, "channel name"),
        ('acme "big deal', 5, 14, "never closed"),
        ('acme ""', 5, 7, "Empty quotes"),
        ("acme AND", 5, 8, "needs a word"),
        ("acme OR", 5, 7, "needs a word"),
        ("acme AND OR b", 5, 8, "needs a word"),
        ("OR acme", 0, 2, "each side"),
        ("acme NOT", 5, 8, "needs a word"),
        ("co*", 0, 3, "at least 3 letters"),
        ('"a b*"', 0, 6, "at least 3 letters"),
        ("sw*tch", 2, 3, "end of a word"),
        ("acme -jobs", 5, 10, "NOT jobs"),
        ("!!!", 0, 3, "no letters or digits"),
        ("acme 😀", 5, 6, "no letters or digits"),
    ],
)
def test_bad_rule_points_at_the_problem(query: str, position: int, end: int, words: str) -> None:
    exc = error(query)
    assert (exc.position, exc.end) == (position, end), exc.message
    assert words in exc.message
    assert str(exc).endswith(f"(at character {position + 1})")


def test_too_deep_nesting_is_refused_not_a_recursion_error() -> None:
    exc = error("(" * 500 + "a" + ")" * 500)
    assert "Nested" in exc.message
    exc = error("NOT " * 500 + "a b")
    assert "Nested" in exc.message


def test_query_longer_than_the_limit_is_refused() -> None:
    query = "acme " * (MAX_QUERY_CHARS // 5 + 1)
    exc = error(query)
    assert exc.position == MAX_QUERY_CHARS and exc.end == len(query)
    assert "10,000 characters" in exc.message


def test_rule_of_ten_thousand_terms_is_refused_fast() -> None:
    started = time.perf_counter()
    exc = error(" OR ".join(f"t{i}" for i in range(10_000)))
    assert time.perf_counter() - started < 0.5
    assert "characters" in exc.message


def test_more_than_the_term_limit_is_refused_at_the_first_extra_term() -> None:
    terms = [f"w{i}" for i in range(MAX_TERMS + 1)]
    query = " ".join(terms)
    assert len(query) < MAX_QUERY_CHARS
    exc = error(query)
    assert exc.position == query.index(f" w{MAX_TERMS}") + 1
    assert "1,000 words and phrases" in exc.message
    validate(" ".join(terms[:MAX_TERMS]))


def test_term_longer_than_a_mention_can_store_is_refused() -> None:
    exc = error('"' + "word " * 50 + '"')
    assert "200 characters" in exc.message


def test_non_text_query_is_refused() -> None:
    with pytest.raises(QueryError):
        parse(None)  # type: ignore[arg-type]


# literal_terms and X --------------------------------------------------------------------------------------------


def test_literal_terms_are_the_positive_terms_once_each_in_order() -> None:
    query = '(Acme OR "acme corp") NEAR/5 switch* AND NOT jobs AND acme lang:en'
    assert literal_terms(query) == ["Acme", "acme corp", "switch*", "acme"]


@pytest.mark.parametrize(
    ("query", "x"),
    [
        ("acme", "acme"),
        ('"acme corp"', '"acme corp"'),
        ("acme OR globex", "acme OR globex"),
        ("acme globex", "acme globex"),
        ("(acme OR globex) refund", "(acme OR globex) refund"),
        ("acme AND NOT jobs", "acme -jobs"),
        ('acme NOT (jobs OR "we are hiring")', 'acme -jobs -"we are hiring"'),
        ("acme NEAR/3 (refund OR cancel)", "acme (refund OR cancel)"),
        ("acme lang:fr", "acme lang:fr"),
        ("acme NOT lang:fr", "acme -lang:fr"),
        ("acme from:@AcmeHelp", "acme from:acmehelp"),
        ("acme from:customers sentiment:negative geo:(1,2,3) channel:twitter", "acme"),
        ("acme switch*", "acme"),  # X has no wildcards: the wildcard is dropped (the search only widens)
        ("(acme OR switch*) refund", "refund"),
        ("acme NOT (a b)", "acme"),
        ("e-mail", '"e-mail"'),
        ("東京", '"東京"'),  # a run of characters: an exact phrase for X
    ],
)
def test_to_x_query_is_a_superset_in_x_syntax(query: str, x: str) -> None:
    assert to_x_query(query) == x


def test_to_x_query_refuses_what_x_cannot_narrow() -> None:
    with pytest.raises(QueryError, match="X search cannot"):
        to_x_query("switch*")
    with pytest.raises(QueryError, match="X search cannot"):
        to_x_query("switch* lang:en NOT acme")
    with pytest.raises(QueryError):
        to_x_query("(acme")
