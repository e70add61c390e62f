"""Plan definitions: validation names the step, cycles are rejected on save, due dates count working days."""

from __future__ import annotations

import datetime as dt

import pytest
from django.urls import reverse

from activities.models import ActivityPlan, PlanStep, StepBranch
from activities.services.plans import plan_create, plan_due_date, plan_update
from crm.errors import DomainError

pytestmark = pytest.mark.django_db


def step(key: str, **extra: object) -> dict:
    return {"key": key, "kind": "call", "subject_template": f"{key} with {{contact.first_name}}", **extra}


def branching_steps() -> list[dict]:
    return [
        step("call", branches={"no_answer": "email", "reached": "meeting"}),
        step("email", kind="email", offset_days=1, is_final=True),
        step("meeting", kind="meeting", offset_days=2, is_final=True),
    ]


def test_manager_creates_branching_plan(world) -> None:
    plan = plan_create(actor=world.ma, name="Onboarding", steps=branching_steps())
    assert list(plan.steps.values_list("key", flat=True)) == ["call", "email", "meeting"]
    branches = dict(StepBranch.objects.filter(step__plan=plan).values_list("outcome", "goto__key"))
    assert branches == {"no_answer": "email", "reached": "meeting"}


def test_rep_cannot_create_plan(world) -> None:
    with pytest.raises(DomainError, match="Only managers and admins"):
        plan_create(actor=world.a1, name="Mine", steps=[step("a")])
    assert not ActivityPlan.objects.exists()


def test_cycle_through_branch_is_rejected_naming_the_step(world) -> None:
    steps = [step("intro"), step("follow", branches={"no_answer": "intro"})]
    with pytest.raises(DomainError) as exc:
        plan_create(actor=world.ma, name="Loop", steps=steps)
    assert exc.value.code == "cycle"
    assert "Step 'intro' leads back to itself via intro → follow → intro" in exc.value.message
    assert not ActivityPlan.objects.exists()


def test_self_loop_via_next_step_is_rejected(world) -> None:
    with pytest.raises(DomainError, match="Step 'a' leads back to itself via a → a"):
        plan_create(actor=world.ma, name="Self", steps=[step("a", next_step="a")])


def test_forward_branches_are_not_a_cycle(world) -> None:
    steps = [step("a", branches={"x": "c"}), step("b", next_step="d"), step("c"), step("d")]
    assert plan_create(actor=world.ma, name="Fine", steps=steps).steps.count() == 4


def test_negative_offset_is_rejected(world) -> None:
    with pytest.raises(DomainError) as exc:
        plan_create(actor=world.ma, name="Neg", steps=[step("a"), step("late", offset_days=-2)])
    assert "Step 'late': the offset cannot be negative" in exc.value.message
    assert "steps.1.offset_days" in exc.value.fields


def test_named_user_rule_needs_a_user(world) -> None:
    with pytest.raises(DomainError, match="Step 'a': choose the named user"):
        plan_create(actor=world.ma, name="N", steps=[step("a", assignee_rule="named_user")])
    plan = plan_create(actor=world.ma, name="N", steps=[step("a", assignee_rule="named_user", named_user=world.a2)])
    assert plan.steps.get().named_user == world.a2


@pytest.mark.parametrize(
    ("steps", "message"),
    [
        ([step("a"), step("a")], "the key 'a' is used by another step"),
        ([step("a", next_step="zzz")], "the next step 'zzz' does not exist"),
        ([step("a", branches={"reached": "nowhere"})], "goes to 'nowhere', which does not exist"),
        ([step("a", subject_template="")], "the subject is required"),
        ([step("a", subject_template="Hi {contact.__class__}")], "unknown placeholder"),
        ([step("a", kind="fax")], "unknown kind 'fax'"),
        ([], "at least one step"),
    ],
)
def test_bad_steps_are_rejected_with_clear_messages(world, steps: list[dict], message: str) -> None:
    with pytest.raises(DomainError, match=message):
        plan_create(actor=world.ma, name="Bad", steps=steps)


def test_update_replaces_steps_atomically(world) -> None:
    plan = plan_create(actor=world.ma, name="P", steps=branching_steps())
    with pytest.raises(DomainError):
        plan_update(plan=plan, actor=world.ma, steps=[step("x", next_step="x")])
    assert list(plan.steps.values_list("key", flat=True)) == ["call", "email", "meeting"]
    plan_update(plan=plan, actor=world.ma, name="P2", steps=[step("call"), step("wrap", is_final=True)])
    plan.refresh_from_db()
    assert plan.name == "P2"
    assert list(plan.steps.values_list("key", flat=True)) == ["call", "wrap"]
    assert not StepBranch.objects.filter(step__plan=plan).exists()
    assert PlanStep.objects.filter(plan=plan).count() == 2


