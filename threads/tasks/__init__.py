"""Celery tasks of threads: thin and idempotent; the work is in threads.services.

- ``channels_poll_due_task`` (beat, every minute) enqueues a sync for each active account whose back-off allows.
- ``channel_sync_task`` polls one account under a per-account Postgres advisory lock, so two workers never sync
  the same account at once (the lock dies with the connection if a worker is killed). Provider trouble becomes
  account state: refused credentials → needs_reauth (polling stops), outages and rate limits → back-off with a
  ceiling.
- ``raw_events_process_task`` ingests pending raw events (webhooks, retried dead letters); the sweep re-enqueues
  any a lost task left behind.
- ``message_deliver_task`` sends one queued outbound message.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging

from celery import shared_task
from django.conf import settings
from django.urls import reverse
from django.utils import timezone

from accounts.models import Notification
from accounts.services import notification_create
from crm.celery import bounded_countdown
from crm.locks import advisory_lock
from threads.connectors import ChannelAuthError, ChannelRateLimited, ChannelUnavailable, ConnectorError, poller_for
from threads.models import ChannelAccount, RawEvent
from threads.services.channel_accounts import channel_account_throttle

log = logging.getLogger(__name__)

LOCK_NAMESPACE = 7301  # first key of the two-key advisory lock: "threads channel account"


def account_lock(account_id: int) -> contextlib.AbstractContextManager[bool]:
    """Session-level advisory lock on one channel account; yields False when another worker holds it."""
    return advisory_lock(LOCK_NAMESPACE, account_id)


def backoff_seconds(failures: int) -> int:
    """Exponential back-off with a ceiling: 1, 2, 4 … minutes, never more than SYNC_BACKOFF_MAX."""
    return int(min(settings.THREADS_SYNC_BACKOFF_MAX, 60 * 2 ** max(0, failures - 1)))


def channel_sync(account_id: int, *, due_check: bool = False) -> str:
    """Poll one account once. Returns what happened, for logs and tests. With ``due_check`` (a re-queued sync
    after a rate limit), an account that beat already polled meanwhile is left alone until it is due again."""
    with account_lock(account_id) as got:
        if not got:
            return "locked"
        account = ChannelAccount.objects.filter(pk=account_id).first()
        if account is None or account.status in (ChannelAccount.Status.PAUSED, ChannelAccount.Status.NEEDS_REAUTH):
            return "skipped"
        if due_check and account.next_sync_at and account.next_sync_at > timezone.now() + dt.timedelta(seconds=5):
            return "not-due"
        poll = poller_for(account.kind)
        if poll is None:
            return "no-poller"
        now = timezone.now()
        ChannelAccount.objects.filter(pk=account.pk).update(last_sync_at=now)
        try:
            poll(account)
        except ChannelAuthError as exc:
            ChannelAccount.objects.filter(pk=account.pk).update(
                status=ChannelAccount.Status.NEEDS_REAUTH, last_error=str(exc)[:4000], next_sync_at=None
            )
            _notify_owner(account, f"{account.name} needs re-authentication: {exc}")
            return "needs_reauth"
        except ChannelRateLimited as exc:
            wait = bounded_countdown(exc.retry_after)
            # Merged into the stored state (not read-modify-write): a listening search may record its own limit on
            # the same account meanwhile.
            for limited in [*exc.others, exc]:
                channel_account_throttle(
                    account_id=account.pk, endpoint=limited.endpoint,
                    until=now + dt.timedelta(seconds=bounded_countdown(limited.retry_after)),
                )  # fmt: skip
            if exc.partial:
                # The other endpoints were read: poll again on the normal interval (the poller skips the throttled
                # endpoint until its time), so a slow DM limit does not delay mentions.
                ChannelAccount.objects.filter(pk=account.pk).update(
                    status=ChannelAccount.Status.ACTIVE, consecutive_failures=0,
                    last_success_at=timezone.now(), last_error=str(exc)[:4000],
                    next_sync_at=now + dt.timedelta(seconds=settings.THREADS_POLL_INTERVAL),
                )  # fmt: skip
                return "partly_rate_limited"
            ChannelAccount.objects.filter(pk=account.pk).update(
                next_sync_at=now + dt.timedelta(seconds=wait), last_error=str(exc)[:4000]
            )
            # Re-queue for the moment the provider named (never sleep in a worker); the countdown is bounded below
            # the broker's visibility timeout so Redis does not redeliver it early.
            channel_sync_task.apply_async((account.pk,), {"due_check": True}, countdown=wait)
            return "rate_limited"
        except (ChannelUnavailable, ConnectorError, OSError) as exc:
            failures = account.consecutive_failures + 1
            ChannelAccount.objects.filter(pk=account.pk).update(
                status=ChannelAccount.Status.FAILING, consecutive_failures=failures, last_error=str(exc)[:4000],
                next_sync_at=now + dt.timedelta(seconds=backoff_seconds(failures)),
            )  # fmt: skip
            log.warning("sync of channel account %s failed (%s in a row): %s", account.pk, failures, exc)
            return "failing"
        ChannelAccount.objects.filter(pk=account.pk).update(
            status=ChannelAccount.Status.ACTIVE, consecutive_failures=0, last_error="", last_success_at=timezone.now(),
            throttle={},
            next_sync_at=timezone.now() + dt.timedelta(seconds=settings.THREADS_POLL_INTERVAL),
        )  # fmt: skip
        return "ok"


def _notify_owner(account: ChannelAccount, message: str) -> None:
    if account.owner is None:
        return
    notification_create(
        user=account.owner, message=message, level=Notification.Level.ALERT,
        url=reverse("threads:account_detail", args=[account.pk]),
        dedupe_key=f"channel-reauth:{account.pk}:{timezone.now():%Y-%m-%d}",
    )  # fmt: skip


@shared_task(name="threads.tasks.channel_sync_task")
def channel_sync_task(account_id: int, due_check: bool = False) -> str:
    return channel_sync(account_id, due_check=due_check)


@shared_task(name="threads.tasks.channels_poll_due_task")
def channels_poll_due_task() -> int:
    now = timezone.now()
    due = ChannelAccount.objects.filter(status__in=[ChannelAccount.Status.ACTIVE, ChannelAccount.Status.FAILING])
    # Only kinds that poll: webhook sources and SMS numbers are pushed to us.
    pollable = [kind for kind in ChannelAccount.Kind.values if poller_for(kind) is not None]
    due = due.exclude(next_sync_at__gt=now).filter(kind__in=pollable)
    ids = list(due.values_list("pk", flat=True))
    for account_id in ids:
        channel_sync_task.delay(account_id)
    return len(ids)


@shared_task(name="threads.tasks.raw_events_process_task")
def raw_events_process_task(account_id: int) -> int:
    from threads.services.pipeline import raw_events_drain

    account = ChannelAccount.objects.filter(pk=account_id).first()
    if account is None:
        return 0
    return len(raw_events_drain(account=account).created)


@shared_task(name="threads.tasks.raw_events_sweep_task")
def raw_events_sweep_task() -> int:
    """Pending raw events older than a few minutes lost their task (a worker died before it ran): re-enqueue."""
    cutoff = timezone.now() - dt.timedelta(minutes=2)
    ids = list(
        RawEvent.objects.filter(status=RawEvent.Status.PENDING, received_at__lt=cutoff)
        .values_list("channel_account_id", flat=True)
        .distinct()
    )
    for account_id in ids:
        raw_events_process_task.delay(account_id)
    return len(ids)


@shared_task(name="threads.tasks.message_deliver_task", bind=True, max_retries=8)
def message_deliver_task(self, message_id: int) -> str:  # type: ignore[no-untyped-def]
    from threads.services.send import message_deliver, message_deliver_failed

    try:
        return message_deliver(message_id=message_id)
    except ChannelRateLimited as exc:
        raise self.retry(exc=exc, countdown=bounded_countdown(exc.retry_after)) from exc
    except (ChannelUnavailable, ConnectorError, OSError) as exc:
        if self.request.retries >= self.max_retries:
            message_deliver_failed(message_id=message_id, error=str(exc))
            return "failed"
        raise self.retry(exc=exc, countdown=bounded_countdown(backoff_seconds(self.request.retries + 1))) from exc
