"""The manager's flow: build a branching plan, assign it to an employee, watch the adherence report."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from accounts.models import User
from activities.models import ActivityPlan, PlanRun
from tests.accounts.factories import TeamFactory, UserFactory, membership
from tests.contacts.factories import ContactFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _sign_in(page, live_server, username: str) -> None:  # type: ignore[no-untyped-def]
    page.goto(f"{live_server.url}/accounts/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill("correct-horse-battery")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="My day", level=1)).to_be_visible()


def test_manager_creates_assigns_and_sees_adherence(page, live_server) -> None:  # type: ignore[no-untyped-def]
    team = TeamFactory(name="Sales")
    membership(UserFactory(username="boss", role=User.Role.MANAGER), team, manager=True)
    rep = membership(UserFactory(username="rita", first_name="Rita", last_name="Rep"), team)
    contact = ContactFactory(first_name="Carl", last_name="Client", owner=rep, team=team)
    _sign_in(page, live_server, "boss")

    page.goto(f"{live_server.url}/activities/plans/")
    expect(page).to_have_title("Activity plans · Threadline")
    page.get_by_role("link", name="New plan").click()
    page.get_by_label("Name", exact=True).fill("Warm intro")
    page.get_by_label("Key (step 1)").fill("call")
    page.get_by_label("Subject (step 1)").fill("Call {contact.first_name}")
    page.get_by_label("Branches (step 1)").fill("no_answer = mail\nreached = meet")
    page.get_by_label("Key (step 2)").fill("mail")
    page.get_by_label("Kind (step 2)").select_option("email")
    page.get_by_label("Subject (step 2)").fill("Follow-up mail")
    page.get_by_label("Then go to (step 2)").fill("call")  # a loop back: rejected, named
    page.get_by_label("Key (step 3)").fill("meet")
    page.get_by_label("Kind (step 3)").select_option("meeting")
    page.get_by_label("Subject (step 3)").fill("Meeting")
    page.get_by_role("button", name="Save plan").click()
    expect(page.get_by_role("alert").first).to_contain_text("Step 'call' leads back to itself")
    page.get_by_label("Then go to (step 2)").fill("")
    page.locator("#step-1 input[type=checkbox]").check()
    page.get_by_role("button", name="Save plan").click()
    expect(page.get_by_text("Plan “Warm intro” created.")).to_be_visible()
    assert ActivityPlan.objects.get().steps.count() == 3

    page.get_by_role("link", name="Assign Warm intro").click()
    page.get_by_label("Employee").select_option(label="Rita Rep (rita)")
    page.get_by_label("Contact id", exact=True).fill(str(contact.pk))
    page.get_by_role("button", name="Assign plan").click()
    expect(page.locator("#assignment-done")).to_contain_text("1 run started")
    assert PlanRun.objects.filter(contact=contact, assignee=rep).exists()

    page.get_by_role("link", name="Adherence of this plan").click()
    expect(page.get_by_role("heading", name="Plan adherence")).to_be_visible()
    table = page.get_by_role("table", name="Adherence by employee and plan")
    expect(table.get_by_role("row", name="Rita Rep Warm intro")).to_be_visible()
    expect(page.locator("svg.adherence-chart rect.adherence-bar")).to_have_count(1)


def test_manager_pauses_and_cancels_a_run(page, live_server) -> None:  # type: ignore[no-untyped-def]
    from activities.services.plans import plan_assign, plan_create

    team = TeamFactory(name="Sales")
    boss = membership(UserFactory(username="boss", role=User.Role.MANAGER), team, manager=True)
    rep = membership(UserFactory(username="rita"), team)
    contact = ContactFactory(first_name="Carl", last_name="Client", owner=rep, team=team)
    plan = plan_create(actor=boss, name="Warm intro", steps=[{"key": "call", "subject_template": "Call"}])
    plan_assign(plan=plan, actor=boss, assignee=rep, contacts=[contact])
    _sign_in(page, live_server, "boss")

    page.goto(f"{live_server.url}/activities/plans/")
    page.get_by_role("link", name="Plan runs").click()
    expect(page).to_have_title("Plan runs · Threadline")
    page.get_by_role("button", name="Pause Warm intro for Carl Client").click()
    expect(page.get_by_text("“Warm intro” for Carl Client paused.")).to_be_visible()
    expect(page.get_by_role("row", name="Carl Client")).to_contain_text("Paused")
    page.get_by_role("button", name="Cancel Warm intro for Carl Client").click()
    expect(page.get_by_role("row", name="Carl Client")).to_contain_text("Cancelled")
    assert PlanRun.objects.get().status == PlanRun.Status.CANCELLED


def test_large_assignment_progress_bar_polls_until_done(page, live_server, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from activities.services import plans as plan_services
    from activities.tasks.plans import plan_assignment_task

    team = TeamFactory(name="Sales")
    boss = membership(UserFactory(username="boss", role=User.Role.MANAGER), team, manager=True)
    rep = membership(UserFactory(username="rita"), team)
    contacts = [ContactFactory(owner=rep, team=team) for _ in range(3)]
    plan = plan_services.plan_create(actor=boss, name="Big", steps=[{"key": "call", "subject_template": "Call"}])
    monkeypatch.setattr(plan_services, "INLINE_LIMIT", 1)
    queued: list[int] = []
    monkeypatch.setattr(plan_assignment_task, "delay", queued.append)  # no worker here: run it by hand below
    assignment = plan_services.plan_assign(plan=plan, actor=boss, assignee=rep, contact_ids=[c.pk for c in contacts])
    assert queued == [assignment.pk]
    _sign_in(page, live_server, "boss")

    page.goto(f"{live_server.url}/activities/plan-assignments/{assignment.pk}/")
    page.wait_for_load_state("load")
    expect(page.locator("#assignment-status")).to_have_attribute("data-status", "queued")
    plan_assignment_task(assignment.pk)
    expect(page.locator("#assignment-done")).to_contain_text("3 runs started", timeout=5_000)
    expect(page.locator("#assignment-progress-bar")).to_have_attribute("value", "100")
