"""Activities: creating, completing and reassigning them, visibility, My day, and what completion touches."""

from __future__ import annotations

import datetime as dt

import pytest
from django.urls import reverse
from django.utils import timezone

from activities.models import Activity, Kind
from activities.selectors import my_day_activities
from activities.services import activities_reassign_all, activity_complete, activity_create
from crm.errors import DomainError
from tests.activities.factories import ActivityFactory

pytestmark = pytest.mark.django_db


def test_assignee_must_see_the_contact(world) -> None:
    with pytest.raises(DomainError, match="cannot see"):
        activity_create(actor=world.ma, owner=world.b1, subject="Call", contact=world.a1_shared)
    activity = activity_create(actor=world.ma, owner=world.a2, subject="Call Ann", contact=world.a1_shared)
    assert activity.owner == world.a2 and activity.team == world.team_a and activity.created_by == world.ma


def test_completing_moves_last_touch_forward_only_and_only_once(world) -> None:
    contact = world.a1_shared
    later = timezone.now() + dt.timedelta(days=3)
    contact.last_touch_at = later
    contact.save(update_fields=["last_touch_at"])
    activity = activity_create(actor=world.a1, subject="Call", kind=Kind.CALL, contact=contact)
    activity_complete(activity=activity, actor=world.a1, outcome="reached")
    contact.refresh_from_db()
    assert contact.last_touch_at == later  # an earlier touch never makes the last touch look older
    contact.last_touch_at = None
    contact.save(update_fields=["last_touch_at"])
    second = activity_create(actor=world.a1, subject="Meet", kind=Kind.MEETING, contact=contact)
    done = activity_complete(activity=second, actor=world.a1)
    contact.refresh_from_db()
    assert contact.last_touch_at == done.done_at
    with pytest.raises(DomainError, match="already done"):
        activity_complete(activity=done, actor=world.a1)


def test_my_day_lists_own_overdue_and_today_only(world, client, django_assert_max_num_queries) -> None:
    now = timezone.now()
    overdue = ActivityFactory(
        owner=world.a1, team=world.team_a, subject="Overdue call", due_at=now - dt.timedelta(days=2)
    )
    ActivityFactory(owner=world.a1, team=world.team_a, subject="Next week", due_at=now + dt.timedelta(days=7))
    ActivityFactory(owner=world.a2, team=world.team_a, subject="Not mine", due_at=now - dt.timedelta(hours=1))
    ActivityFactory(
        owner=world.a1, team=world.team_a, subject="Already done", due_at=now - dt.timedelta(hours=1),
        status=Activity.Status.DONE,
    )  # fmt: skip
    day = my_day_activities(user=world.a1, now=now)
    assert [a.subject for a in day["overdue"]] == ["Overdue call"]
    client.force_login(world.a1)
    with django_assert_max_num_queries(20):
        page = client.get(reverse("my_day"))
    html = page.content.decode()
    assert "Overdue call" in html and "Not mine" not in html and "Next week" not in html
    response = client.post(reverse("activities:complete", args=[overdue.pk]), HTTP_HX_REQUEST="true")
    assert response.status_code == 200 and "Done" in response.content.decode()
    overdue.refresh_from_db()
    assert overdue.status == Activity.Status.DONE


def test_other_teams_activity_is_404_everywhere(world, client, api_client) -> None:
    theirs = ActivityFactory(owner=world.b1, team=world.team_b, contact=world.b1_shared)
    client.force_login(world.a1)
    assert client.get(reverse("activities:detail", args=[theirs.pk])).status_code == 404
    assert client.post(reverse("activities:complete", args=[theirs.pk])).status_code == 404
    api_client.force_authenticate(world.a1)
    assert api_client.get(f"/api/v1/activities/{theirs.pk}/").status_code == 404
    assert api_client.post(f"/api/v1/activities/{theirs.pk}/complete/", {}).status_code == 404
    api_client.force_authenticate(world.ma)  # a manager of team A does not see team B either
    assert api_client.get(f"/api/v1/activities/{theirs.pk}/").status_code == 404
    api_client.force_authenticate(world.admin)
    assert api_client.get(f"/api/v1/activities/{theirs.pk}/").status_code == 200


