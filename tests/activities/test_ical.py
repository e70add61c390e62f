"""The iCal feed (secret, revocable URL) and meeting invitations (METHOD:REQUEST)."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone
from icalendar import Calendar

from accounts.services import user_calendar_token_rotate
from activities.models import Activity
from activities.services.calendar import meeting_invitation_email, meeting_invitation_ics
from crm.errors import DomainError
from tests.contacts.factories import IdentityFactory

pytestmark = pytest.mark.django_db

NOW = timezone.now()


def _feed(client, token: str):
    return client.get(f"/activities/ical/{token}.ics")


def test_feed_parses_and_lists_the_users_activities_in_range(client, world, django_assert_max_num_queries) -> None:
    token = user_calendar_token_rotate(user=world.a1)
    meeting = Activity.objects.create(subject="Demo", kind="meeting", owner=world.a1, contact=world.a1_shared,
                                      due_at=NOW + dt.timedelta(days=2), duration_minutes=60, location="Room 4",
                                      notes="Bring slides")  # fmt: skip
    task = Activity.objects.create(subject="Default length", owner=world.a1, due_at=NOW - dt.timedelta(days=3))
    Activity.objects.create(subject="Too old", owner=world.a1, due_at=NOW - dt.timedelta(days=40))
    Activity.objects.create(subject="Too far", owner=world.a1, due_at=NOW + dt.timedelta(days=200))
    Activity.objects.create(subject="Undated", owner=world.a1)
    Activity.objects.create(subject="Someone else", owner=world.a2, due_at=NOW)

    with django_assert_max_num_queries(3):
        response = _feed(client, token)  # anonymous: the token is the credential
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/calendar")
    cal = Calendar.from_ical(response.content)
    events = {str(e["uid"]): e for e in cal.walk("VEVENT")}
    assert set(events) == {f"activity-{meeting.pk}@threadline", f"activity-{task.pk}@threadline"}
    event = events[f"activity-{meeting.pk}@threadline"]
    assert str(event["summary"]) == "Demo" and str(event["location"]) == "Room 4"
    assert "Bring slides" in str(event["description"]) and str(event["status"]) == "CONFIRMED"
    assert event.decoded("dtend") - event.decoded("dtstart") == dt.timedelta(minutes=60)
    assert "last-modified" in event
    short = events[f"activity-{task.pk}@threadline"]
    assert short.decoded("dtend") - short.decoded("dtstart") == dt.timedelta(minutes=30)


@pytest.mark.parametrize("token", ["nope", "x" * 43, ""])
def test_unknown_or_blank_token_is_404(client, world, token: str) -> None:
    assert client.get(f"/activities/ical/{token}.ics").status_code == 404


def test_blank_token_user_is_not_reachable(client, world) -> None:
    assert world.b1.calendar_token == ""
    assert client.get("/activities/ical/.ics").status_code == 404


def test_revoked_token_is_404_and_new_one_works(client, world) -> None:
    old = user_calendar_token_rotate(user=world.a1)
    new = user_calendar_token_rotate(user=world.a1)
    assert _feed(client, old).status_code == 404
    assert _feed(client, new).status_code == 200


def test_deactivated_users_feed_is_404(client, world) -> None:
    token = user_calendar_token_rotate(user=world.a1)
    world.a1.is_active = False
    world.a1.save(update_fields=["is_active"])
    assert _feed(client, token).status_code == 404


def test_invitation_is_a_request_with_organizer_and_attendee(world) -> None:
    IdentityFactory(contact=world.a1_shared, kind="email", value="ann@example.org", normalized="ann@example.org")
    meeting = Activity.objects.create(subject="Demo", kind="meeting", owner=world.a1, contact=world.a1_shared,
                                      due_at=NOW + dt.timedelta(days=1), location="Room 4")  # fmt: skip
    cal = Calendar.from_ical(meeting_invitation_ics(activity=meeting))
    assert str(cal["method"]) == "REQUEST"
    (event,) = cal.walk("VEVENT")
    assert str(event["organizer"]) == f"mailto:{world.a1.email}"
    attendees = event["attendee"] if isinstance(event["attendee"], list) else [event["attendee"]]
    assert [str(a) for a in attendees] == ["mailto:ann@example.org"]
    assert str(event["uid"]) == f"activity-{meeting.pk}@threadline"


def test_invitation_email_carries_text_calendar_attachment(world) -> None:
    meeting = Activity.objects.create(subject="Demo", kind="meeting", owner=world.a1, due_at=NOW)
    message = meeting_invitation_email(activity=meeting, to=["ann@example.org"])
    (name, content, mimetype) = message.attachments[0]
    assert name == "invite.ics" and mimetype.startswith("text/calendar")
    text = content.decode() if isinstance(content, bytes) else content  # Django decodes text/* attachments
    assert "METHOD:REQUEST" in text
    assert "text/calendar" in message.message().as_string()


def test_invitation_needs_a_date_and_recipients(world) -> None:
    undated = Activity.objects.create(subject="Sometime", kind="meeting", owner=world.a1)
    with pytest.raises(DomainError):
        meeting_invitation_ics(activity=undated)
    dated = Activity.objects.create(subject="Demo", kind="meeting", owner=world.a1, due_at=NOW)
    with pytest.raises(DomainError):
        meeting_invitation_email(activity=dated, to=[])
