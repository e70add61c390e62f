"""The manager's adherence report: on-time %, overdue, done counts and average delay per employee and plan."""

from __future__ import annotations

import datetime as dt

import pytest
from django.urls import reverse
from django.utils import timezone

from activities.models import Activity
from activities.selectors.plans import adherence_report
from activities.services.plans import plan_assign, plan_create
from crm.errors import NotFound
from tests.contacts.factories import ContactFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def fixture(world):  # type: ignore[no-untyped-def]
    plan = plan_create(actor=world.ma, name="Intro", steps=[{"key": "a", "subject_template": "Call"}])
    extra = [ContactFactory(owner=world.a1, team=world.team_a) for _ in range(3)]
    plan_assign(plan=plan, actor=world.ma, assignee=world.a1, contact_ids=[world.a1_shared.pk] + [c.pk for c in extra])
    plan_assign(plan=plan, actor=world.ma, assignee=world.a2, contacts=[world.a2_shared])
    now = timezone.now()
    a1 = list(Activity.objects.filter(owner=world.a1).order_by("id"))
    # a1: one on time, one 2 hours late, one 4 hours late, one open and overdue.
    for activity, due, done in [
        (a1[0], now - dt.timedelta(days=1), now - dt.timedelta(days=2)),
        (a1[1], now - dt.timedelta(days=1), now - dt.timedelta(days=1) + dt.timedelta(hours=2)),
        (a1[2], now - dt.timedelta(days=1), now - dt.timedelta(days=1) + dt.timedelta(hours=4)),
        (a1[3], now - dt.timedelta(hours=1), None),
    ]:
        Activity.objects.filter(pk=activity.pk).update(
            due_at=due, done_at=done, status=Activity.Status.DONE if done else Activity.Status.OPEN
        )
    # b1's plan activity is outside the manager's teams.
    b_contact = ContactFactory(owner=world.b1, team=world.team_b)
    plan_assign(plan=plan, actor=world.admin, assignee=world.b1, contacts=[b_contact])
    return plan


def test_numbers_per_employee_and_plan(world, fixture) -> None:
    rows = {r.user_id: r for r in adherence_report(user=world.ma)}
    assert set(rows) == {world.a1.pk, world.a2.pk}
    a1 = rows[world.a1.pk]
    assert (a1.steps, a1.done, a1.on_time, a1.overdue_open) == (4, 3, 1, 1)
    assert a1.on_time_percent == 33
    assert a1.avg_delay_hours == 2.0  # (0 + 2 + 4) / 3
    a2 = rows[world.a2.pk]
    assert (a2.done, a2.overdue_open, a2.on_time_percent, a2.avg_delay_hours) == (0, 0, None, None)


def test_admin_sees_everyone_and_rep_nothing(world, fixture) -> None:
    assert {r.user_id for r in adherence_report(user=world.admin)} == {world.a1.pk, world.a2.pk, world.b1.pk}
    with pytest.raises(NotFound):
        adherence_report(user=world.a1)


def test_adherence_page_renders_chart_and_404s_for_reps(world, fixture, client, django_assert_max_num_queries) -> None:
    client.force_login(world.ma)
    with django_assert_max_num_queries(12):
        response = client.get(reverse("activities:adherence"))
    assert response.status_code == 200
    html = response.content.decode()
    assert "<svg" in html and "33%" in html
    client.force_login(world.a1)
    assert client.get(reverse("activities:adherence")).status_code == 404
