"""COPY helpers for the set-based writes of listening: rows go into a session-local staging table in one COPY, then
one ``INSERT … SELECT … ON CONFLICT DO NOTHING RETURNING`` stores them. No per-row ORM work, no per-row SQL."""

from __future__ import annotations

import datetime as dt
import io
import json
from collections.abc import Iterable, Sequence
from typing import Any

from django.db import connection

from crm.sql import array_literal

NULL = "\\N"


def copy_text(value: str | None) -> str:
    """``value`` for COPY's text format: backslash, tab, newline and CR escaped; NUL, which PostgreSQL text cannot
    hold, dropped."""
    if value is None:
        return NULL
    # Most text has none of these characters: a C-level ``in`` scan per character class is several times faster
    # than ``str.translate`` with a mapping (which looks every character up in a dict).
    if "\\" in value:
        value = value.replace("\\", "\\\\")
    if "\t" in value:
        value = value.replace("\t", "\\t")
    if "\n" in value:
        value = value.replace("\n", "\\n")
    if "\r" in value:
        value = value.replace("\r", "\\r")
    if "\x00" in value:
        value = value.replace("\x00", "")
    return value


def copy_value(value: Any) -> str:
    if value is None:
        return NULL
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, int | float):
        return repr(value) if isinstance(value, float) else str(value)
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, dict | list) and not isinstance(value, str):
        return copy_text(json.dumps(value, ensure_ascii=False, separators=(",", ":")))
    return copy_text(str(value))


def copy_array(items: Iterable[str]) -> str:
    """A PostgreSQL array literal of strings (``{"a","b"}``), escaped for COPY."""
    return copy_text(array_literal(str(item) for item in items))


def copy_rows(table: str, ddl: str, columns: Sequence[str], rows: Iterable[Sequence[str]]) -> None:
    """Empty the session's staging ``table`` (created by ``ddl`` on first use) and COPY ``rows`` into it. Each row
    is a sequence of values already passed through :func:`copy_value` / :func:`copy_text` / :func:`copy_array`."""
    buf = io.StringIO()
    write = buf.write
    for row in rows:
        write("\t".join(row))
        write("\n")
    buf.seek(0)
    with connection.cursor() as cursor:
        cursor.execute(ddl)
        # Emptied before each use, not after: a rolled-back batch empties it anyway (ON COMMIT DELETE ROWS does the
        # rest), and a second batch in one transaction must not see the first one's rows.
        cursor.execute(f"TRUNCATE {table}")
        cursor.cursor.copy_expert(f"COPY {table} ({', '.join(columns)}) FROM STDIN", buf)
