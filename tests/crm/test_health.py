"""/healthz reports database, Redis and the worker heartbeat; 503 when any is down."""

from __future__ import annotations

import time

import pytest
from django.db import connection
from django.db.backends.postgresql.base import DatabaseWrapper

from crm import health

pytestmark = pytest.mark.django_db


def test_healthy_when_heartbeat_is_fresh(client) -> None:
    health.heartbeat_record()
    response = client.get("/healthz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert {name: check["ok"] for name, check in body["checks"].items()} == {
        "database": True, "redis": True, "worker": True,
    }  # fmt: skip


def test_503_without_any_heartbeat(client) -> None:
    response = client.get("/healthz")
    assert response.status_code == 503
    assert "no heartbeat yet" in response.json()["checks"]["worker"]["error"]


def test_503_when_heartbeat_is_stale(client, settings) -> None:
    health.heartbeat_record(now=time.time() - settings.HEARTBEAT_STALE_AFTER - 5)
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["checks"]["worker"]["ok"] is False


def test_503_when_redis_is_down(client, settings) -> None:
    health.heartbeat_record()
    settings.REDIS_CLIENT_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    response = client.get("/healthz")
    assert response.status_code == 503
    checks = response.json()["checks"]
    assert checks["redis"]["ok"] is False and checks["database"]["ok"] is True


def test_503_when_database_is_down(client, monkeypatch) -> None:
    health.heartbeat_record()
    unreachable = DatabaseWrapper({**connection.settings_dict, "HOST": "127.0.0.1", "PORT": "1"}, alias="down")
    monkeypatch.setattr(health, "connection", unreachable)
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["checks"]["database"]["ok"] is False
    assert response.json()["status"] == "unavailable"
