"""Admin actions on plan runs and touch prompts go through the services (state rules apply; refusals reported)."""

from __future__ import annotations

import pytest
from django.urls import reverse

from activities.models import PlanRun, TouchPrompt
from tests.activities.test_plan_runs import start

pytestmark = pytest.mark.django_db


def _act(client, model: str, action: str, ids: list[int]):  # type: ignore[no-untyped-def]
    url = reverse(f"admin:activities_{model}_changelist")
    return client.post(url, {"action": action, "_selected_action": ids}, follow=True)


def test_admin_pauses_resumes_and_cancels_plan_runs(client, world) -> None:
    run = start(world)
    client.force_login(world.admin)
    page = _act(client, "planrun", "pause_runs", [run.pk]).content.decode()
    assert "Paused 1." in page
    run.refresh_from_db()
    assert run.status == PlanRun.Status.PAUSED
    page = _act(client, "planrun", "pause_runs", [run.pk]).content.decode()
    assert "Paused 0." in page and "Only an active run can be paused" in page
    _act(client, "planrun", "resume_runs", [run.pk])
    run.refresh_from_db()
    assert run.status == PlanRun.Status.ACTIVE
    _act(client, "planrun", "cancel_runs", [run.pk])
    run.refresh_from_db()
    assert run.status == PlanRun.Status.CANCELLED


def test_admin_snoozes_and_dismisses_prompts(client, world) -> None:
    prompt = TouchPrompt.objects.create(contact=world.a1_shared, owner=world.a1, cadence_days=14)
    client.force_login(world.admin)
    assert "Snoozed 1." in _act(client, "touchprompt", "snooze_week", [prompt.pk]).content.decode()
    prompt.refresh_from_db()
    assert prompt.status == TouchPrompt.Status.SNOOZED and prompt.snoozed_until is not None
    _act(client, "touchprompt", "dismiss", [prompt.pk])
    prompt.refresh_from_db()
    assert prompt.status == TouchPrompt.Status.DISMISSED
