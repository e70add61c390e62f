"""Server-side SVG charts of mention volume and sentiment: geometry computed here, drawn by templates
(templates/listening/_volume_chart.html, _sentiment_chart.html, _sparkline.html). No chart library, no script.

Every chart comes with the same numbers as a visually-hidden table, so a screen reader gets the data, not a picture.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field
from typing import Any

# Series are told apart by colour *and* dash pattern (see listening.css .series-N), so colour-blind readers can too.
MAX_SERIES = 6

VOLUME_WIDTH, VOLUME_HEIGHT = 640, 240
PLOT_LEFT, PLOT_RIGHT, PLOT_TOP, PLOT_BOTTOM = 44, 628, 12, 204

SPARK_WIDTH, SPARK_HEIGHT = 120, 28


def _day(value: Any) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(str(value)[:10])


def nice_ceiling(value: int) -> int:
    """The smallest 1, 2 or 5 times a power of ten at or above ``value`` (at least 1): round axis labels."""
    if value <= 1:
        return 1
    exponent = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 5, 10):
        if step * exponent >= value:
            return step * exponent
    return 10 * exponent  # pragma: no cover - the loop always returns


@dataclass
class Point:
    x: float
    y: float
    day: dt.date
    count: int


@dataclass
class Series:
    rule_id: int
    name: str
    index: int
    total: int
    points: list[Point] = field(default_factory=list)

    @property
    def polyline(self) -> str:
        return " ".join(f"{p.x:.1f},{p.y:.1f}" for p in self.points)


@dataclass
class Tick:
    label: str
    x: float = 0.0
    y: float = 0.0
    anchor: str = "middle"  # the last date label ends at the plot's edge instead of spilling over it


@dataclass
class VolumeChart:
    series: list[Series]
    days: list[dt.date]
    y_ticks: list[Tick]
    x_ticks: list[Tick]
    maximum: int
    width: int = VOLUME_WIDTH
    height: int = VOLUME_HEIGHT
    left: int = PLOT_LEFT
    right: int = PLOT_RIGHT
    top: int = PLOT_TOP
    bottom: int = PLOT_BOTTOM
    hidden: int = 0  # rules with mentions left out because only the top MAX_SERIES are drawn

    @property
    def empty(self) -> bool:
        return not self.series

    @property
    def total(self) -> int:
        return sum(s.total for s in self.series)

    @property
    def summary(self) -> str:
        """The chart in one sentence, for aria-label."""
        if not self.series:
            return "No mentions in this period."
        span = f"{self.days[0]:%-d %b} to {self.days[-1]:%-d %b}" if self.days else ""
        parts = ", ".join(f"{s.name}: {s.total}" for s in self.series)
        return f"Mentions per day, {span}. Totals — {parts}."

    def rows(self) -> list[dict[str, Any]]:
        """Day by day counts per series, for the hidden data table."""
        return [{"day": day, "counts": [s.points[i].count for s in self.series]} for i, day in enumerate(self.days)]


def volume_chart(volume: list[dict[str, Any]], *, limit: int = MAX_SERIES) -> VolumeChart:
    """Lines of mentions per day, one per rule (the ``limit`` busiest), from ``selectors.mention_volume`` rows."""
    rows = []
    for row in volume:
        points = sorted(((_day(p["day"]), int(p["count"])) for p in row.get("series", [])), key=lambda p: p[0])
        rows.append((row, points, sum(c for _, c in points)))
    rows.sort(key=lambda r: (-r[2], str(r[0].get("rule", ""))))
    drawn = [r for r in rows if r[2] > 0][:limit]
    hidden = len([r for r in rows if r[2] > 0]) - len(drawn)
    # Every day from the first to the last any rule reports, so a day nobody reported still takes its place.
    reported = [day for _, points, _ in rows for day, _ in points]
    days = (
        [min(reported) + dt.timedelta(days=i) for i in range((max(reported) - min(reported)).days + 1)] if drawn else []
    )
    maximum = nice_ceiling(max((c for _, points, _ in drawn for _, c in points), default=0))
    plot_w, plot_h = PLOT_RIGHT - PLOT_LEFT, PLOT_BOTTOM - PLOT_TOP
    index_of = {day: i for i, day in enumerate(days)}
    step = plot_w / max(1, len(days) - 1)

    def x_at(day: dt.date) -> float:
        return PLOT_LEFT + (plot_w / 2 if len(days) == 1 else index_of[day] * step)

    def y_at(count: int) -> float:
        return PLOT_BOTTOM - plot_h * count / maximum

    series = []
    for i, (row, points, total) in enumerate(drawn):
        by_day = dict(points)
        # A missing day is a zero (the selector fills them, but a gap must never draw a misleading line).
        full = [(day, by_day.get(day, 0)) for day in days]
        drawn_points = [Point(x=x_at(day), y=y_at(count), day=day, count=count) for day, count in full]
        rule_id, name = int(row.get("rule_id") or 0), str(row.get("rule", ""))
        series.append(Series(rule_id=rule_id, name=name, index=i, total=total, points=drawn_points))
    y_ticks = [Tick(label=str(v), y=y_at(v)) for v in sorted({0, maximum // 2, maximum})]
    x_ticks = []
    if days:
        stride = max(1, round(len(days) / 5))
        chosen = list(range(0, len(days), stride))
        if len(days) - 1 - chosen[-1] >= stride / 2:
            chosen.append(len(days) - 1)
        x_ticks = [
            Tick(label=f"{days[i]:%-d %b}", x=x_at(days[i]), anchor="end" if i == len(days) - 1 and i else "middle")
            for i in chosen
        ]
    return VolumeChart(series=series, days=days, y_ticks=y_ticks, x_ticks=x_ticks, maximum=maximum, hidden=hidden)


@dataclass
class SentimentBar:
    key: str
    label: str
    count: int
    percent: float
    x: float
    width: float


@dataclass
class SentimentChart:
    bars: list[SentimentBar]
    total: int
    width: int = VOLUME_WIDTH

    @property
    def summary(self) -> str:
        if not self.total:
            return "No mentions in this period."
        parts = ", ".join(f"{b.label.lower()} {b.count} ({b.percent:.0f}%)" for b in self.bars)
        return f"Sentiment of {self.total} mentions: {parts}."


SENTIMENTS = (("negative", "Negative"), ("neutral", "Neutral"), ("positive", "Positive"))


def sentiment_chart(mix: dict[str, int], *, width: int = 600) -> SentimentChart:
    """A 100 % stacked bar of negative / neutral / positive, from ``selectors.sentiment_mix``."""
    counts = [(key, label, int(mix.get(key, 0) or 0)) for key, label in SENTIMENTS]
    total = sum(c for _, _, c in counts)
    bars, x = [], 0.0
    for key, label, count in counts:
        share = count / total if total else 0.0
        bars.append(SentimentBar(key=key, label=label, count=count, percent=100 * share, x=x, width=width * share))
        x += width * share
    return SentimentChart(bars=bars, total=total, width=width)


@dataclass
class Sparkline:
    points: str
    total: int
    days: int
    maximum: int
    width: int = SPARK_WIDTH
    height: int = SPARK_HEIGHT


def sparkline(series: list[dict[str, Any]]) -> Sparkline:
    """A rule's daily counts as a tiny line (no axes; the exact numbers are in its label and the table)."""
    counts = [int(p["count"]) for p in sorted(series, key=lambda p: _day(p["day"]))]
    maximum = max(counts, default=0)
    n = len(counts)
    pad = 2
    step = (SPARK_WIDTH - 2 * pad) / max(1, n - 1)
    scale = (SPARK_HEIGHT - 2 * pad) / maximum if maximum else 0
    points = " ".join(f"{pad + i * step:.1f},{SPARK_HEIGHT - pad - c * scale:.1f}" for i, c in enumerate(counts))
    return Sparkline(points=points, total=sum(counts), days=n, maximum=maximum)
