"""Assigning a plan: visibility of the assignee, idempotency, and the chunked background path with progress."""

from __future__ import annotations

import pytest

from activities.models import Activity, PlanAssignment, PlanRun
from activities.services import plans as plan_services
from activities.services.plans import plan_assign, plan_create
from activities.tasks.plans import plan_assignment_task
from contacts.models import SavedView
from crm.errors import DomainError, NotFound
from tests.contacts.factories import ContactFactory

pytestmark = pytest.mark.django_db


def make_plan(world, **extra: object):  # type: ignore[no-untyped-def]
    steps = [
        {"key": "call", "kind": "call", "subject_template": "Call {contact.first_name}", "offset_days": 0},
        {"key": "mail", "kind": "email", "subject_template": "Mail {contact.name}", "offset_days": 2},
    ]
    return plan_create(actor=world.ma, name="Intro", steps=steps, **extra)


def test_assign_creates_runs_and_first_activities(world) -> None:
    plan = make_plan(world)
    assignment = plan_assign(
        plan=plan, actor=world.ma, assignee=world.a1, contact_ids=[world.a1_shared.pk, world.a2_shared.pk]
    )
    assert assignment.status == PlanAssignment.Status.DONE
    assert (assignment.total, assignment.processed, assignment.created_runs, assignment.skipped) == (2, 2, 2, 0)
    runs = PlanRun.objects.filter(plan=plan)
    assert set(runs.values_list("contact_id", flat=True)) == {world.a1_shared.pk, world.a2_shared.pk}
    activity = Activity.objects.get(contact=world.a1_shared)
    assert activity.subject == "Call Ann"
    assert activity.owner == world.a1
    assert activity.plan_step.key == "call"
    assert activity.due_at is not None
    assert runs.get(contact=world.a1_shared).current_step.key == "call"


def test_assigning_twice_creates_nothing_new(world) -> None:
    plan = make_plan(world)
    ids = [world.a1_shared.pk, world.a2_shared.pk]
    plan_assign(plan=plan, actor=world.ma, assignee=world.a1, contact_ids=ids)
    again = plan_assign(plan=plan, actor=world.ma, assignee=world.a1, contact_ids=ids)
    assert (again.created_runs, again.skipped) == (0, 2)
    assert PlanRun.objects.count() == 2
    assert Activity.objects.count() == 2


def test_contacts_the_assignee_cannot_see_are_skipped_and_counted(world) -> None:
    plan = make_plan(world)
    ids = [world.a1_shared.pk, world.a2_private.pk, world.b1_shared.pk]
    assignment = plan_assign(plan=plan, actor=world.admin, assignee=world.a1, contact_ids=ids)
    assert (assignment.created_runs, assignment.skipped) == (1, 2)
    assert list(PlanRun.objects.values_list("contact_id", flat=True)) == [world.a1_shared.pk]


def test_single_contact_the_assignee_cannot_see_is_an_error(world) -> None:
    plan = make_plan(world)
    with pytest.raises(DomainError, match="cannot see Al Secret"):
        plan_assign(plan=plan, actor=world.ma, assignee=world.a1, contacts=[world.a2_private])
    assert not PlanAssignment.objects.exists()


def test_single_contact_the_manager_cannot_see_is_not_found(world) -> None:
    plan = make_plan(world)
    with pytest.raises(NotFound):
        plan_assign(plan=plan, actor=world.ma, assignee=world.a1, contact_ids=[world.b1_shared.pk])


def test_rep_cannot_assign_and_manager_only_to_own_team(world) -> None:
    plan = make_plan(world)
    with pytest.raises(DomainError, match="Only managers and admins"):
        plan_assign(plan=plan, actor=world.a1, assignee=world.a1, contact_ids=[world.a1_shared.pk])
    with pytest.raises(DomainError, match="not in a team you manage"):
        plan_assign(plan=plan, actor=world.ma, assignee=world.b1, contact_ids=[world.b1_shared.pk])


def test_exactly_one_target_is_required(world) -> None:
    plan = make_plan(world)
    with pytest.raises(DomainError, match="Choose one target"):
        plan_assign(plan=plan, actor=world.ma, assignee=world.a1)
    with pytest.raises(DomainError, match="at least one contact"):
        plan_assign(plan=plan, actor=world.ma, assignee=world.a1, contact_ids=[])


def test_assign_to_saved_view(world) -> None:
    plan = make_plan(world)
    world.a1_shared.tier = "A"
    world.a1_shared.save()
    view = SavedView.objects.create(owner=world.ma, name="Tier A", filters={"tier": "A"})
    assignment = plan_assign(plan=plan, actor=world.ma, assignee=world.a1, saved_view=view)
    assert assignment.total == 1
    assert list(PlanRun.objects.values_list("contact_id", flat=True)) == [world.a1_shared.pk]


