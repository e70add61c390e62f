"""Pipeline faults on the Twitter/X channel: replaying stored raw tweets and DMs re-normalizes them and stores nothing
twice, and a real Celery worker killed with SIGKILL (mid-batch, and mid-poll between pages) and restarted stores
every tweet exactly once, with the cursor where the stored tweets end.

The SIGKILL tests reuse the harness of test_worker_kill.py (worker start, kill, redelivery of the unacknowledged
task as the broker does after its visibility timeout). The mid-poll worker serves X from ``FakeX`` through
``responses``, installed in the worker process before Celery forks its pool, so the worker's tweepy calls never
leave the machine.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from io import StringIO
from pathlib import Path

import pytest
import responses
from django.conf import settings
from django.core.management import call_command

from contacts.models import ContactIdentity
from tests.conftest import require_service
from tests.threads import twitter_fixtures as fx
from tests.threads.factories import ChannelAccountFactory
from tests.threads.test_worker_kill import QUEUE, ROOT, _database_url, _kill, _restore_unacked, _start_worker, _wait
from threads import connectors
from threads.connectors import NormalizeError, RawEventIn, twitter
from threads.models import ChannelAccount, Message, RawEvent, Thread
from threads.services import raw_events_process, raw_events_replay, raw_events_store
from threads.tasks import channel_sync

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _real_connector(monkeypatch: pytest.MonkeyPatch) -> None:
    """test_tasks.py registers a stand-in "twitter" poller when it is imported; these tests need the real one."""
    monkeypatch.setitem(connectors._POLLERS, "twitter", twitter.poll_account)


@pytest.fixture
def x_account(world) -> ChannelAccount:  # type: ignore[no-untyped-def]
    return ChannelAccountFactory(
        kind="twitter", name="Our X", owner=world.ma, team=world.team_a, address=f"@{fx.OUR_HANDLE}",
        config={"user_id": fx.OUR_ID, "username": fx.OUR_HANDLE}, credentials=json.dumps({"access_token": "tok"}),
    )  # fmt: skip


@pytest.fixture
def x_api() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield rsps


def _first_sync(rsps: responses.RequestsMock) -> None:
    for url, pages in (
        (fx.MENTIONS_URL, [fx.MENTIONS_PAGE_1, fx.MENTIONS_PAGE_2]),
        (fx.TIMELINE_URL, [fx.TIMELINE_PAGE]),
        (fx.DM_EVENTS_URL, [fx.DM_PAGE_1, fx.DM_PAGE_2]),
    ):
        for body in (*pages, fx.EMPTY):
            rsps.get(url, json=body)


def _counts(account: ChannelAccount) -> tuple[int, int, int, int]:
    return (
        Message.objects.filter(channel_account=account).count(), Thread.objects.count(),
        RawEvent.objects.filter(channel_account=account).count(), ContactIdentity.objects.count(),
    )  # fmt: skip


def test_replaying_stored_tweets_and_dms_stores_nothing_twice(world, x_account, x_api) -> None:
    _first_sync(x_api)
    assert channel_sync(x_account.pk) == "ok"
    raw_events_store(
        account=x_account,
        events=[RawEventIn(f"delete:{fx.T1}", "twitter.tweet_delete", json.dumps(fx.DELETE_T1).encode())],
    )
    assert raw_events_process(account=x_account).deleted == 1
    before = _counts(x_account)
    assert before[0] == 7  # T1 T2 T3, our reply, three DMs; the broadcast is ignored

    result = raw_events_replay(account=x_account)
    assert result.created == [] and result.duplicates == 8 and result.dead == 0  # 7 messages and the deletion

    out = StringIO()
    call_command("replay_events", "--account", str(x_account.pk), stdout=out)
    assert "Created: 0. Duplicates: 8. Dead: 0." in out.getvalue()
    assert _counts(x_account) == before
    assert Message.objects.get(external_id=fx.T1).deleted_at is not None  # a replay does not undelete
    statuses = dict(RawEvent.objects.filter(channel_account=x_account).values_list("provider_event_id", "status"))
    assert statuses[fx.OUR_BROADCAST] == "ignored" and statuses[f"delete:{fx.T1}"] == "processed"


def test_tweets_dead_lettered_by_a_broken_normalizer_land_once_after_the_fix(world, x_account, x_api, monkeypatch):  # type: ignore[no-untyped-def]
    def broken(event: RawEvent, account: ChannelAccount) -> list:
        raise NormalizeError("tweet normalizer broken by a bad deploy")

    monkeypatch.setitem(connectors._NORMALIZERS, "twitter.tweet", broken)
    _first_sync(x_api)
    assert channel_sync(x_account.pk) == "ok"
    x_account.refresh_from_db()
    # The cursor moves on (dead letters wait for a fix, they do not block the channel); only the DMs landed.
    assert x_account.cursor["mentions"] == {"since_id": fx.T3}
    assert set(Message.objects.values_list("external_id", flat=True)) == {fx.D1, fx.D2, fx.D3}
    assert RawEvent.objects.filter(status="dead").count() == 5

    monkeypatch.setitem(connectors._NORMALIZERS, "twitter.tweet", twitter.normalize_tweet_event)
    out = StringIO()
    call_command("replay_events", "--account", str(x_account.pk), "--status", "dead", stdout=out)
    assert "Created: 4. Duplicates: 0. Dead: 0." in out.getvalue()  # T1 T2 T3 and our reply; the broadcast is ignored
    call_command("replay_events", "--account", str(x_account.pk), stdout=out)
    assert out.getvalue().rstrip().endswith("Created: 0. Duplicates: 7. Dead: 0.")
    assert Message.objects.count() == 7
    assert Message.objects.values("external_id").distinct().count() == 7


# --- SIGKILL ----------------------------------------------------------------------------------------------------

EVENTS = 4000


def _redis_or_fail(redis_client) -> None:  # type: ignore[no-untyped-def]
    try:
        redis_client.ping()
    except Exception as exc:  # pragma: no cover - the fixture already checked
        require_service("Redis", str(exc))


def _tweet_events(fake: fx.FakeX) -> list[RawEventIn]:
    events = []
    for i in range(len(fake.ids)):
        doc = {"data": fake.tweet(i), "includes": {"users": [fake.author(i, fake.authors)]}}
        events.append(RawEventIn(fake.ids[i], "twitter.tweet", json.dumps(doc, ensure_ascii=False).encode()))
    return events


def test_sigkill_mid_batch_then_restart_stores_every_tweet_once(world, x_account, redis_client, tmp_path) -> None:
    from crm.celery import app
    from threads.tasks import raw_events_process_task

    _redis_or_fail(redis_client)
    redis_client.delete(QUEUE)
    fake = fx.FakeX(total=EVENTS, authors=50)
    ContactIdentity.objects.create(contact=world.a1_shared, kind="twitter", value="fan_0", normalized="900000",
                                   handle="fan_0")  # fmt: skip
    raw_events_store(account=x_account, events=_tweet_events(fake))
    log = tmp_path / "worker.log"
    worker = _start_worker(log)
    try:
        raw_events_process_task.apply_async(args=[x_account.pk], queue=QUEUE)
        _wait(lambda: Message.objects.filter(channel_account=x_account).count() >= 1000, 90, "the first batch", log)
        _kill(worker)
        stored_at_kill = Message.objects.filter(channel_account=x_account).count()
        assert stored_at_kill < EVENTS, "the worker finished before it was killed; make the run longer"
        assert RawEvent.objects.filter(channel_account=x_account, status=RawEvent.Status.PENDING).exists()

        assert _restore_unacked(app) >= 1
        worker = _start_worker(log)
        _wait(
            lambda: not RawEvent.objects.filter(channel_account=x_account, status=RawEvent.Status.PENDING).exists(),
            120, "the restarted worker to finish the redelivered task", log,
        )  # fmt: skip
    finally:
        _kill(worker)
        redis_client.delete(QUEUE)
    messages = Message.objects.filter(channel_account=x_account)
    assert messages.count() == EVENTS
    assert messages.values("external_id").distinct().count() == EVENTS
    assert RawEvent.objects.filter(channel_account=x_account, status=RawEvent.Status.PROCESSED).count() == EVENTS
    # One identity per fan, however the batches were cut; the known fan's tweets are in her contact's thread.
    assert ContactIdentity.objects.filter(kind="twitter").count() == 50
    assert messages.filter(author_address="900000").exclude(contact=world.a1_shared).count() == 0


_FAKE_X_WORKER = """
import sys
import responses
from tests.threads.twitter_fixtures import FakeX

