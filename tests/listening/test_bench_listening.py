"""`manage.py bench listening` at a tiny size: the figures are there, the engine agrees with the oracle, and the
database is left as it was."""

from __future__ import annotations

import json

import pytest
from django.core.management import call_command

from accounts.models import User
from listening.models import ListeningRule, ListeningSource, Mention, Post, RuleSetVersion

pytestmark = pytest.mark.django_db(transaction=False)

MODELS = (User, ListeningRule, ListeningSource, Post, Mention, RuleSetVersion)


def _counts() -> dict[str, int]:
    return {m.__name__: m.objects.count() for m in MODELS}


def test_bench_listening_reports_figures_and_leaves_nothing_behind(capsys: pytest.CaptureFixture[str]) -> None:
    before = _counts()
    call_command(
        "bench", "listening", "--rules", "300", "--posts", "1500", "--oracle-sample", "300", "--regex-seconds", "0.5"
    )
    figures = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    for key in (
        "bench", "rules", "posts", "engine_posts_per_s", "regex_loop_posts_per_s", "ratio", "compile_s",
        "e2e_posts_per_s", "mismatches_vs_oracle",
    ):  # fmt: skip
        assert key in figures, key
    assert figures["bench"] == "listening" and figures["rules"] == 300 and figures["posts"] == 1500
    assert figures["compile_errors"] == 0
    assert figures["mismatches_vs_oracle"] == 0 and figures["oracle_sample"] == 300
    assert figures["engine_posts_per_s"] > figures["regex_loop_posts_per_s"] > 0
    assert figures["ratio"] > 1
    # About a fifth of the posts name a rule's term; filters (language, sentiment, place …) drop some of those.
    assert 0.08 * 1500 < figures["posts_matched"] < 0.3 * 1500
    assert figures["e2e_posts_per_s"] > 0, figures.get("e2e_note")
    assert "1500 posts" in figures["e2e_note"]
    assert _counts() == before
