"""Contacts' own timeline sources, registered at import time (imported from ContactsConfig.ready()).

- ``audit``: who changed which fields of a contact, computed from consecutive django-simple-history rows;
- ``identity``: addresses and handles added to or removed from a contact;
- ``company_audit``: the company's own changes, on a company timeline only.

Each source is one query per page (plus at most one per related model named in a page of changes), however long
the history is.
"""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import datetime
from typing import Any

from django.contrib.auth import get_user_model
from django.db import connection
from django.db.models import Model
from django.urls import reverse

from accounts.models import Team
from contacts.models import Company, Contact, ContactIdentity
from contacts.registry import TimelineEntry, TimelineQuery, TimelineSource, register_timeline_source
from contacts.selectors.timeline import keyset_before_q, keyset_before_sql

# Bookkeeping columns that change on every save and say nothing about the person.
_NOT_A_CHANGE = ["history_id", "history_date", "history_type", "history_user_id", "history_change_reason",
                 "updated_at", "created_at"]  # fmt: skip
_VALUE_MAX = 80

# One row per history entry, with the previous history row of the same object fetched by a LATERAL index lookup:
# the diff needs it, and a window function would have to read the object's whole history first. Saves that
# changed nothing are filtered in SQL, so LIMIT counts only real changes and pages stay full.
_AUDIT_SQL = """
SELECT h.history_id, h.history_date, h.history_type, h.id,
       coalesce(nullif(trim(u.first_name || ' ' || u.last_name), ''), u.username, '') AS actor,
       to_jsonb(h) - %(skip)s::text[] AS cur, prev.row - %(skip)s::text[] AS prev
FROM {table} h
LEFT JOIN {user_table} u ON u.id = h.history_user_id
LEFT JOIN LATERAL (
    SELECT to_jsonb(p) AS row FROM {table} p
    WHERE p.id = h.id AND (p.history_date, p.history_id) < (h.history_date, h.history_id)
    ORDER BY p.history_date DESC, p.history_id DESC LIMIT 1
) prev ON TRUE
WHERE h.id = ANY(%(ids)s) AND {before}
  AND (h.history_type <> '~' OR prev.row IS NULL
       OR (to_jsonb(h) - %(skip)s::text[]) IS DISTINCT FROM (prev.row - %(skip)s::text[]))
ORDER BY h.history_date DESC, h.history_id DESC
LIMIT %(limit)s
"""

_RELATED: dict[str, type[Model]] = {"company_id": Company, "owner_id": get_user_model(), "team_id": Team}


