"""Registry of benchmarks for `manage.py bench NAME`.

Apps register a benchmark in their own ``benchmarks.py`` (discovered like ``tasks.py``), so crm never imports
them. A benchmark returns a dict of figures; it must measure its baseline in the same run, because machines here
are noisy and only ratios measured side by side mean anything.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.core.management.base import CommandParser


@dataclass(frozen=True)
class Benchmark:
    name: str
    run: Callable[..., dict[str, Any]]
    add_arguments: Callable[[CommandParser], None] | None = None
    help: str = ""
    defaults: dict[str, Any] = field(default_factory=dict)


_BENCHMARKS: dict[str, Benchmark] = {}


def register(benchmark: Benchmark) -> Benchmark:
    _BENCHMARKS[benchmark.name] = benchmark
    return benchmark


def benchmarks() -> dict[str, Benchmark]:
    from django.utils.module_loading import autodiscover_modules

    autodiscover_modules("benchmarks")
    return dict(sorted(_BENCHMARKS.items()))


def p95_ms(samples_s: list[float]) -> float:
    """95th percentile of durations in seconds, in milliseconds, rounded for a JSON line."""
    if not samples_s:
        return 0.0
    if len(samples_s) == 1:
        return round(samples_s[0] * 1000, 2)
    return round(statistics.quantiles(samples_s, n=100, method="inclusive")[94] * 1000, 2)