def test_api_create_complete_and_bad_input(world, api_client, django_assert_max_num_queries) -> None:
    api_client.force_authenticate(world.a1)
    bad = api_client.post("/api/v1/activities/", {"subject": "", "kind": "golf", "contact": world.b1_shared.pk})
    assert bad.status_code == 400
    assert set(bad.json()["error"]["fields"]) >= {"subject", "kind", "contact"}
    created = api_client.post(
        "/api/v1/activities/", {"subject": "Golf outing", "kind": "in_person", "contact": world.a1_shared.pk}
    )
    assert created.status_code == 201, created.json()
    done = api_client.post(f"/api/v1/activities/{created.json()['id']}/complete/", {"outcome": "reached"})
    assert done.json()["status"] == "done" and done.json()["outcome"] == "reached"
    again = api_client.post(f"/api/v1/activities/{created.json()['id']}/complete/", {})
    assert again.status_code == 400 and again.json()["error"]["code"] == "activity_not_open"
    with django_assert_max_num_queries(8):
        listing = api_client.get("/api/v1/activities/?status=done")
    assert [row["subject"] for row in listing.json()["results"]] == ["Golf outing"]
    assert api_client.get("/api/v1/activities/?owner=abc").status_code == 400


def test_reassigning_everything_of_a_leaver(world) -> None:
    for _ in range(3):
        ActivityFactory(owner=world.a1, team=world.team_a)
    ActivityFactory(owner=world.a1, team=world.team_a, status=Activity.Status.DONE)
    assert activities_reassign_all(from_user=world.a1, to_user=world.a2, actor=world.ma) == 3
    assert Activity.objects.filter(owner=world.a1, status=Activity.Status.OPEN).count() == 0
    with pytest.raises(DomainError):
        activities_reassign_all(from_user=world.a2, to_user=world.a2, actor=world.ma)


def test_deleting_a_user_with_open_activities_requires_reassignment(world) -> None:
    from django.db.models import ProtectedError

    ActivityFactory(owner=world.a1, team=world.team_a)
    with pytest.raises(ProtectedError):
        world.a1.delete()


def test_next_parameter_cannot_redirect_off_site(world, client) -> None:
    activity = ActivityFactory(owner=world.a1, team=world.team_a)
    client.force_login(world.a1)
    response = client.post(reverse("activities:complete", args=[activity.pk]), {"next": "https://evil.example/"})
    assert response.status_code == 302 and response["Location"] == reverse("activities:detail", args=[activity.pk])


def test_create_page_schedules_for_a_contact(world, client) -> None:
    client.force_login(world.a1)
    url = reverse("activities:create") + f"?contact={world.a1_shared.pk}"
    assert client.get(url).status_code == 200
    response = client.post(url, {"kind": "meeting", "subject": "Lunch", "priority": "normal", "owner": world.a2.pk})
    assert response.status_code == 302
    assert Activity.objects.get(subject="Lunch").owner == world.a2
    invisible = reverse("activities:create") + f"?contact={world.b1_shared.pk}"
    assert client.get(invisible).status_code == 404


def test_manager_reassigns_a_leavers_open_work_and_reps_cannot(world, client) -> None:
    ActivityFactory(owner=world.a1, team=world.team_a)
    client.force_login(world.a2)
    assert client.get(reverse("activities:reassign_work")).status_code == 404
    client.force_login(world.ma)
    response = client.post(
        reverse("activities:reassign_work"), {"from_user": world.a1.pk, "to_user": world.a2.pk}, follow=True
    )
    assert "1 open activity and" in response.content.decode()
    assert Activity.objects.get().owner == world.a2
    # Someone outside the manager's teams cannot be chosen.
    response = client.post(
        reverse("activities:reassign_work"), {"from_user": world.a2.pk, "to_user": world.b1.pk}, follow=True
    )
    assert "Choose both people." in response.content.decode()
