"""`manage.py bench NAME [options]`: run one registered benchmark and print its figures as one JSON line."""

from __future__ import annotations

import json
import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from crm.bench import benchmarks


class Command(BaseCommand):
    help = "Run a benchmark and print one JSON line with its figures and a same-run baseline."

    def add_arguments(self, parser: CommandParser) -> None:
        available = benchmarks()
        subparsers = parser.add_subparsers(dest="bench_name", metavar="NAME")
        for name, bench in available.items():
            sub = subparsers.add_parser(name, help=bench.help)
            if bench.add_arguments:
                bench.add_arguments(sub)

    def handle(self, *args: Any, **options: Any) -> None:
        available = benchmarks()
        name = options.pop("bench_name", None)
        if name not in available:
            names = ", ".join(available) or "none registered"
            raise CommandError(f"name a benchmark: {names}")
        figures = {"bench": name, **available[name].run(**options)}
        sys.stdout.write(json.dumps(figures) + "\n")
