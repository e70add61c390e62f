"""Activities on the contact timeline, through merge and unmerge, and through GDPR export and erasure."""

from __future__ import annotations

import pytest

from activities.models import Activity, ActivityPlan, PlanRun, TouchPrompt
from activities.services import activity_complete, activity_create
from contacts.selectors.timeline import contact_timeline
from contacts.services.gdpr import person_erase, person_export
from contacts.services.merge import contact_merge, contact_unmerge
from tests.contacts.factories import ContactFactory

pytestmark = pytest.mark.django_db


def test_done_activity_is_on_the_timeline(world) -> None:
    activity = activity_create(actor=world.a1, subject="Discovery call", kind="call", contact=world.a1_shared)
    activity_complete(activity=activity, actor=world.a1, outcome="reached")
    page = contact_timeline(user=world.a1, contact=world.a1_shared, before=None)
    titles = [entry.title for entry in page.entries]
    assert any("Discovery call" in t and "reached" in t for t in titles)


def test_merge_moves_activities_runs_and_prompts_and_unmerge_puts_them_back(world) -> None:
    primary = ContactFactory(first_name="Pat", last_name="Primary", owner=world.a1, team=world.team_a)
    duplicate = ContactFactory(first_name="Pat", last_name="Primary", owner=world.a1, team=world.team_a)
    plan = ActivityPlan.objects.create(name="Onboarding")
    kept = PlanRun.objects.create(plan=plan, contact=primary, assignee=world.a1)
    clash = PlanRun.objects.create(plan=plan, contact=duplicate, assignee=world.a1)
    activity = activity_create(actor=world.a1, subject="Call Pat", contact=duplicate)
    TouchPrompt.objects.create(contact=primary, owner=world.a1, cadence_days=14)
    their_prompt = TouchPrompt.objects.create(contact=duplicate, owner=world.a1, cadence_days=14)

    record = contact_merge(primary=primary, duplicate=duplicate, actor=world.a1)
    activity.refresh_from_db()
    clash.refresh_from_db()
    assert activity.contact_id == primary.pk
    assert clash.contact_id == primary.pk and clash.status == PlanRun.Status.CANCELLED  # not two live runs
    assert any("Plan run" in c for c in record.conflicts)  # reported, not dropped
    assert TouchPrompt.objects.get(pk=their_prompt.pk).status == TouchPrompt.Status.DISMISSED

    contact_unmerge(record=record, actor=world.a1)
    activity.refresh_from_db()
    clash.refresh_from_db()
    assert activity.contact_id == duplicate.pk
    assert (clash.contact_id, clash.status) == (duplicate.pk, PlanRun.Status.ACTIVE)
    assert TouchPrompt.objects.get(pk=their_prompt.pk).status == TouchPrompt.Status.OPEN
    assert PlanRun.objects.get(pk=kept.pk).contact_id == primary.pk


def test_gdpr_export_and_erase_cover_activities(world) -> None:
    activity_create(actor=world.a1, subject="Call about the invoice", contact=world.a1_shared, notes="private note")
    exported = person_export(contact=world.a1_shared, actor=world.admin)
    assert "Call about the invoice" in str(exported)
    person_erase(contact=world.a1_shared, actor=world.admin, reason="Art. 17 request")
    assert not Activity.objects.filter(subject="Call about the invoice").exists()
    assert not Activity.history.filter(notes="private note").exists()
