"""Reminders (due soon, overdue) and the morning digest: idempotent notifications, e-mail only when created."""

from __future__ import annotations

import datetime as dt

import pytest
from django.core import mail
from django.utils import timezone

from accounts.models import Notification
from activities.models import Activity, TouchPrompt
from activities.services.calendar import digest_send, reminders_send

pytestmark = pytest.mark.django_db

NOW = timezone.now()


def _activity(owner, minutes: int, **kwargs) -> Activity:
    return Activity.objects.create(subject=kwargs.pop("subject", "Call Ann"), owner=owner,
                                   due_at=NOW + dt.timedelta(minutes=minutes), **kwargs)  # fmt: skip


def test_due_soon_and_overdue_notify_once_across_runs(world) -> None:
    soon = _activity(world.a1, 20, subject="Soon")
    late = _activity(world.a1, -90, subject="Late")
    _activity(world.a1, 120, subject="Later today")
    _activity(world.a1, 10, subject="Done already", status="done")

    assert reminders_send(now=NOW) == 2
    assert reminders_send(now=NOW) == 0

    keys = set(Notification.objects.filter(user=world.a1).values_list("dedupe_key", flat=True))
    assert keys == {
        f"activity:{soon.pk}:due_soon:{soon.due_at.isoformat()}",
        f"activity:{late.pk}:overdue:{late.due_at.isoformat()}",
    }
    assert len(mail.outbox) == 2
    assert {m.to[0] for m in mail.outbox} == {world.a1.email}
    assert all(m.alternatives and m.alternatives[0][1] == "text/html" for m in mail.outbox)


def test_soon_activity_later_becomes_overdue_and_rescheduled_one_notifies_again(world) -> None:
    activity = _activity(world.a1, 20)
    assert reminders_send(now=NOW) == 1
    assert reminders_send(now=NOW + dt.timedelta(minutes=25)) == 1  # now overdue: a second, different reminder
    activity.due_at = NOW + dt.timedelta(hours=3)
    activity.save(update_fields=["due_at"])
    assert reminders_send(now=NOW + dt.timedelta(hours=2, minutes=40)) == 1
    assert Notification.objects.filter(user=world.a1).count() == 3


def test_no_email_without_notify_by_email(world) -> None:
    world.a2.notify_by_email = False
    world.a2.save(update_fields=["notify_by_email"])
    _activity(world.a2, 5)
    assert reminders_send(now=NOW) == 1
    assert Notification.objects.filter(user=world.a2).count() == 1
    assert mail.outbox == []


def test_reminders_query_count_does_not_grow_with_activities(world, django_assert_max_num_queries) -> None:
    for n in range(10):
        _activity(world.a1 if n % 2 else world.b1, 5 + n)
    # One candidate query, then one savepoint+insert per notification; no per-activity reads of owner or contact.
    with django_assert_max_num_queries(1 + 10 * 3):
        assert reminders_send(now=NOW) == 10


def test_digest_sends_one_email_per_user_per_day(world) -> None:
    today = timezone.localdate(NOW)
    start = timezone.make_aware(dt.datetime.combine(today, dt.time(12)))
    Activity.objects.create(subject="Lunch with Ann", owner=world.a1, due_at=start)
    Activity.objects.create(subject="Forgotten call", owner=world.a1, due_at=start - dt.timedelta(days=2))
    Activity.objects.create(subject="Next week", owner=world.a1, due_at=start + dt.timedelta(days=7))
    TouchPrompt.objects.create(contact=world.a1_shared, owner=world.a1, cadence_days=14)
    Activity.objects.create(subject="Not for digest", owner=world.a2, due_at=start)
    world.a2.daily_digest = False
    world.a2.save(update_fields=["daily_digest"])

    assert digest_send(today=today) == 1
    assert digest_send(today=today) == 0

    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == [world.a1.email]
    assert "Lunch with Ann" in message.body and "Forgotten call" in message.body
    assert "Next week" not in message.body
    assert str(world.a1_shared) in message.body
    assert Notification.objects.filter(user=world.a1, dedupe_key=f"digest:{today.isoformat()}").count() == 1
    assert digest_send(today=today + dt.timedelta(days=1)) == 1


def test_digest_skips_users_with_nothing_to_do(world) -> None:
    assert digest_send() == 0
    assert mail.outbox == []


def test_a_digest_the_mail_server_refused_is_sent_by_the_retry_and_only_once(world, monkeypatch) -> None:
    import smtplib

    from activities.services import calendar
    from activities.services.calendar import DigestNotSent

    today = timezone.localdate(NOW)
    due = timezone.make_aware(dt.datetime.combine(today, dt.time(12)))
    Activity.objects.create(subject="Lunch with Ann", owner=world.a1, due_at=due)
    Activity.objects.create(subject="Call Bea", owner=world.b1, due_at=due)
    real_send = calendar._send

    def refuse_a1(*, user, **kwargs):  # type: ignore[no-untyped-def]
        if user == world.a1:
            raise smtplib.SMTPServerDisconnected("Connection unexpectedly closed")
        real_send(user=user, **kwargs)

    monkeypatch.setattr(calendar, "_send", refuse_a1)
    with pytest.raises(DigestNotSent) as failure:
        digest_send(today=today)
    assert failure.value.sent == 1 and len(failure.value.failed) == 1
    assert [m.to for m in mail.outbox] == [[world.b1.email]]
    # a1's claim was rolled back with the failed send: the retry sends a1's digest, and b1's is not sent twice.
    assert not Notification.objects.filter(user=world.a1, dedupe_key=f"digest:{today.isoformat()}").exists()
    monkeypatch.setattr(calendar, "_send", real_send)
    assert digest_send(today=today) == 1
    assert sorted(m.to[0] for m in mail.outbox) == sorted([world.a1.email, world.b1.email])
