"""crm.sql's literals and COPY rows survive a round trip through PostgreSQL, whatever the text holds."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from django.db import connection

from crm.sql import NULL, array_literal, copy_rows, copy_text, copy_value, int_array

pytestmark = pytest.mark.django_db

TRICKY = ["plain", 'quote " inside', "back\\slash", "tab\tnew\nline\rcr", "{braces},comma", "NULL", "", "ünï ☃"]


def test_array_literals_round_trip() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT %s::text[], %s::bigint[]", [array_literal([*TRICKY, None]), int_array([3, 1, 2])])
        texts, ints = cursor.fetchone()
    assert texts == [*TRICKY, None] and ints == [3, 1, 2]


def test_nul_bytes_are_dropped_since_postgres_text_cannot_hold_them() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT %s::text[]", [array_literal(["a\x00b"])])
        assert cursor.fetchone()[0] == ["ab"]
    assert copy_text("a\x00b") == "ab"


def test_copy_rows_round_trip() -> None:
    at = dt.datetime(2026, 11, 25, 9, 30, tzinfo=dt.UTC)
    ddl = "CREATE TEMP TABLE IF NOT EXISTS crm_sql_test (n integer, t text, at timestamptz, tags text[], j jsonb)"
    rows = [
        [str(n), copy_text(text), copy_value(at), copy_text(array_literal([text])), copy_value({"v": text})]
        for n, text in enumerate(TRICKY)
    ]
    rows.append([str(len(TRICKY)), NULL, NULL, NULL, NULL])
    copy_rows("crm_sql_test", ddl, ["n", "t", "at", "tags", "j"], rows)
    copy_rows("crm_sql_test", ddl, ["n", "t", "at", "tags", "j"], rows)  # emptied before each use
    with connection.cursor() as cursor:
        cursor.execute("SELECT t, at, tags, j FROM crm_sql_test ORDER BY n")
        stored = [(t, at, tags, json.loads(j) if j else j) for t, at, tags, j in cursor.fetchall()]
    assert stored == [(text, at, [text], {"v": text}) for text in TRICKY] + [(None, None, None, None)]