def test_contact_owner_rule_assigns_the_step_to_the_owner(world) -> None:
    steps = [{"key": "a", "subject_template": "Hi", "assignee_rule": "contact_owner"}]
    plan = plan_create(actor=world.ma, name="Owner", steps=steps)
    plan_assign(plan=plan, actor=world.ma, assignee=world.a1, contact_ids=[world.a2_shared.pk])
    assert Activity.objects.get().owner == world.a2


def test_large_assignment_runs_in_the_task_in_chunks(world, monkeypatch, django_capture_on_commit_callbacks) -> None:
    monkeypatch.setattr(plan_services, "INLINE_LIMIT", 3)
    monkeypatch.setattr(plan_services, "CHUNK_SIZE", 4)
    contacts = [ContactFactory(owner=world.a1, team=world.team_a) for _ in range(9)]
    invisible = ContactFactory(owner=world.b1, team=world.team_b)
    plan = make_plan(world)
    ids = [c.pk for c in contacts] + [invisible.pk]
    with django_capture_on_commit_callbacks() as callbacks:
        assignment = plan_assign(plan=plan, actor=world.admin, assignee=world.a1, contact_ids=ids)
    assert assignment.status == PlanAssignment.Status.QUEUED
    assert assignment.processed == 0 and not PlanRun.objects.exists()
    assert len(callbacks) == 1

    seen: list[int] = []
    original = plan_services._assign_chunk

    def spy(locked, chunk, *, actor_id):  # type: ignore[no-untyped-def]
        seen.append(len(chunk))
        return original(locked, chunk, actor_id=actor_id)

    monkeypatch.setattr(plan_services, "_assign_chunk", spy)
    plan_assignment_task(assignment.pk)
    assignment.refresh_from_db()
    assert seen == [4, 4, 2]
    assert assignment.status == PlanAssignment.Status.DONE
    assert (assignment.total, assignment.processed, assignment.created_runs, assignment.skipped) == (10, 10, 9, 1)
    assert assignment.progress_percent == 100
    assert PlanRun.objects.count() == 9 and Activity.objects.count() == 9

    # A redelivered task finds the assignment done; a reset one (crash before the status moved) creates nothing.
    plan_assignment_task(assignment.pk)
    PlanAssignment.objects.filter(pk=assignment.pk).update(status="running", processed=0, created_runs=0, skipped=0)
    plan_assignment_task(assignment.pk)
    assignment.refresh_from_db()
    assert (assignment.created_runs, assignment.skipped) == (0, 10)
    assert PlanRun.objects.count() == 9 and Activity.objects.count() == 9


def test_first_chunk_inserts_activities_in_one_statement(world, django_assert_max_num_queries) -> None:
    contacts = [ContactFactory(owner=world.a1, team=world.team_a) for _ in range(30)]
    plan = make_plan(world)
    with django_assert_max_num_queries(20):
        plan_assign(plan=plan, actor=world.admin, assignee=world.a1, contact_ids=[c.pk for c in contacts])
    assert Activity.objects.count() == 30


def test_manager_cannot_reach_a_contact_through_a_rep_in_another_team(world) -> None:
    from tests.accounts.factories import UserFactory, membership

    both = membership(membership(UserFactory(username="both"), world.team_a), world.team_b)
    plan = make_plan(world)
    assignment = plan_assign(
        plan=plan, actor=world.ma, assignee=both, contact_ids=[world.b1_shared.pk, world.a1_shared.pk]
    )
    assert (assignment.created_runs, assignment.skipped) == (1, 1)
    assert list(PlanRun.objects.values_list("contact_id", flat=True)) == [world.a1_shared.pk]


def test_a_named_user_who_cannot_see_the_contact_is_a_clear_error_or_a_skip(world) -> None:
    steps = [
        {"key": "call", "kind": "call", "subject_template": "Call {contact.first_name}", "offset_days": 0},
        {"key": "visit", "kind": "meeting", "subject_template": "Visit", "offset_days": 3,
         "assignee_rule": "named_user", "named_user": world.b1},
    ]  # fmt: skip
    plan = plan_create(actor=world.admin, name="Field visit", steps=steps)
    with pytest.raises(DomainError) as exc:
        plan_assign(plan=plan, actor=world.admin, assignee=world.a1, contact_ids=[world.a1_shared.pk])
    assert exc.value.code == "named_user_cannot_see" and "Visit" in exc.value.message
    # In a list, such contacts are skipped and counted like any the assignee cannot see.
    assignment = plan_assign(plan=plan, actor=world.admin, assignee=world.a1,
                             contact_ids=[world.a1_shared.pk, world.a2_shared.pk])  # fmt: skip
    assert (assignment.created_runs, assignment.skipped) == (0, 2)
