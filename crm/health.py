"""Liveness of the database, Redis and the Celery worker, for /healthz and the admin."""

from __future__ import annotations

import time
from typing import Any

import redis
from django.conf import settings
from django.db import connection

HEARTBEAT_KEY = "threadline:worker-heartbeat"


def _redis() -> redis.Redis:
    return redis.Redis.from_url(settings.REDIS_CLIENT_URL, socket_connect_timeout=2, socket_timeout=2)


def heartbeat_record(now: float | None = None) -> None:
    _redis().set(HEARTBEAT_KEY, str(now if now is not None else time.time()), ex=settings.HEARTBEAT_STALE_AFTER * 10)


def check_database() -> dict[str, Any]:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
        return {"ok": True}
    except Exception as exc:
        return {"ok": False, "error": exc.__class__.__name__ + ": " + str(exc).strip().splitlines()[0][:200]}


def check_redis() -> dict[str, Any]:
    try:
        _redis().ping()
        return {"ok": True}
    except Exception as exc:
        return {"ok": False, "error": exc.__class__.__name__ + ": " + str(exc)[:200]}


def check_worker() -> dict[str, Any]:
    try:
        raw = _redis().get(HEARTBEAT_KEY)
    except Exception as exc:
        return {"ok": False, "error": "cannot read heartbeat: " + exc.__class__.__name__}
    if raw is None:
        return {"ok": False, "error": "no heartbeat yet: is the Celery worker (and beat) running?"}
    age = time.time() - float(raw)
    ok = age <= settings.HEARTBEAT_STALE_AFTER
    result: dict[str, Any] = {"ok": ok, "last_heartbeat_age_s": round(age, 1)}
    if not ok:
        result["error"] = f"last heartbeat {age:.0f}s ago (stale after {settings.HEARTBEAT_STALE_AFTER}s)"
    return result


def health_report() -> tuple[bool, dict[str, Any]]:
    checks = {"database": check_database(), "redis": check_redis(), "worker": check_worker()}
    healthy = all(item["ok"] for item in checks.values())
    return healthy, {"status": "ok" if healthy else "unavailable", "checks": checks}
