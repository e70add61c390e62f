"""`manage.py bench activities` at a tiny size: the figures are there and the database is left unchanged."""

from __future__ import annotations

import json

import pytest
from django.core.management import call_command

from accounts.models import Notification, Team, User
from activities.models import Activity, ActivityPlan, ContactCadence, PlanRun, TierCadence, TouchPrompt
from contacts.models import Contact

pytestmark = pytest.mark.django_db

MODELS = (User, Team, Contact, Activity, TouchPrompt, ContactCadence, TierCadence, ActivityPlan, PlanRun, Notification)


def _counts() -> dict[str, int]:
    return {m.__name__: m.objects.count() for m in MODELS}


def test_bench_activities_reports_figures_and_rolls_back(world, capsys: pytest.CaptureFixture[str]) -> None:
    TierCadence.objects.create(tier="A", days=5)
    before = _counts()
    call_command("bench", "activities", "--contacts", "300", "--activities-per-contact", "3", "--samples", "3")
    figures = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    for key in ("bench", "contacts", "prompt_scan_s", "prompt_scan_naive_s", "myday_p95_ms", "plan_assign_10k_s"):
        assert key in figures
    assert figures["bench"] == "activities" and figures["contacts"] == 300
    assert figures["activities"] == 300 * 3
    assert figures["prompts_created"] > 0
    assert figures["myday_p95_ms"] > 0
    assert _counts() == before
    assert TierCadence.objects.get(tier="A").days == 5
