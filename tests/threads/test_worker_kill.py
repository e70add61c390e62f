"""A real Celery worker killed with SIGKILL mid-batch, then restarted: every message is stored exactly once.

The worker is a separate process on the real broker (Redis) and the test database. Tasks are acknowledged late
and rejected on worker loss, so the killed task's message stays unacknowledged in Redis and is handed out again
once the visibility timeout passes; the restarted worker finishes the job. Rather than wait an hour, the test
does what a worker's Redis transport does when that timeout has passed: it restores the unacknowledged message.
Raw events committed before the kill are never lost, batches that did not commit left nothing behind, and
ON CONFLICT makes the redone work insert nothing twice.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

import pytest
from django.conf import settings
from django.db import connection

from contacts.models import ContactIdentity
from tests.conftest import require_service
from tests.threads.factories import ChannelAccountFactory
from threads.connectors import RawEventIn
from threads.models import ChannelAccount, Message, RawEvent
from threads.services import raw_events_store

pytestmark = pytest.mark.django_db(transaction=True)

QUEUE = "threads-kill-test"
EVENTS = 6000
ROOT = Path(__file__).resolve().parents[2]


def _database_url() -> str:
    s = connection.settings_dict
    host = s.get("HOST") or "localhost"
    host = quote(host, safe="") if host.startswith("/") else host
    port = f":{s['PORT']}" if s.get("PORT") else ""
    password = f":{quote(s['PASSWORD'], safe='')}" if s.get("PASSWORD") else ""
    return f"postgres://{quote(s.get('USER') or 'postgres', safe='')}{password}@{host}{port}/{s['NAME']}"


def _start_worker(log: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "DATABASE_URL": _database_url(),
        "REDIS_URL": settings.REDIS_URL,
        "THREADLINE_TESTING": "1",
    }
    env.pop("PYTEST_CURRENT_TEST", None)
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "crm", "worker", "-Q", QUEUE, "-c", "1", "-P", "prefork",
         "--without-heartbeat", "--without-mingle", "--without-gossip", "-l", "info"],
        cwd=ROOT, env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip


def _kill(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)


def _wait(predicate, timeout: float, what: str, log: Path) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    pytest.fail(f"timed out waiting for {what}; worker log:\n{log.read_text(errors='replace')[-4000:]}")


def _restore_unacked(app) -> int:  # type: ignore[no-untyped-def]
    """Put unacknowledged messages back on their queue, as kombu does once the visibility timeout has passed."""
    with app.connection_for_write(transport_options={"visibility_timeout": 0}) as conn:
        qos = conn.default_channel.qos
        before = conn.default_channel.client.zcard(qos.unacked_index_key)
        qos.restore_visible(num=1000)
        return before


def _payload(i: int) -> bytes:
    return json.dumps(
        {
            "event_id": f"evt-{i}",
            "channel": "im",
            "direction": "inbound",
            "sent_at": "2026-11-20T10:00:00Z",
            "from": {"kind": "email", "address": f"person{i % 50}@example.com", "name": f"Person {i % 50}"},
            "text": f"Message number {i}",
        }
    ).encode()


def test_sigkill_mid_batch_then_restart_stores_every_message_once(world, redis_client, tmp_path) -> None:
    from crm.celery import app
    from threads.tasks import raw_events_process_task

    try:
        redis_client.ping()
    except Exception as exc:  # pragma: no cover - the fixture already checked
        require_service("Redis", str(exc))
    redis_client.delete(QUEUE)
    account = ChannelAccountFactory(
        kind=ChannelAccount.Kind.WEBHOOK, slug="kill-test", owner=world.a1, team=world.team_a
    )
    for n in range(50):
        contact = world.a1_shared if n == 0 else None
        if contact is not None:
            ContactIdentity.objects.create(contact=contact, kind="email", value=f"person{n}@example.com",
                                           normalized=f"person{n}@example.com")  # fmt: skip
    raw_events_store(
        account=account,
        events=[RawEventIn(f"evt-{i}", "webhook", _payload(i)) for i in range(EVENTS)],
    )
    log = tmp_path / "worker.log"
    worker = _start_worker(log)
    try:
        raw_events_process_task.apply_async(args=[account.pk], queue=QUEUE)
        # Kill once the first batches have committed and more are still pending: mid-run, mid-batch.
        _wait(lambda: Message.objects.filter(channel_account=account).count() >= 1000, 90, "the first batch", log)
        _kill(worker)
        stored_at_kill = Message.objects.filter(channel_account=account).count()
        assert stored_at_kill < EVENTS, "the worker finished before it was killed; make the run longer"
        assert RawEvent.objects.filter(channel_account=account, status=RawEvent.Status.PENDING).exists()

        assert _restore_unacked(app) >= 1  # the killed task was never acknowledged
        worker = _start_worker(log)
        _wait(
            lambda: not RawEvent.objects.filter(channel_account=account, status=RawEvent.Status.PENDING).exists(),
            120, "the restarted worker to finish the redelivered task", log,
        )  # fmt: skip
    finally:
        _kill(worker)
        redis_client.delete(QUEUE)
    messages = Message.objects.filter(channel_account=account)
    assert messages.count() == EVENTS
    assert messages.values("external_id").distinct().count() == EVENTS
    assert RawEvent.objects.filter(channel_account=account, status=RawEvent.Status.PROCESSED).count() == EVENTS
    # Leads were created once per stranger, however the batches were cut.
    assert ContactIdentity.objects.filter(normalized__startswith="person").count() == 50