def _audit_rows(model: type[Model], ids: list[int], query: TimelineQuery, source: str) -> list[dict[str, Any]]:
    if not ids:
        return []
    before_sql, before_params = keyset_before_sql(
        query.before, source=source, at_col="h.history_date", id_col="h.history_id"
    )
    # keyset_before_sql emits positional placeholders; rename them for the dict-style query.
    params: dict[str, Any] = {"skip": _NOT_A_CHANGE, "ids": ids, "limit": query.limit}
    for index, value in enumerate(before_params):
        before_sql = before_sql.replace("%s", f"%(before{index})s", 1)
        params[f"before{index}"] = value
    sql = _AUDIT_SQL.format(
        table=model.history.model._meta.db_table,  # type: ignore[attr-defined]
        user_table=get_user_model()._meta.db_table,
        before=before_sql,
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        columns = [c.name for c in cursor.description]
        rows = [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]
    for row in rows:
        row["cur"], row["prev"] = _json(row["cur"]), _json(row["prev"])
    return rows


def _field_label(model: type[Model], attname: str) -> str:
    for field in model._meta.concrete_fields:
        if field.attname == attname:
            return str(field.verbose_name)
    return attname.replace("_", " ")


def _display(model: type[Model], attname: str, value: Any, names: dict[str, dict[int, str]]) -> str:
    if value in (None, "", [], {}):
        return "—"
    if attname in _RELATED:
        return names.get(attname, {}).get(value, f"#{value}")
    for field in model._meta.concrete_fields:
        if field.attname == attname and field.choices:
            return str(dict(field.flatchoices).get(value, value))
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        value = ", ".join(str(v) for v in value)
    elif isinstance(value, dict):
        value = ", ".join(f"{k}={v}" for k, v in value.items())
    text = str(value)
    return text if len(text) <= _VALUE_MAX else text[: _VALUE_MAX - 1] + "…"


def _json(value: Any) -> dict[str, Any]:
    # Django's psycopg setup hands jsonb back as text from raw cursors.
    return json.loads(value) if isinstance(value, str | bytes) else (value or {})


def _changes(row: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    cur, prev = row["cur"], row["prev"]
    return {key: (prev.get(key), value) for key, value in cur.items() if key != "id" and prev.get(key) != value}


def _related_names(diffs: list[dict[str, tuple[Any, Any]]]) -> dict[str, dict[int, str]]:
    """Names of the companies, owners and teams a page of changes mentions: one query per model, if any."""
    wanted: dict[str, set[int]] = defaultdict(set)
    for diff in diffs:
        for attname, pair in diff.items():
            if attname in _RELATED:
                wanted[attname].update(v for v in pair if isinstance(v, int))
    return {
        attname: {obj.pk: str(obj) for obj in _RELATED[attname]._default_manager.filter(pk__in=ids)}
        for attname, ids in wanted.items()
    }


def _audit_entries(model: type[Model], rows: list[dict[str, Any]], source: str) -> list[TimelineEntry]:
    diffs = [_changes(row) if row["history_type"] == "~" else {} for row in rows]
    names = _related_names(diffs)
    noun = model._meta.verbose_name
    entries = []
    for row, diff in zip(rows, diffs, strict=True):
        actor = row["actor"] or ""
        at: datetime = row["history_date"]
        if row["history_type"] == "+":
            title, kind, body = f"{noun.capitalize()} created", "created", ""
        elif row["history_type"] == "-":
            title, kind, body = f"{noun.capitalize()} deleted", "deleted", ""
        else:
            labels = [_field_label(model, attname) for attname in diff]
            title, kind = f"Changed {', '.join(labels)}", "change"
            body = "; ".join(
                f"{_field_label(model, a)}: {_display(model, a, old, names)} → {_display(model, a, new, names)}"
                for a, (old, new) in diff.items()
            )
        extra: dict[str, Any] = {"object_id": row["id"], "fields": sorted(diff)}
        url = ""
        if model is Contact:
            cur = row["cur"]
            name = f"{cur.get('first_name', '')} {cur.get('last_name', '')}".strip() or f"Contact #{row['id']}"
            extra["contact_id"], extra["contact_name"] = row["id"], name
            url = reverse("contacts:detail", args=[row["id"]])
        entries.append(
            TimelineEntry(
                at=at,
                source=source,
                id=row["history_id"],
                kind=kind,
                title=title,
                body=body,
                url=url,
                actor=actor,
                extra=extra,
            )
        )
    return entries


def fetch_contact_audit(query: TimelineQuery) -> list[TimelineEntry]:
    return _audit_entries(Contact, _audit_rows(Contact, query.contact_ids, query, "audit"), "audit")


def fetch_company_audit(query: TimelineQuery) -> list[TimelineEntry]:
    if query.company is None:
        return []
    rows = _audit_rows(Company, [query.company.pk], query, "company_audit")
    return _audit_entries(Company, rows, "company_audit")


def fetch_identity_changes(query: TimelineQuery) -> list[TimelineEntry]:
    if not query.contact_ids:
        return []
    history = ContactIdentity.history.model  # type: ignore[attr-defined]
    rows = (
        history.objects.filter(contact_id__in=query.contact_ids, history_type__in=["+", "-"])
        .filter(keyset_before_q(query.before, source="identity", at_field="history_date", id_field="history_id"))
        .select_related("history_user")
        .order_by("-history_date", "-history_id")[: query.limit]
    )
    kinds = dict(ContactIdentity.Kind.choices)
    entries = []
    for row in rows:
        added = row.history_type == "+"
        kind_label = kinds.get(row.kind, row.kind)
        entries.append(
            TimelineEntry(
                at=row.history_date,
                source="identity",
                id=row.history_id,
                kind="identity_added" if added else "identity_removed",
                title=f"{kind_label} {'added' if added else 'removed'}: {row.value}",
                actor=str(row.history_user) if row.history_user_id else "",
                url=reverse("contacts:detail", args=[row.contact_id]),
                extra={"contact_id": row.contact_id, "identity_kind": row.kind, "value": row.value},
            )
        )
    return entries


register_timeline_source(TimelineSource(key="audit", label="Changes", fetch=fetch_contact_audit))
register_timeline_source(TimelineSource(key="company_audit", label="Company changes", fetch=fetch_company_audit))
register_timeline_source(TimelineSource(key="identity", label="Addresses and handles", fetch=fetch_identity_changes))
