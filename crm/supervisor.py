"""`make run`: prepare the database, then run web, Celery worker and Celery beat as one supervised group.

    python -m crm.supervisor            # what `make run` calls
    python -m crm.supervisor --prepare  # migrate, collect static, seed, admin; then exit (used by docker-compose)

With DATABASE_URL / REDIS_URL unset it starts the embedded PostgreSQL and Redis (crm.embedded) once and hands
their URLs to every child through the environment, so the three processes share one cluster and one broker.
Ctrl-C (or SIGTERM) stops the children, then the embedded services this run started. If any child dies, the
others are stopped too: a half-running CRM (web up, no worker) would silently stop ingesting.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

from crm import embedded

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
BIN = Path(PYTHON).parent


class StartupError(RuntimeError):
    """Something the operator must fix before Threadline can start; the message is one actionable line."""


def _describe_database(url: str) -> str:
    parsed = urlparse(url)
    host = parsed.hostname or "local socket"
    port = f":{parsed.port}" if parsed.port else ""
    return f"{host}{port}{parsed.path}"


def check_database(url: str) -> None:
    import dj_database_url
    import psycopg2

    config = dj_database_url.parse(url)
    try:
        psycopg2.connect(
            dbname=config["NAME"],
            user=config["USER"] or None,
            password=config["PASSWORD"] or None,
            host=config["HOST"] or None,
            port=config["PORT"] or None,
            connect_timeout=5,
        ).close()
    except psycopg2.Error as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
        raise StartupError(f"cannot reach PostgreSQL at {_describe_database(url)} (DATABASE_URL): {reason}") from None


def check_redis(url: str) -> None:
    import redis

    client_url = "unix://" + url.removeprefix("redis+socket://") if url.startswith("redis+socket://") else url
    try:
        redis.Redis.from_url(client_url, socket_connect_timeout=5, socket_timeout=5).ping()
    except redis.RedisError as exc:
        raise StartupError(f"cannot reach Redis at {url} (REDIS_URL): {exc}") from None


def manage(*args: str) -> None:
    result = subprocess.run([PYTHON, str(ROOT / "manage.py"), *args], cwd=ROOT)
    if result.returncode != 0:
        raise StartupError(f"`manage.py {' '.join(args)}` failed with exit code {result.returncode}")


def prepare(*, seed: bool) -> None:
    manage("migrate", "--noinput")
    manage("collectstatic", "--noinput", "--verbosity", "0")
    manage("ensure_admin")
    if seed:
        manage("seed_demo")


def child_commands() -> dict[str, list[str]]:
    bind = os.environ.get("BIND", "127.0.0.1:8000")
    return {
        "web": [
            str(BIN / "gunicorn"), "crm.wsgi:application", "--bind", bind,
            "--workers", os.environ.get("WEB_CONCURRENCY", "2"), "--access-logfile", "-", "--timeout", "60",
        ],
        "worker": [
            str(BIN / "celery"), "-A", "crm", "worker", "--loglevel", "INFO",
            "--concurrency", os.environ.get("CELERY_CONCURRENCY", "2"),
        ],
        "beat": [str(BIN / "celery"), "-A", "crm", "beat", "--loglevel", "INFO"],
    }  # fmt: skip


class Group:
    """The children, each in its own session so that Ctrl-C reaches only us and we stop them in order."""

    def __init__(self) -> None:
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.stopping = False

    def start(self, commands: dict[str, list[str]]) -> None:
        for name, cmd in commands.items():
            self.procs[name] = subprocess.Popen(cmd, cwd=ROOT, start_new_session=True)
            print(f"threadline: started {name} (pid {self.procs[name].pid})", flush=True)

    def first_exited(self) -> tuple[str, int] | None:
        for name, proc in self.procs.items():
            code = proc.poll()
            if code is not None:
                return name, code
        return None

    def stop(self, timeout: float = 20.0) -> None:
        self.stopping = True
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for name, proc in self.procs.items():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                print(f"threadline: {name} did not stop in {timeout:.0f}s; killing it", flush=True)
                proc.kill()
                proc.wait()


def run(*, only_prepare: bool) -> int:
    started: list[str] = []
    group = Group()

    def on_signal(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    # Set both explicitly: a process started in the background inherits SIGINT as "ignored".
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        started = embedded.ensure_environment()
        check_database(os.environ["DATABASE_URL"])
        check_redis(os.environ["REDIS_URL"])
        prepare(seed=os.environ.get("SEED_DEMO", "true").lower() not in {"0", "false", "no"})
        if only_prepare:
            return 0
        group.start(child_commands())
        print(f"threadline: open http://{os.environ.get('BIND', '127.0.0.1:8000')}/  (Ctrl-C stops everything)")
        while True:
            exited = group.first_exited()
            if exited is not None:
                name, code = exited
                print(f"threadline: {name} exited with code {code}; stopping the others", file=sys.stderr)
                return 1
            time.sleep(0.5)
    except KeyboardInterrupt:
        print("\nthreadline: stopping web, worker and beat ...", flush=True)
        return 0
    except (StartupError, embedded.EmbeddedServiceError) as exc:
        print(f"threadline: {exc}", file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not abandon the clean shutdown
        group.stop()
        embedded.stop(started)


if __name__ == "__main__":
    sys.exit(run(only_prepare="--prepare" in sys.argv[1:]))
