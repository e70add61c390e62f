"""PostgreSQL advisory locks: one worker at a time on one thing (a channel account's sync, a source's fetch),
across every machine that shares the database. No home-made lock table, and nothing to clean up: a session-level
lock dies with its connection, so a killed worker never leaves the thing locked."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from django.db import connection


@contextlib.contextmanager
def advisory_lock(namespace: int, key: int) -> Iterator[bool]:
    """Try the session-level lock (namespace, key); yields False at once when another session holds it."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s, %s)", [namespace, key])
        got = cursor.fetchone()[0]
    try:
        yield got
    finally:
        if got:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s, %s)", [namespace, key])
