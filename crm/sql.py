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
    for value in values:
        if value is None:
            append("NULL")
        elif isinstance(value, bool):
            append("t" if value else "f")
        elif isinstance(value, int):
            append(str(value))
        elif isinstance(value, dt.datetime):
            append('"' + value.isoformat() + '"')
        else:
            append('"' + value.translate(_ARRAY_ESCAPES) + '"')
    return "{" + ",".join(parts) + "}"
