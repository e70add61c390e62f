"""Start-up paths as an operator meets them: deploy checks, a bad DATABASE_URL, the embedded services."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import psycopg2
import redis
from cryptography.fernet import Fernet

ROOT = Path(__file__).resolve().parents[2]


def _env(**overrides: str) -> dict[str, str]:
    # DJANGO_ALLOW_ASYNC_UNSAFE is set for Playwright by tests/browser; a deployment must never have it.
    dropped = {"DJANGO_SETTINGS_MODULE", "THREADLINE_EMBEDDED", "DJANGO_ALLOW_ASYNC_UNSAFE"}
    env = {k: v for k, v in os.environ.items() if k not in dropped}
    env.update(overrides)
    return env


def test_check_deploy_has_zero_warnings_with_production_settings() -> None:
    env = _env(
        DEBUG="false",
        THREADLINE_TESTING="false",
        SECRET_KEY="x" * 20 + uuid.uuid4().hex + uuid.uuid4().hex,
        ALLOWED_HOSTS="crm.example.com",
        CSRF_TRUSTED_ORIGINS="https://crm.example.com",
        FIELD_ENCRYPTION_KEY=Fernet.generate_key().decode(),
    )
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues (0 silenced)." in result.stdout


def test_production_without_secret_key_refuses_to_start() -> None:
    env = _env(DEBUG="false", THREADLINE_TESTING="false", SECRET_KEY="")
    result = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode != 0
    assert "SECRET_KEY is not set" in result.stderr


def test_unreachable_database_stops_run_with_one_clear_line() -> None:
    env = _env(DATABASE_URL="postgres://threadline@127.0.0.1:1/threadline")
    result = subprocess.run(
        [sys.executable, "-m", "crm.supervisor"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("threadline: cannot reach PostgreSQL at 127.0.0.1:1/threadline (DATABASE_URL)")
    assert "Traceback" not in result.stdout + result.stderr


def test_embedded_postgres_and_redis_survive_a_restart() -> None:
    # Not pytest's tmp_path: that is private to root, and pgserver runs postgres as an unprivileged user.
    var = Path("/tmp") / f"threadline-embedded-{uuid.uuid4().hex[:8]}"
    var.mkdir(mode=0o755)
    env = _env(THREADLINE_VAR_DIR=str(var))
    env.pop("DATABASE_URL", None)
    env.pop("REDIS_URL", None)

    def embedded(command: str) -> None:
        subprocess.run([sys.executable, "-m", "crm.embedded", command], cwd=ROOT, env=env, check=True, timeout=120)

    def pg() -> psycopg2.extensions.connection:
        return psycopg2.connect(dbname="threadline", user="postgres", host=str(var / "postgres"))

    def rd() -> redis.Redis:
        return redis.Redis(unix_socket_path=str(var / "redis" / "redis.sock"))

    try:
        embedded("start")
        with pg() as conn, conn.cursor() as cur:
            cur.execute("CREATE TABLE kept (v text); INSERT INTO kept VALUES ('still here')")
        rd().set("kept", "still here")
        embedded("stop")
        assert not (var / "redis" / "redis.sock").exists() or not _pings(rd())
        embedded("start")
        with pg() as conn, conn.cursor() as cur:
            cur.execute("SELECT v FROM kept")
            assert cur.fetchone() == ("still here",)
        assert rd().get("kept") == b"still here"
    finally:
        subprocess.run([sys.executable, "-m", "crm.embedded", "stop"], cwd=ROOT, env=env, timeout=60)
        shutil.rmtree(var, ignore_errors=True)


def _pings(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
