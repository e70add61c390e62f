"""Manual channels: touches logged by hand and completed call/meeting activities become thread messages."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

import threads.services
from activities.services import activity_complete, activity_create
from crm.errors import DomainError, NotFound
from threads.events import messages_ingested
from threads.models import Message, Thread
from threads.services.manual import message_log_manual, message_record_activity

pytestmark = pytest.mark.django_db


def test_logged_call_lands_in_the_main_thread_and_touches_the_contact(
    world, django_capture_on_commit_callbacks
) -> None:
    received: list = []

    def receiver(sender, messages, **kwargs) -> None:  # type: ignore[no-untyped-def]
        received.extend(messages)

    messages_ingested.connect(receiver)
    when = timezone.now() - dt.timedelta(hours=1)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            message = message_log_manual(
                actor=world.a2, contact=world.a1_shared, channel="call", direction="outbound", subject="Renewal",
                body="She wants the annual plan.", sent_at=when, duration_minutes=12, outcome="reached",
                participants=["Ann", " ", "Her CFO"],
            )  # fmt: skip
    finally:
        messages_ingested.disconnect(receiver)
    assert message.thread == Thread.objects.get(contact=world.a1_shared, topic="")
    assert (message.channel, message.direction, message.created_by, message.sent_at) == (
        "call", "outbound", world.a2, when,
    )  # fmt: skip
    assert message.channel_account is None and message.external_id.startswith("manual:")
    assert message.meta == {"duration_minutes": 12, "outcome": "reached", "participants": ["Ann", "Her CFO"]}
    world.a1_shared.refresh_from_db()
    assert world.a1_shared.last_touch_at == when
    assert [(m.message_id, m.contact_id, m.channel) for m in received] == [(message.pk, world.a1_shared.pk, "call")]
    message.thread.refresh_from_db()
    assert message.thread.message_count == 1 and message.thread.last_channel == "call"


def test_two_identical_touches_are_two_messages(world) -> None:
    for _ in range(2):
        message_log_manual(actor=world.a1, contact=world.a1_shared, channel="note", body="Met at the fair.")
    assert Message.objects.filter(contact=world.a1_shared).count() == 2


def test_rep_cannot_log_on_a_contact_they_cannot_see(world) -> None:
    with pytest.raises(NotFound):
        message_log_manual(actor=world.b1, contact=world.a1_shared, channel="call")
    with pytest.raises(NotFound):
        message_log_manual(actor=world.a2, contact=world.a1_private, channel="call")
    assert not Message.objects.exists()


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"sent_at": timezone.now() + dt.timedelta(days=1)}, "sent_at"),
        ({"duration_minutes": -1}, "duration_minutes"),
        ({"duration_minutes": 1441}, "duration_minutes"),
        ({"channel": "email"}, "channel"),
        ({"direction": "sideways"}, "direction"),
        ({"channel": "note", "body": "  "}, "body"),
    ],
)
def test_bad_touches_are_refused_with_the_field_to_fix(world, kwargs, field) -> None:
    data = {"channel": "call", **kwargs}
    with pytest.raises(DomainError) as caught:
        message_log_manual(actor=world.a1, contact=world.a1_shared, **data)
    assert field in caught.value.fields
    assert not Message.objects.exists()


def test_duration_bounds_are_inclusive(world) -> None:
    for minutes in (0, 1440):
        message_log_manual(actor=world.a1, contact=world.a1_shared, channel="meeting", duration_minutes=minutes)
    assert Message.objects.count() == 2


def test_completed_activity_is_recorded_once(world) -> None:
    activity = activity_create(
        actor=world.a1, subject="Discovery call", kind="call", contact=world.a1_shared, notes="Asked about SSO.",
        duration_minutes=30,
    )  # fmt: skip
    activity.status, activity.outcome, activity.done_at = "done", "reached", timezone.now() - dt.timedelta(minutes=5)
    first = message_record_activity(activity=activity, channel="call")
    again = message_record_activity(activity=activity, channel="call")
    assert first is not None and again is None
    message = Message.objects.get()
    assert (message.subject, message.body_text, message.direction, message.created_by) == (
        "Discovery call", "Asked about SSO.", "outbound", world.a1,
    )  # fmt: skip
    assert message.sent_at == activity.done_at and message.global_key == f"activity:{activity.pk}"
    assert message.meta == {"activity_id": activity.pk, "outcome": "reached", "duration_minutes": 30}
    assert message.thread.contact == world.a1_shared


def test_activity_without_contact_records_nothing(world) -> None:
    activity = activity_create(actor=world.a1, subject="Prep", kind="call")
    assert message_record_activity(activity=activity, channel="call") is None
    assert not Message.objects.exists()


def test_completing_a_meeting_through_activities_records_it_in_the_thread(world, monkeypatch) -> None:
    # activities imports the hook from threads.services; until that package re-exports it, put it there.
    monkeypatch.setattr(threads.services, "message_record_activity", message_record_activity, raising=False)
    activity = activity_create(actor=world.a1, subject="Quarterly review", kind="meeting", contact=world.a1_shared)
    activity_complete(activity=activity, actor=world.a1, outcome="reached", notes="Going well.")
    message = Message.objects.get()
    assert (message.channel, message.subject, message.body_text) == ("meeting", "Quarterly review", "Going well.")


def test_log_page_preselects_call_and_now(world, client) -> None:
    client.force_login(world.a1)
    response = client.get(f"/threads-manual/contacts/{world.a1_shared.pk}/log/")
    assert response.status_code == 200
    html = response.content.decode()
    assert 'value="call" id="id_channel_0" required checked' in html
    assert timezone.localtime().strftime("%Y-%m-%dT") in html


def test_log_page_posts_and_returns_to_the_contact(world, client) -> None:
    client.force_login(world.a1)
    response = client.post(
        f"/threads-manual/contacts/{world.a1_shared.pk}/log/",
        {"channel": "in_person", "direction": "inbound", "subject": "Trade fair", "body": "Stopped by our booth.",
         "sent_at": (timezone.localtime() - dt.timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M"),
         "duration_minutes": "15", "outcome": "interested"},
    )  # fmt: skip
    assert response.status_code == 302 and response["Location"] == f"/contacts/{world.a1_shared.pk}/"
    message = Message.objects.get()
    assert (message.channel, message.direction, message.subject, message.meta["duration_minutes"]) == (
        "in_person", "inbound", "Trade fair", 15,
    )  # fmt: skip
    page = client.get(response["Location"])
    assert "In person logged with Ann Shared." in page.content.decode()
    assert f"/threads-manual/contacts/{world.a1_shared.pk}/log/" in page.content.decode()


def test_log_page_shows_errors_and_keeps_the_input(world, client) -> None:
    client.force_login(world.a1)
    future = (timezone.localtime() + dt.timedelta(days=2)).strftime("%Y-%m-%dT%H:%M")
    response = client.post(
        f"/threads-manual/contacts/{world.a1_shared.pk}/log/",
        {"channel": "call", "direction": "outbound", "body": "Keep me", "sent_at": future},
    )
    assert response.status_code == 400
    html = response.content.decode()
    assert "Is in the future" in html and "Keep me" in html
    assert not Message.objects.exists()


def test_log_page_of_an_invisible_contact_is_404(world, client) -> None:
    client.force_login(world.b1)
    url = f"/threads-manual/contacts/{world.a1_shared.pk}/log/"
    assert client.get(url).status_code == 404
    assert (
        client.post(url, {"channel": "call", "direction": "outbound", "sent_at": "2025-01-01T10:00"}).status_code == 404
    )
    assert not Message.objects.exists()