mock = responses.RequestsMock(assert_all_requests_are_fired=False)
mock.start()  # patched before Celery forks its pool: every child's tweepy calls hit the fake
FakeX(total=int(sys.argv[1]), delay=float(sys.argv[2])).install(mock)
from celery.__main__ import main

sys.argv = ["celery", "-A", "crm", "worker", "-Q", sys.argv[3], "-c", "1", "-P", "prefork", "--without-heartbeat",
            "--without-mingle", "--without-gossip", "-l", "info"]
main()
"""


def _start_fake_x_worker(log: Path, total: int, delay: float) -> subprocess.Popen[bytes]:
    env = {**os.environ, "DATABASE_URL": _database_url(), "REDIS_URL": settings.REDIS_URL, "THREADLINE_TESTING": "1"}
    env.pop("PYTEST_CURRENT_TEST", None)
    return subprocess.Popen(
        [sys.executable, "-c", _FAKE_X_WORKER, str(total), str(delay), QUEUE],
        cwd=ROOT, env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip


MENTIONS = 3000


def test_sigkill_mid_poll_then_restart_resumes_the_cursor_and_stores_every_tweet_once(
    world, x_account, redis_client, tmp_path
) -> None:  # fmt: skip
    from crm.celery import app
    from threads.tasks import channel_sync_task

    _redis_or_fail(redis_client)
    redis_client.delete(QUEUE)
    newest = fx.FakeX(total=MENTIONS).ids[-1]
    config = {**x_account.config, "max_pages": 1000}  # one poll reads every page
    ChannelAccount.objects.filter(pk=x_account.pk).update(config=config)
    log = tmp_path / "worker.log"
    worker = _start_fake_x_worker(log, MENTIONS, delay=0.2)
    try:
        channel_sync_task.apply_async(args=[x_account.pk], queue=QUEUE)
        _wait(lambda: Message.objects.filter(channel_account=x_account).count() >= 500, 90, "the first pages", log)
        _kill(worker)
        stored_at_kill = Message.objects.filter(channel_account=x_account).count()
        assert stored_at_kill < MENTIONS, "the poll finished before it was killed; make the run longer"
        cursor = ChannelAccount.objects.get(pk=x_account.pk).cursor["mentions"]
        # Killed mid-window: the stored pages are recorded as such, and since_id has not jumped past the rest.
        assert "since_id" not in cursor and cursor["pending"]["newest_id"] == newest
        assert int(cursor["pending"]["until_id"]) <= int(newest)

        assert _restore_unacked(app) >= 1
        worker = _start_fake_x_worker(log, MENTIONS, delay=0.0)
        _wait(
            lambda: ChannelAccount.objects.get(pk=x_account.pk).cursor.get("mentions") == {"since_id": newest}
            and ChannelAccount.objects.get(pk=x_account.pk).last_success_at is not None,
            120, "the restarted worker to finish the redelivered poll", log,
        )  # fmt: skip
    finally:
        _kill(worker)
        redis_client.delete(QUEUE)
    messages = Message.objects.filter(channel_account=x_account)
    assert messages.count() == MENTIONS
    assert messages.values("external_id").distinct().count() == MENTIONS
    assert RawEvent.objects.filter(channel_account=x_account).count() == MENTIONS
    assert not RawEvent.objects.exclude(status=RawEvent.Status.PROCESSED).exists()
    assert ContactIdentity.objects.filter(kind="twitter").count() == 50
