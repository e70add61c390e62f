"""Plan runs: branching on outcomes, completion, pause/resume/cancel, stop on reply, reassigning everything."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from activities.models import Activity, PlanRun
from activities.services import activity_complete, activity_skip
from activities.services.plans import (
    plan_assign,
    plan_create,
    plan_run_cancel,
    plan_run_pause,
    plan_run_reassign,
    plan_run_resume,
    plan_runs_reassign_all,
)
from crm.errors import DomainError, NotFound
from threads.events import IngestedMessage, messages_ingested

pytestmark = pytest.mark.django_db


def branching_plan(world):  # type: ignore[no-untyped-def]
    steps = [
        {"key": "call", "kind": "call", "subject_template": "Call {contact.first_name}",
         "branches": {"no_answer": "email", "reached": "meeting"}},
        {"key": "email", "kind": "email", "subject_template": "Follow-up mail", "offset_days": 1, "is_final": True},
        {"key": "meeting", "kind": "meeting", "subject_template": "Meet", "offset_days": 3, "offset_from": "previous"},
        {"key": "thanks", "kind": "task", "subject_template": "Thank-you note", "offset_days": 0},
    ]  # fmt: skip
    return plan_create(actor=world.ma, name="Sales", steps=steps, working_days_only=False)


def start(world, contact=None):  # type: ignore[no-untyped-def]
    plan = branching_plan(world)
    plan_assign(plan=plan, actor=world.ma, assignee=world.a1, contacts=[contact or world.a1_shared])
    return PlanRun.objects.get(plan=plan)


def open_activity(run: PlanRun) -> Activity:
    return run.activities.get(status=Activity.Status.OPEN)


def test_no_answer_branches_to_the_email_step_then_completes(world) -> None:
    run = start(world)
    activity_complete(activity=open_activity(run), actor=world.a1, outcome="no_answer")
    run.refresh_from_db()
    email = open_activity(run)
    assert (email.plan_step.key, email.kind, run.current_step.key) == ("email", "email", "email")
    assert email.due_at.date() == timezone.localdate() + dt.timedelta(days=1)
    activity_complete(activity=email, actor=world.a1)
    run.refresh_from_db()
    assert run.status == PlanRun.Status.COMPLETED and run.ended_at is not None and run.current_step is None
    assert run.activities.count() == 2


def test_reached_branches_to_meeting_then_next_in_order(world) -> None:
    run = start(world)
    activity_complete(activity=open_activity(run), actor=world.a1, outcome="reached")
    meeting = open_activity(run)
    assert meeting.plan_step.key == "meeting"
    assert meeting.due_at.date() == timezone.localdate() + dt.timedelta(days=3)
    activity_complete(activity=meeting, actor=world.a1)
    assert open_activity(run).plan_step.key == "thanks"
    activity_skip(activity=open_activity(run), actor=world.a1)
    run.refresh_from_db()
    assert run.status == PlanRun.Status.COMPLETED


def test_unmatched_outcome_follows_order(world) -> None:
    run = start(world)
    activity_complete(activity=open_activity(run), actor=world.a1, outcome="wrong_number")
    assert open_activity(run).plan_step.key == "email"


def test_paused_run_waits_and_resume_moves_on(world) -> None:
    run = start(world)
    plan_run_pause(run=run, actor=world.ma)
    call = open_activity(run)
    activity_complete(activity=call, actor=world.a1, outcome="reached")
    assert not run.activities.filter(status=Activity.Status.OPEN).exists()
    run = plan_run_resume(run=run, actor=world.ma)
    assert run.status == PlanRun.Status.ACTIVE
    assert open_activity(run).plan_step.key == "meeting"
    with pytest.raises(DomainError, match="Only a paused run can be resumed"):
        plan_run_resume(run=run, actor=world.ma)


def test_cancel_cancels_the_open_plan_activity(world) -> None:
    run = start(world)
    run = plan_run_cancel(run=run, actor=world.a1)
    assert run.status == PlanRun.Status.CANCELLED
    assert run.activities.get().status == Activity.Status.CANCELLED
    with pytest.raises(DomainError, match="already ended"):
        plan_run_cancel(run=run, actor=world.a1)


def test_other_teams_rep_cannot_touch_the_run(world) -> None:
    run = start(world)
    with pytest.raises(NotFound):
        plan_run_pause(run=run, actor=world.b1)


def test_inbound_message_stops_the_contacts_runs(world) -> None:
    run = start(world)
    other = start(world, world.a2_shared)
    for _ in range(2):  # idempotent: a duplicate event changes nothing
        messages_ingested.send(sender=None, messages=[
            IngestedMessage(message_id=1, contact_id=world.a1_shared.pk, thread_id=None, direction="inbound",
                            channel="email"),
        ])  # fmt: skip
    run.refresh_from_db()
    assert run.status == PlanRun.Status.STOPPED and run.stop_reason == "The contact replied"
    assert run.activities.get().status == Activity.Status.CANCELLED
    other.refresh_from_db()
    assert other.status == PlanRun.Status.ACTIVE


def test_outbound_message_does_not_stop_runs(world) -> None:
    run = start(world)
    messages_ingested.send(sender=None, messages=[
        IngestedMessage(message_id=2, contact_id=world.a1_shared.pk, thread_id=None, direction="outbound",
                        channel="email"),
    ])  # fmt: skip
    run.refresh_from_db()
    assert run.status == PlanRun.Status.ACTIVE


def test_reassign_all_moves_live_runs_and_open_activities(world) -> None:
    run = start(world)
    done = start(world, world.a2_shared)
    plan_run_cancel(run=done, actor=world.ma)
    moved = plan_runs_reassign_all(from_user=world.a1, to_user=world.a2, actor=world.ma)
    assert moved == 1
    run.refresh_from_db()
    assert run.assignee == world.a2
    assert open_activity(run).owner == world.a2
    done.refresh_from_db()
    assert done.assignee == world.a1
    with pytest.raises(DomainError, match="not in a team you manage"):
        plan_runs_reassign_all(from_user=world.a1, to_user=world.b1, actor=world.ma)


def test_reassign_one_run_checks_the_new_assignee_sees_the_contact(world) -> None:
    run = start(world, world.a1_private)
    with pytest.raises(DomainError, match="cannot see this contact"):
        plan_run_reassign(run=run, actor=world.ma, assignee=world.a2)
    shared = start(world)
    assert plan_run_reassign(run=shared, actor=world.ma, assignee=world.a2).assignee == world.a2


# --- Pages ---


def test_runs_page_lists_and_acts(world, client, django_assert_max_num_queries) -> None:
    from django.urls import reverse

    run = start(world)
    for contact in (world.a2_shared, world.a1_private):
        start(world, contact)
    client.force_login(world.ma)
    with django_assert_max_num_queries(12):
        page = client.get(reverse("activities:plan_runs"))
    assert page.content.decode().count("Pause<span") == 3
    response = client.post(reverse("activities:plan_run_action", args=[run.pk, "pause"]))
    assert response.status_code == 302
    run.refresh_from_db()
    assert run.status == PlanRun.Status.PAUSED
    again = client.post(reverse("activities:plan_run_action", args=[run.pk, "pause"]), follow=True)
    assert "Only an active run can be paused" in again.content.decode()
    assert client.post(reverse("activities:plan_run_action", args=[run.pk, "explode"])).status_code == 404
    # Reassigning someone's work is one page for activities and plan runs together.
    assert reverse("activities:reassign_work") in page.content.decode()


def test_other_team_cannot_act_on_run_and_reps_cannot_reassign_all(world, client) -> None:
    from django.urls import reverse

    run = start(world)
    client.force_login(world.b1)
    assert client.post(reverse("activities:plan_run_action", args=[run.pk, "cancel"])).status_code == 404
    assert "Pause<span" not in client.get(reverse("activities:plan_runs")).content.decode()
    client.force_login(world.a1)
    response = client.post(reverse("activities:reassign_work"), {"from_user": world.a1.pk, "to_user": 1})
    assert response.status_code == 404
    run.refresh_from_db()
    assert run.status == PlanRun.Status.ACTIVE