def test_working_days_skip_weekend_and_holiday(world) -> None:
    friday = dt.date(2026, 11, 20)
    plan = plan_create(actor=world.ma, name="W", steps=[step("a")], holidays=["2026-11-24"])
    # Fri + 1 working day = Mon 23; + 2 skips Tue 24 (holiday) = Wed 25.
    assert plan_due_date(plan=plan, base=friday, offset_days=1) == dt.date(2026, 11, 23)
    assert plan_due_date(plan=plan, base=friday, offset_days=2) == dt.date(2026, 11, 25)
    # Offset 0 from a Saturday falls on the next working day.
    assert plan_due_date(plan=plan, base=dt.date(2026, 11, 21), offset_days=0) == dt.date(2026, 11, 23)
    plan.working_days_only = False
    assert plan_due_date(plan=plan, base=friday, offset_days=1) == dt.date(2026, 11, 21)


def test_bad_holiday_is_rejected(world) -> None:
    with pytest.raises(DomainError, match="'24/11' is not a date"):
        plan_create(actor=world.ma, name="H", steps=[step("a")], holidays=["24/11"])


# --- Pages ---


def _builder_post(**overrides: str) -> dict[str, str]:
    data = {
        "name": "Web plan", "working_days_only": "1", "holidays": "", "step_count": "3",
        "steps-0-key": "call", "steps-0-kind": "call", "steps-0-subject_template": "Call {contact.first_name}",
        "steps-0-offset_days": "0", "steps-0-offset_from": "plan_start", "steps-0-assignee_rule": "plan_assignee",
        "steps-0-branches": "no_answer = mail\nreached = meet",
        "steps-1-key": "mail", "steps-1-kind": "email", "steps-1-subject_template": "Mail", "steps-1-offset_days": "1",
        "steps-1-offset_from": "previous", "steps-1-assignee_rule": "plan_assignee", "steps-1-is_final": "1",
        "steps-2-key": "meet", "steps-2-kind": "meeting", "steps-2-subject_template": "Meet",
        "steps-2-offset_days": "2", "steps-2-offset_from": "previous", "steps-2-assignee_rule": "plan_assignee",
    }  # fmt: skip
    data.update(overrides)
    return data


def test_builder_page_creates_branching_plan(world, client) -> None:
    client.force_login(world.ma)
    assert client.get(reverse("activities:plan_create")).status_code == 200
    response = client.post(reverse("activities:plan_create"), _builder_post())
    assert response.status_code == 302
    plan = ActivityPlan.objects.get(name="Web plan")
    assert dict(StepBranch.objects.filter(step__plan=plan).values_list("outcome", "goto__key")) == {
        "no_answer": "mail", "reached": "meet"}  # fmt: skip
    edit = client.get(reverse("activities:plan_edit", args=[plan.pk]))
    assert "no_answer = mail" in edit.content.decode()


def test_builder_shows_the_cycle_error_on_the_step(world, client) -> None:
    client.force_login(world.ma)
    response = client.post(reverse("activities:plan_create"), _builder_post(**{"steps-2-next_step": "call"}))
    assert response.status_code == 400
    html = response.content.decode()
    assert "leads back to itself" in html and 'id="step-0-errors"' in html
    assert not ActivityPlan.objects.exists()


def test_builder_negative_offset_error_is_on_that_step(world, client) -> None:
    client.force_login(world.ma)
    response = client.post(reverse("activities:plan_create"), _builder_post(**{"steps-1-offset_days": "-3"}))
    assert response.status_code == 400
    assert 'id="step-1-errors"' in response.content.decode()


def test_plan_pages_are_404_for_reps(world, client) -> None:
    plan = plan_create(actor=world.ma, name="P", steps=[step("a")])
    client.force_login(world.a1)
    for url in (reverse("activities:plan_list"), reverse("activities:plan_create"),
                reverse("activities:plan_assign", args=[plan.pk]), reverse("activities:adherence")):  # fmt: skip
        assert client.get(url).status_code == 404


def test_plan_list_query_count(world, client, django_assert_max_num_queries) -> None:
    for i in range(5):
        plan_create(actor=world.ma, name=f"P{i}", steps=[step("a"), step("b")])
    client.force_login(world.ma)
    with django_assert_max_num_queries(8):
        response = client.get(reverse("activities:plan_list"))
    assert response.content.decode().count("Assign<span") == 5


def test_assign_page_then_progress_page(world, client) -> None:
    plan = plan_create(actor=world.ma, name="P", steps=[step("a")])
    client.force_login(world.ma)
    url = reverse("activities:plan_assign", args=[plan.pk])
    bad = client.post(url, {"assignee": str(world.a1.pk), "target": "contact", "contact_id": str(world.a2_private.pk)})
    assert bad.status_code == 400 and "cannot see" in bad.content.decode()
    bad = client.post(url, {"assignee": str(world.a1.pk), "target": "list", "contact_ids": "1, x"})
    assert bad.status_code == 400 and "as numbers" in bad.content.decode()
    ids = f"{world.a1_shared.pk}, {world.a2_shared.pk}"
    response = client.post(url, {"assignee": str(world.a1.pk), "target": "list", "contact_ids": ids})
    assert response.status_code == 302
    page = client.get(response["Location"])
    assert 'data-status="done"' in page.content.decode() and "2 runs started" in page.content.decode()
    partial = client.get(response["Location"], HTTP_HX_REQUEST="true")
    assert "<html" not in partial.content.decode()


