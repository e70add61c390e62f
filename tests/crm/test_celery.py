"""Celery configuration: safe delays, late acks, and a real worker writing the heartbeat through real Redis."""

from __future__ import annotations

import time

import pytest
from celery.contrib.testing.worker import start_worker

from crm import health
from crm.celery import _fail_on_unsafe_delays, app, bounded_countdown
from crm.checks import unsafe_delay_errors
from crm.tasks import heartbeat


def test_configuration_is_safe_for_redis(settings) -> None:
    assert app.conf.task_acks_late is True
    assert app.conf.task_reject_on_worker_lost is True
    assert app.conf.task_serializer == "json" and app.conf.accept_content == ["json"]
    assert app.conf.task_soft_time_limit < app.conf.task_time_limit
    assert app.conf.broker_transport_options["visibility_timeout"] == settings.CELERY_VISIBILITY_TIMEOUT
    assert unsafe_delay_errors() == []


def test_startup_refuses_countdown_longer_than_visibility_timeout(settings) -> None:
    settings.CELERY_VISIBILITY_TIMEOUT = 120
    settings.SYNC_RETRY_COUNTDOWN = 300
    errors = unsafe_delay_errors()
    assert any("SYNC_RETRY_COUNTDOWN" in e.msg for e in errors)
    with pytest.raises(SystemExit, match="refusing to start Celery"):
        _fail_on_unsafe_delays()


def test_bounded_countdown_stays_below_visibility_timeout(settings) -> None:
    settings.CELERY_VISIBILITY_TIMEOUT = 3600
    assert bounded_countdown(900) == 900
    assert bounded_countdown(10_000) == 3540
    assert bounded_countdown(-5) == 1


@pytest.mark.django_db(transaction=True)
def test_real_worker_writes_heartbeat(redis_client) -> None:
    redis_client.delete(health.HEARTBEAT_KEY)
    with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=10):
        heartbeat.delay()  # through the real Redis broker, consumed by a real worker
        deadline = time.monotonic() + 20
        while not redis_client.get(health.HEARTBEAT_KEY) and time.monotonic() < deadline:
            time.sleep(0.1)
    assert health.check_worker()["ok"] is True
