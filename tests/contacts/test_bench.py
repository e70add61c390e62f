"""`manage.py bench contacts` runs end to end on a small data set and leaves the database as it was."""

from __future__ import annotations

import json

import pytest
from django.core.management import call_command

from accounts.models import Team, User
from contacts.models import Company, Contact, ContactIdentity, ImportJob, LifeEvent

pytestmark = pytest.mark.django_db

KEYS = {
    "bench", "contacts", "search_p95_ms", "search_seqscan_p95_ms", "detail_p95_ms", "timeline_p95_ms",
    "list_api_first_p95_ms", "list_api_deep_p95_ms", "import_rows_per_s",
}  # fmt: skip
MODELS = (User, Team, Company, Contact, ContactIdentity, LifeEvent, ImportJob, Contact.history.model)  # type: ignore[attr-defined]


def test_bench_prints_one_json_line_and_leaves_the_database_unchanged(world, capsys) -> None:  # type: ignore[no-untyped-def]
    before = {m.__name__: m.objects.count() for m in MODELS}
    capsys.readouterr()
    # The command writes its JSON line to sys.stdout itself.
    call_command("bench", "contacts", "--contacts", "2000", "--samples", "20", "--import-rows", "200")
    lines = [line for line in capsys.readouterr().out.splitlines() if line.strip()]
    assert len(lines) == 1
    figures = json.loads(lines[0])
    assert set(figures) >= KEYS
    assert figures["bench"] == "contacts" and figures["contacts"] == 2000
    for key in KEYS - {"bench", "contacts", "import_rows_per_s"}:
        assert figures[key] > 0, key
    assert figures["import_rows_per_s"] is None or figures["import_rows_per_s"] > 0
    assert {m.__name__: m.objects.count() for m in MODELS} == before
