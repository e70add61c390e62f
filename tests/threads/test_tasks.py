"""Sync tasks: one sync per account at a time, provider trouble becomes account state and bounded back-off."""

from __future__ import annotations

import datetime as dt
import threading

import pytest
from django.db import connection
from django.utils import timezone

from accounts.models import Notification
from tests.threads.factories import ChannelAccountFactory
from threads import connectors
from threads.connectors import ChannelAuthError, ChannelRateLimited, ChannelUnavailable
from threads.models import ChannelAccount, RawEvent
from threads.tasks import (
    LOCK_NAMESPACE,
    backoff_seconds,
    channel_sync,
    channels_poll_due_task,
    raw_events_sweep_task,
)

pytestmark = pytest.mark.django_db

BEHAVIOUR: dict[str, object] = {}


def fake_poll(account: ChannelAccount) -> None:
    outcome = BEHAVIOUR.get(account.name)
    if isinstance(outcome, Exception):
        raise outcome


@pytest.fixture
def account(world, monkeypatch):
    # Scripted outcomes instead of the real Twitter poller, for these tests only (restored afterwards).
    monkeypatch.setitem(connectors._POLLERS, "twitter", fake_poll)
    BEHAVIOUR.clear()
    return ChannelAccountFactory(kind="twitter", name="acct", owner=world.a1, team=world.team_a)


def test_success_resets_failures_and_schedules_the_next_poll(account) -> None:
    ChannelAccount.objects.filter(pk=account.pk).update(status="failing", consecutive_failures=3, last_error="x")
    assert channel_sync(account.pk) == "ok"
    account.refresh_from_db()
    assert (account.status, account.consecutive_failures, account.last_error) == ("active", 0, "")
    assert account.next_sync_at > timezone.now() and account.last_success_at is not None


def test_outage_backs_off_exponentially_up_to_a_ceiling(account, settings) -> None:
    settings.THREADS_SYNC_BACKOFF_MAX = 600
    BEHAVIOUR["acct"] = ChannelUnavailable("connection refused")
    waits = []
    for _ in range(6):
        ChannelAccount.objects.filter(pk=account.pk).update(next_sync_at=None)
        before = timezone.now()
        assert channel_sync(account.pk) == "failing"
        account.refresh_from_db()
        waits.append(round((account.next_sync_at - before).total_seconds() / 60))
    assert waits == [1, 2, 4, 8, 10, 10]
    assert account.status == "failing" and "connection refused" in account.last_error
    assert backoff_seconds(50) == 600


def test_refused_credentials_stop_polling_and_tell_the_owner(account, world) -> None:
    BEHAVIOUR["acct"] = ChannelAuthError("401 Unauthorized: reconnect the account")
    assert channel_sync(account.pk) == "needs_reauth"
    account.refresh_from_db()
    assert account.status == "needs_reauth"
    assert Notification.objects.filter(user=world.a1, message__contains="needs re-authentication").count() == 1
    assert channel_sync(account.pk) == "skipped"  # polling stopped
    assert channels_poll_due_task() == 0


def test_rate_limit_waits_for_the_reset_but_never_beyond_the_visibility_timeout(account, settings, monkeypatch) -> None:
    from threads.tasks import channel_sync_task

    queued: list[tuple[tuple, dict, int]] = []
    monkeypatch.setattr(
        channel_sync_task, "apply_async", lambda args, kwargs, countdown: queued.append((args, kwargs, countdown))
    )
    BEHAVIOUR["acct"] = ChannelRateLimited("429", retry_after=10**6, endpoint="mentions")
    assert channel_sync(account.pk) == "rate_limited"
    account.refresh_from_db()
    wait = (account.next_sync_at - timezone.now()).total_seconds()
    assert wait <= settings.CELERY_VISIBILITY_TIMEOUT - 60 and "mentions" in account.throttle
    # Re-queued for the reset time (bounded), never slept on.
    assert queued == [((account.pk,), {"due_check": True}, settings.CELERY_VISIBILITY_TIMEOUT - 60)]
    # The re-queued sync leaves an account alone that is not due (beat polled it meanwhile) ...
    BEHAVIOUR["acct"] = None
    assert channel_sync(account.pk, due_check=True) == "not-due"
    # ... and polls it when it is; success clears the throttle.
    account.next_sync_at = timezone.now()
    account.save(update_fields=["next_sync_at"])
    assert channel_sync(account.pk, due_check=True) == "ok"
    account.refresh_from_db()
    assert account.throttle == {}


def test_one_sync_per_account_at_a_time(account) -> None:
    held = threading.Event()
    release = threading.Event()

    def hold_lock() -> None:
        from django.db import connections

        conn = connections.create_connection("default")
        with conn.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_lock(%s, %s)", [LOCK_NAMESPACE, account.pk])
            held.set()
            release.wait(10)
            cursor.execute("SELECT pg_advisory_unlock(%s, %s)", [LOCK_NAMESPACE, account.pk])
        conn.close()

    t = threading.Thread(target=hold_lock)
    t.start()
    try:
        assert held.wait(10)
        assert channel_sync(account.pk) == "locked"
    finally:
        release.set()
        t.join()
    assert channel_sync(account.pk) == "ok"
    assert connection.is_usable()


def test_poll_due_skips_paused_backing_off_and_webhook_accounts(account, world) -> None:
    ChannelAccountFactory(kind="twitter", status="paused", owner=world.a1)
    ChannelAccountFactory(kind="webhook", slug="hook", owner=world.a1)
    ChannelAccountFactory(kind="twitter", owner=world.a1, next_sync_at=timezone.now() + dt.timedelta(hours=1))
    assert channels_poll_due_task() == 1


def test_sweep_requeues_accounts_with_stale_pending_events(account) -> None:
    RawEvent.objects.create(channel_account=account, provider_event_id="old", event_type="x", payload=b"{}",
                            received_at=timezone.now() - dt.timedelta(minutes=10))  # fmt: skip
    RawEvent.objects.create(channel_account=account, provider_event_id="new", event_type="x", payload=b"{}")
    assert raw_events_sweep_task() == 1


def test_one_limited_endpoint_does_not_delay_the_others(account, settings, monkeypatch) -> None:
    from threads.tasks import channel_sync_task

    queued: list[object] = []
    monkeypatch.setattr(channel_sync_task, "apply_async", lambda *a, **k: queued.append(a))
    dms = ChannelRateLimited("429 dm", retry_after=900, endpoint="dm_events")
    BEHAVIOUR["acct"] = ChannelRateLimited(
        "429 search", retry_after=300, endpoint="timeline", partial=True, others=[dms]
    )
    assert channel_sync(account.pk) == "partly_rate_limited"
    account.refresh_from_db()
    assert set(account.throttle) == {"timeline", "dm_events"}
    wait = (account.next_sync_at - timezone.now()).total_seconds()
    assert settings.THREADS_POLL_INTERVAL - 5 <= wait <= settings.THREADS_POLL_INTERVAL + 1
    assert account.status == "active" and queued == []
