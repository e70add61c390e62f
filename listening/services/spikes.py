"""Spike alerts: a rule's last-24-hours mention count against the mean and population standard deviation of its
seven previous daily counts (days without mentions count as zero).

A spike is ``count > mean + k * stddev`` and ``count >= spike_min_count``. One statement computes every rule's figures
and inserts the alerts; ``UNIQUE(rule, window_end)`` with ``window_end`` truncated to the hour makes a re-run in
the same hour (beat runs it every 15 minutes) insert nothing, so each spike notifies once per hour at most.

A rule younger than a week compares against zeros for the days before it existed: ``spike_min_count`` is what
keeps a new, busy rule from calling its first day a spike.
"""

from __future__ import annotations

import datetime as dt

from django.db import connection, transaction
from django.utils import timezone

from accounts.models import Notification
from accounts.services import notification_create
from listening.models import ListeningRule, SpikeAlert
from listening.services.actions import mentions_url, rule_recipients

HISTORY_DAYS = 7

_SPIKE_SQL = """
WITH r AS (
    SELECT id, spike_k, spike_min_count FROM listening_listeningrule WHERE active AND spike_alerts
), daily AS (
    SELECT m.rule_id, floor(extract(epoch FROM (%(now)s - m.occurred_at)) / 86400)::int AS d, count(*)::float8 AS n
    FROM listening_mention m JOIN r ON r.id = m.rule_id
    WHERE m.occurred_at > %(now)s - make_interval(days => %(days)s + 1) AND m.occurred_at <= %(now)s
    GROUP BY 1, 2
), stats AS (
    SELECT r.id AS rule_id, r.spike_k AS k, r.spike_min_count AS min_count,
        coalesce(sum(daily.n) FILTER (WHERE daily.d = 0), 0) AS current,
        coalesce(sum(daily.n) FILTER (WHERE daily.d BETWEEN 1 AND %(days)s), 0) / %(days)s AS mean,
        coalesce(sum(daily.n * daily.n) FILTER (WHERE daily.d BETWEEN 1 AND %(days)s), 0) / %(days)s AS mean_sq
    FROM r LEFT JOIN daily ON daily.rule_id = r.id
    GROUP BY r.id, r.spike_k, r.spike_min_count
), figures AS (
    SELECT rule_id, k, min_count, current, mean, sqrt(greatest(mean_sq - mean * mean, 0)) AS stddev FROM stats
)
INSERT INTO listening_spikealert (rule_id, window_end, count, mean, stddev, k, created_at)
SELECT rule_id, %(window_end)s, current::bigint, mean, stddev, k, %(now)s FROM figures
WHERE current >= min_count AND current > mean + k * stddev
ON CONFLICT (rule_id, window_end) DO NOTHING
RETURNING id
"""


def _window_end(now: dt.datetime) -> dt.datetime:
    return now.astimezone(dt.UTC).replace(minute=0, second=0, microsecond=0)


@transaction.atomic
def spike_scan(*, now: dt.datetime | None = None) -> int:
    """Raise spike alerts for every active rule whose last-24 h volume exceeds its 7-day mean + k std devs.
    Returns how many alerts were raised (0 on a re-run within the same hour)."""
    now = now or timezone.now()
    with connection.cursor() as cursor:
        cursor.execute(_SPIKE_SQL, {"now": now, "days": HISTORY_DAYS, "window_end": _window_end(now)})
        ids = [row[0] for row in cursor.fetchall()]
    if not ids:
        return 0
    spikes = SpikeAlert.objects.filter(pk__in=ids).select_related("rule__owner").order_by("id")
    for spike in spikes:
        _notify(spike.rule, spike)
    return len(ids)


def _notify(rule: ListeningRule, spike: SpikeAlert) -> None:
    text = (
        f"Spike: “{rule.name}” has {spike.count} mentions in the last 24 hours "
        f"(usually {spike.mean:.1f} ± {spike.stddev:.1f} a day)"
    )
    # Spikes are rare and say something about the whole team's customers: a team rule's managers hear too.
    for user in rule_recipients(rule, with_team_managers=True):
        notification_create(
            user=user, message=text, level=Notification.Level.ALERT, url=mentions_url(rule.pk),
            dedupe_key=f"listening-spike:{spike.pk}",
        )  # fmt: skip
