"""Container health checks (docker-compose): `python -m crm.healthcheck web|worker|beat`. Exit 0 when healthy.

- web: GET /healthz over HTTP from inside the container (database, Redis and worker heartbeat).
- worker: the worker answers a ping on the broker.
- beat and worker together: the heartbeat that beat schedules and a worker runs is fresh.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request


def _django() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "crm.settings")
    import django

    django.setup()


def web() -> bool:
    _django()
    from django.conf import settings

    host = next((h for h in settings.ALLOWED_HOSTS if h not in {"*"} and not h.startswith(".")), "localhost")
    request = urllib.request.Request(
        f"http://127.0.0.1:{os.environ.get('PORT', '8000')}/healthz",
        headers={"Host": host, "X-Forwarded-Proto": "https"},
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310 (fixed loopback URL)
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def worker() -> bool:
    _django()
    import socket

    from crm.celery import app

    replies = app.control.ping(destination=[f"celery@{socket.gethostname()}"], timeout=5)
    return bool(replies)


def beat() -> bool:
    _django()
    from crm.health import check_worker

    return bool(check_worker()["ok"])


if __name__ == "__main__":
    checks = {"web": web, "worker": worker, "beat": beat}
    which = sys.argv[1] if len(sys.argv) > 1 else ""
    if which not in checks:
        print("usage: python -m crm.healthcheck web|worker|beat", file=sys.stderr)
        sys.exit(2)
    sys.exit(0 if checks[which]() else 1)
