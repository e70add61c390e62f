"""Calendar pages: week and month grids of the user's own activities, the managers' team view."""

from __future__ import annotations

import datetime as dt

import pytest
from django.urls import reverse
from django.utils import timezone

from activities.models import Activity
from tests.contacts.factories import ContactFactory

pytestmark = pytest.mark.django_db


def _at(day: dt.date, hour: int = 10) -> dt.datetime:
    return timezone.make_aware(dt.datetime.combine(day, dt.time(hour)))


URL = "/activities/calendar/"


def test_week_view_shows_the_monday_to_sunday_of_the_date(client, world, django_assert_max_num_queries) -> None:
    wednesday = dt.date(2026, 11, 18)
    for n in range(8):
        contact = ContactFactory(owner=world.a1, team=world.team_a)
        Activity.objects.create(subject=f"Week item {n}", owner=world.a1, contact=contact, due_at=_at(wednesday, 8 + n))
    Activity.objects.create(subject="Next week item", owner=world.a1, due_at=_at(dt.date(2026, 11, 23)))
    Activity.objects.create(subject="Not mine", owner=world.a2, due_at=_at(wednesday))
    client.force_login(world.a1)
    with django_assert_max_num_queries(15):
        response = client.get(URL, {"view": "week", "date": "2026-11-18"})
    body = response.content.decode()
    assert response.status_code == 200
    assert 'data-date="2026-11-16"' in body and 'data-date="2026-11-22"' in body
    assert 'data-date="2026-11-23"' not in body
    assert "Week item 0" in body and "+2 more" in body
    assert "Next week item" not in body and "Not mine" not in body
    assert "date=2026-11-09" in body and "date=2026-11-23" in body  # previous and next links


def test_month_view_covers_whole_weeks_of_the_month(client, world) -> None:
    Activity.objects.create(subject="Month start", owner=world.a1, due_at=_at(dt.date(2026, 11, 1)))
    Activity.objects.create(subject="Month end", owner=world.a1, due_at=_at(dt.date(2026, 11, 30)))
    Activity.objects.create(
        subject="Cancelled one", owner=world.a1, due_at=_at(dt.date(2026, 11, 5)), status="cancelled"
    )
    client.force_login(world.a1)
    body = client.get(URL, {"view": "month", "date": "2026-11-18"}).content.decode()
    assert 'data-date="2026-10-26"' in body and 'data-date="2026-12-06"' in body
    assert "Month start" in body and "Month end" in body and "Cancelled one" not in body
    assert "date=2026-10-01" in body and "date=2026-12-01" in body
    assert "November 2026" in body


def test_bad_view_and_bad_date_fall_back_with_a_message(client, world) -> None:
    client.force_login(world.a1)
    response = client.get(URL, {"view": "year", "date": "2026-13-45"})
    assert response.status_code == 200
    body = response.content.decode()
    assert "is not a date" in body and "Unknown calendar view" in body


def test_calendar_requires_login(client) -> None:
    assert client.get(URL).status_code == 302


def test_team_view_is_404_for_reps(client, world) -> None:
    client.force_login(world.a1)
    assert client.get(reverse("activities:calendar_team")).status_code == 404


def test_team_view_shows_managed_members_activities(client, world, django_assert_max_num_queries) -> None:
    day = dt.date(2026, 11, 18)
    Activity.objects.create(subject="A1 shared", owner=world.a1, team=world.team_a, due_at=_at(day))
    Activity.objects.create(subject="A2 shared", owner=world.a2, team=world.team_a, due_at=_at(day, 11))
    Activity.objects.create(subject="B1 thing", owner=world.b1, team=world.team_b, due_at=_at(day))
    client.force_login(world.ma)
    with django_assert_max_num_queries(15):
        body = client.get(reverse("activities:calendar_team"), {"date": "2026-11-18"}).content.decode()
    assert "A1 shared" in body and "A2 shared" in body and "B1 thing" not in body
    assert "a2" in body  # the owner is named in the team view


def test_calendar_shows_feed_url_and_rotation_revokes_it(client, world) -> None:
    client.force_login(world.a1)
    body = client.get(URL).content.decode()
    assert "Calendar feed" in body and "Create a calendar link" in body
    response = client.post(reverse("activities:calendar_token_rotate"), follow=True)
    world.a1.refresh_from_db()
    first = world.a1.calendar_token
    assert first and f"/activities/ical/{first}.ics" in response.content.decode()
    client.post(reverse("activities:calendar_token_rotate"))
    world.a1.refresh_from_db()
    assert world.a1.calendar_token != first


def test_send_invitation_button_on_meetings(client, world) -> None:
    from django.core import mail

    from tests.contacts.factories import IdentityFactory

    contact = ContactFactory(owner=world.a1, team=world.team_a)
    IdentityFactory(contact=contact, kind="email", value="ann@example.org", normalized="ann@example.org")
    meeting = Activity.objects.create(subject="Demo", kind="meeting", owner=world.a1, contact=contact,
                                      due_at=_at(timezone.localdate()))  # fmt: skip
    client.force_login(world.a1)
    body = client.get(URL).content.decode()
    assert reverse("activities:meeting_invite", args=[meeting.pk]) in body
    response = client.post(reverse("activities:meeting_invite", args=[meeting.pk]), follow=True)
    assert "Invitation sent to 1 address" in response.content.decode()
    assert mail.outbox[0].to == ["ann@example.org"]
    client.force_login(world.a2)
    assert client.post(reverse("activities:meeting_invite", args=[meeting.pk])).status_code == 404


def test_invitation_for_a_task_is_refused_with_a_message(client, world) -> None:
    task = Activity.objects.create(subject="Task", owner=world.a1, contact=world.a1_shared, due_at=timezone.now())
    client.force_login(world.a1)
    response = client.post(reverse("activities:meeting_invite", args=[task.pk]), follow=True)
    assert "Only meetings and appointments" in response.content.decode()


def test_api_calendar_range(api_client, world, django_assert_max_num_queries) -> None:
    day = dt.date(2026, 11, 18)
    inside = Activity.objects.create(subject="In", owner=world.a1, due_at=_at(day), duration_minutes=45)
    Activity.objects.create(subject="Out", owner=world.a1, due_at=_at(day + dt.timedelta(days=10)))
    Activity.objects.create(subject="Other", owner=world.a2, due_at=_at(day))
    api_client.force_authenticate(world.a1)
    with django_assert_max_num_queries(3):
        response = api_client.get("/api/v1/calendar/", {"start": "2026-11-16", "end": "2026-11-23"})
    assert response.status_code == 200
    rows = response.json()
    assert [r["id"] for r in rows] == [inside.pk]
    assert dt.datetime.fromisoformat(rows[0]["ends_at"]) - dt.datetime.fromisoformat(rows[0]["due_at"]) == (
        dt.timedelta(minutes=45)
    )


@pytest.mark.parametrize(
    "params",
    [{}, {"start": "2026-11-16"}, {"start": "soon", "end": "2026-11-20"}, {"start": "2026-11-20", "end": "2026-11-16"},
     {"start": "2026-01-01", "end": "2027-06-01"}],
)  # fmt: skip
def test_api_calendar_rejects_bad_ranges(api_client, world, params: dict[str, str]) -> None:
    api_client.force_authenticate(world.a1)
    response = api_client.get("/api/v1/calendar/", params)
    assert response.status_code == 400 and response.json()["error"]["message"]
