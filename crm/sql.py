"""Small helpers for the set-based SQL the ingest paths write by hand."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

_ARRAY_ESCAPES = str.maketrans({"\\": "\\\\", '"': '\\"', "\x00": ""})  # text cannot hold NUL


def array_literal(values: Iterable[str | int | dt.datetime | None]) -> str:
    """One PostgreSQL array literal (``{"a","b",NULL}``) for a whole list, to pass as a single parameter with a
    cast (``%s::varchar[]``).

    psycopg2 sends a Python list as ``ARRAY[e1, e2, …]``: the server then parses and coerces one constant per
    element, which for a 5,000-row batch cost more than the lookup it fed. A literal is one constant.
    """
    parts = []
    append = parts.append
    escapes = _ARRAY_ESCAPES
    for value in values:
        kind = type(value)  # exact type checks: this runs once per row of a 5,000-row batch, per column
        if kind is str:
            append('"' + value.translate(escapes) + '"')  # type: ignore[union-attr]
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
            append('"' + str(value).translate(escapes) + '"')
    return "{" + ",".join(parts) + "}"


def int_array(values: Iterable[int]) -> str:
    """:func:`array_literal` for a list of integers (ids), the common case."""
    return "{" + ",".join(map(str, values)) + "}"
