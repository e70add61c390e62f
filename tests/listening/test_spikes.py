"""Spike alerts: the last 24 hours against the mean and population standard deviation of the 7 days before."""

from __future__ import annotations

import datetime as dt
import itertools
import statistics

import pytest
from django.utils import timezone

from listening.models import ListeningSource, Mention, Post, SpikeAlert
from listening.services import spike_scan
from tests.listening.factories import make_rule, make_source

pytestmark = pytest.mark.django_db

NOW = timezone.now().replace(minute=20, second=0, microsecond=0)
HISTORY = [4, 6, 5, 3, 7, 5, 5]  # days 1..7 before the last 24 hours: mean 5, population stddev ~1.2
_ids = itertools.count(1)


def synthesize(rule, source: ListeningSource, counts: dict[int, int], now: dt.datetime = NOW) -> None:  # type: ignore[no-untyped-def]
    """``counts[d]`` mentions of ``rule`` on day ``d`` (0 = the last 24 hours), spread inside that day."""
    posts, at_of = [], []
    for day, count in counts.items():
        for i in range(count):
            at = now - dt.timedelta(days=day, hours=1 + (20 * i) / max(count, 1))
            posts.append(
                Post(source=source, external_id=f"s{next(_ids)}", channel="twitter", text="acme", posted_at=at)
            )
            at_of.append(at)
    posts = Post.objects.bulk_create(posts)
    Mention.objects.bulk_create(
        Mention(rule=rule, post=p, channel="twitter", occurred_at=at) for p, at in zip(posts, at_of, strict=True)
    )


@pytest.fixture
def source(world):  # type: ignore[no-untyped-def]
    return make_source(world.a1)


def history(today: int) -> dict[int, int]:
    return {0: today, **{d + 1: n for d, n in enumerate(HISTORY)}}


def test_a_day_far_above_the_week_raises_one_alert_with_its_figures(world, source) -> None:
    rule = make_rule(world.a1, spike_k=3.0, spike_min_count=5)
    synthesize(rule, source, history(20))
    assert spike_scan(now=NOW) == 1
    spike = SpikeAlert.objects.get()
    assert (spike.rule, spike.count, spike.k) == (rule, 20, 3.0)
    assert spike.mean == pytest.approx(statistics.mean(HISTORY))
    assert spike.stddev == pytest.approx(statistics.pstdev(HISTORY))
    assert spike.window_end == NOW.replace(minute=0)
    note = world.a1.notifications.get()
    assert "Spike" in note.message and "20 mentions" in note.message and note.level == "alert"


def test_an_ordinary_day_raises_nothing(world, source) -> None:
    rule = make_rule(world.a1, spike_k=3.0, spike_min_count=5)
    synthesize(rule, source, history(7))  # within mean + 3 stddev (5 + 3 * 1.2)
    assert spike_scan(now=NOW) == 0 and not SpikeAlert.objects.exists()


def test_k_is_the_rules_own_sensitivity(world, source) -> None:
    strict = make_rule(world.a1, query="acme", spike_k=1.0, spike_min_count=1)
    lenient = make_rule(world.a1, query="acme", spike_k=10.0, spike_min_count=1)
    synthesize(strict, source, history(8))
    synthesize(lenient, source, history(8))
    assert spike_scan(now=NOW) == 1
    assert SpikeAlert.objects.get().rule == strict


def test_no_alert_under_the_minimum_count(world, source) -> None:
    rule = make_rule(world.a1, spike_min_count=10)
    synthesize(rule, source, {0: 9})  # a quiet week (all zeros), 9 today: far above, but under the minimum
    assert spike_scan(now=NOW) == 0
    synthesize(rule, source, {0: 1})
    assert spike_scan(now=NOW) == 1


def test_one_alert_per_rule_per_hour(world, source) -> None:
    rule = make_rule(world.a1, spike_min_count=3)
    synthesize(rule, source, {0: 12})
    assert spike_scan(now=NOW) == 1
    assert spike_scan(now=NOW + dt.timedelta(minutes=15)) == 0  # the next beat, same hour
    assert spike_scan(now=NOW + dt.timedelta(minutes=45)) == 1  # the next hour
    assert SpikeAlert.objects.count() == 2 and world.a1.notifications.count() == 2


def test_inactive_rules_and_rules_without_spike_alerts_are_skipped(world, source) -> None:
    off = make_rule(world.a1, spike_alerts=False, spike_min_count=1)
    inactive = make_rule(world.a1, active=False, spike_min_count=1)
    for rule in (off, inactive):
        synthesize(rule, source, {0: 30})
    assert spike_scan(now=NOW) == 0


def test_a_team_rules_managers_hear_of_its_spike(world, source) -> None:
    rule = make_rule(world.a1, spike_min_count=2)
    private = make_rule(world.a2, spike_min_count=2, visibility="private")
    synthesize(rule, source, {0: 5})
    synthesize(private, source, {0: 5})
    assert spike_scan(now=NOW) == 2
    assert world.ma.notifications.count() == 1 and rule.name in world.ma.notifications.get().message
    assert world.a2.notifications.count() == 1