# --- API ---


def test_api_plan_crud_assign_and_runs(world, api_client, django_assert_max_num_queries) -> None:
    api_client.force_authenticate(world.ma)
    body = {"name": "API plan", "holidays": ["2026-12-25"], "steps": branching_steps()}
    created = api_client.post("/api/v1/plans/", body, format="json")
    assert created.status_code == 201, created.content
    plan_id = created.data["id"]
    assert created.data["steps"][0]["branches"] == {"no_answer": "email", "reached": "meeting"}

    cycle = {"steps": [step("a", branches={"x": "b"}), step("b", next_step="a")]}
    bad = api_client.patch(f"/api/v1/plans/{plan_id}/", cycle, format="json")
    assert bad.status_code == 400
    assert bad.json()["error"]["message"].startswith("Step 'a' leads back to itself")
    negative = api_client.patch(f"/api/v1/plans/{plan_id}/", {"steps": [step("a", offset_days=-1)]}, format="json")
    assert negative.status_code == 400 and "negative" in negative.json()["error"]["message"]

    assign = api_client.post(
        f"/api/v1/plans/{plan_id}/assign/",
        {"assignee": world.a1.pk, "contact_ids": [world.a1_shared.pk, world.a2_shared.pk]},
        format="json",
    )
    assert assign.status_code == 201 and assign.data["created_runs"] == 2
    progress = api_client.get(f"/api/v1/plan-assignments/{assign.data['id']}/")
    assert progress.data["status"] == "done" and progress.data["progress_percent"] == 100

    with django_assert_max_num_queries(6):
        runs = api_client.get("/api/v1/plan-runs/", {"plan": plan_id})
    assert len(runs.data["results"]) == 2
    run_id = runs.data["results"][0]["id"]
    assert api_client.post(f"/api/v1/plan-runs/{run_id}/pause/").data["status"] == "paused"
    assert api_client.post(f"/api/v1/plan-runs/{run_id}/resume/").data["status"] == "active"
    assert api_client.post(f"/api/v1/plan-runs/{run_id}/cancel/").data["status"] == "cancelled"
    moved = api_client.post(
        "/api/v1/plan-runs/reassign-all/", {"from_user": world.a1.pk, "to_user": world.a2.pk}, format="json"
    )
    assert moved.data == {"moved": 1}
    assert api_client.delete(f"/api/v1/plans/{plan_id}/").status_code == 204
    assert not ActivityPlan.objects.get(pk=plan_id).is_active


def test_api_reps_see_no_plans_and_cannot_create(world, api_client) -> None:
    plan_create(actor=world.ma, name="P", steps=[step("a")])
    api_client.force_authenticate(world.a1)
    assert api_client.get("/api/v1/plans/").data["results"] == []
    response = api_client.post("/api/v1/plans/", {"name": "x", "steps": [step("a")]}, format="json")
    assert response.status_code == 400 and "Only managers" in response.json()["error"]["message"]
    api_client.force_authenticate(world.b1)
    assert api_client.get("/api/v1/plan-runs/").data["results"] == []


def test_update_moves_live_runs_to_the_step_with_the_same_key(world) -> None:
    from activities.models import Activity, PlanRun
    from activities.services.plans import plan_assign

    plan = plan_create(actor=world.ma, name="P", steps=branching_steps())
    plan_assign(plan=plan, actor=world.ma, assignee=world.a1, contacts=[world.a1_shared])
    plan_update(plan=plan, actor=world.ma, steps=[step("intro"), step("call", subject_template="New call")])
    run = PlanRun.objects.get()
    assert run.current_step.key == "call" and run.current_step.plan_id == plan.pk
    assert Activity.objects.get().plan_step == run.current_step


def test_managers_do_not_see_other_teams_plans(world) -> None:
    from activities.selectors.plans import plan_list
    from tests.accounts.factories import UserFactory, membership

    other = membership(UserFactory(username="mb", role="manager"), world.team_b, manager=True)
    plan_create(actor=other, name="B only", team=world.team_b, steps=[step("a")])
    plan_create(actor=other, name="Everyone", steps=[step("a")])
    assert [p.name for p in plan_list(user=world.ma)] == ["Everyone"]
    assert [p.name for p in plan_list(user=world.admin)] == ["B only", "Everyone"]
    assert not plan_list(user=world.a1).exists()


def test_builder_add_step_keeps_input_and_adds_a_row(world, client) -> None:
    client.force_login(world.ma)
    response = client.post(reverse("activities:plan_create"), _builder_post(add_step="1"))
    assert response.status_code == 200
    html = response.content.decode()
    assert 'value="Call {contact.first_name}"' in html and 'id="step-5"' in html
    assert not ActivityPlan.objects.exists()
