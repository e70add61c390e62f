"""Small helpers for the set-based SQL the ingest paths write by hand: array literals, and COPY into a
session-local staging table (then one ``INSERT … SELECT … ON CONFLICT DO NOTHING RETURNING`` stores the rows).

They run once per value of 5,000-row batches, so they avoid per-character work in Python: an ``in`` test and
``str.replace`` scan in C, where ``str.translate`` with a mapping looks every character up in a dict.
"""

from __future__ import annotations

import datetime as dt
import io
import json
from collections.abc import Iterable, Sequence
from typing import Any

from django.db import connection

NULL = "\\N"  # COPY text format's NULL

# deadlock_detected, serialization_failure: the database gave up on this transaction (or savepoint) because of
# another one; the same work, tried again, normally succeeds.
RETRYABLE_PGCODES = frozenset({"40P01", "40001"})


def is_retryable(exc: BaseException) -> bool:
    """Whether a Django database error is one that trying again resolves."""
    return getattr(exc.__cause__, "pgcode", None) in RETRYABLE_PGCODES


# (character, replacement) pairs; the backslash first, so the escapes added after it are not escaped again. NUL is
# dropped: PostgreSQL text cannot hold it.
_ARRAY_ESCAPES = (("\\", "\\\\"), ('"', '\\"'), ("\x00", ""))
_COPY_ESCAPES = (("\\", "\\\\"), ("\t", "\\t"), ("\n", "\\n"), ("\r", "\\r"), ("\x00", ""))


def _escaped(value: str, escapes: tuple[tuple[str, str], ...]) -> str:
    for char, replacement in escapes:
        if char in value:  # most values hold none of them: a scan in C, no copy
            value = value.replace(char, replacement)
    return value


def array_text(value: str) -> str:
    """``value`` as one quoted element of an array literal."""
    return '"' + _escaped(value, _ARRAY_ESCAPES) + '"'


def array_literal(values: Iterable[str | int | dt.datetime | None]) -> str:
    """One PostgreSQL array literal (``{"a","b",NULL}``) for a whole list, to pass as a single parameter with a
    cast (``%s::varchar[]``).

    psycopg2 sends a Python list as ``ARRAY[e1, e2, …]``: the server then parses and coerces one constant per
    element, which for a 5,000-row batch cost more than the lookup it fed. A literal is one constant.
    """
    parts = []
    append = parts.append
    for value in values:
        kind = type(value)  # exact type checks: this runs once per row of a 5,000-row batch, per column
        if kind is str:
            append(array_text(value))  # type: ignore[arg-type]
        elif kind is int:
            append(str(value))
        elif value is None:
            append("NULL")
        elif kind is bool:
            append("t" if value else "f")
        elif isinstance(value, dt.datetime):
            append('"' + value.isoformat() + '"')
        elif isinstance(value, int):
            append(str(int(value)))
        else:
            append(array_text(str(value)))
    return "{" + ",".join(parts) + "}"


def int_array(values: Iterable[int]) -> str:
    """:func:`array_literal` for a list of integers (ids), the common case."""
    return "{" + ",".join(map(str, values)) + "}"


def copy_text(value: str | None) -> str:
    """``value`` for COPY's text format: backslash, tab, newline and CR escaped, NUL dropped."""
    if value is None:
        return NULL
    return _escaped(value, _COPY_ESCAPES)


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
        # Emptied before each use, not after: a rolled-back batch empties it anyway, and a second batch in one
        # transaction must not see the first one's rows.
        cursor.execute(f"TRUNCATE {table}")
        cursor.cursor.copy_expert(f"COPY {table} ({', '.join(columns)}) FROM STDIN", buf)
