"""contacts' own merge handlers (identities, fields and tags, duplicate candidates, earlier merge records) and the
"merge" timeline source. Imported once from ``ContactsConfig.ready()``; registering is idempotent (keyed).

Every ``move`` returns a JSON record of exactly what it changed; every ``restore`` first checks that nothing it
would put back changed since, and returns conflict messages instead of overwriting later work.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import EmptyResultSet
from django.db import IntegrityError, connection, transaction
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone

from contacts.models import Contact, ContactIdentity, DuplicateCandidate, MergeRecord
from contacts.registry import (
    MergeHandler,
    TimelineEntry,
    TimelineQuery,
    TimelineSource,
    register_merge_handler,
    register_timeline_source,
)
from contacts.services.merge import json_value, python_value, restore_row_values, snapshot_row

# --- Identities ---------------------------------------------------------------------------------------------


def _identity_label(kind: str, value: str) -> str:
    return f"{ContactIdentity.Kind(kind).label} {value}" if kind in ContactIdentity.Kind.values else value


def move_identities(primary: Contact, duplicate: Contact) -> tuple[dict[str, Any], list[str]]:
    """Re-point every identity. UNIQUE(kind, normalized) ignores the owner, so a move cannot clash today; should a
    constraint ever refuse one, it is reported and kept in the record (and re-created on unmerge), never dropped.
    """
    has_primary_kind = set(
        ContactIdentity.objects.filter(contact=primary, is_primary=True).values_list("kind", flat=True)
    )
    moved: list[dict[str, Any]] = []
    demoted: list[int] = []
    not_moved: list[dict[str, Any]] = []
    conflicts: list[str] = []
    for identity in ContactIdentity.objects.filter(contact=duplicate).order_by("id").select_for_update():
        # One primary address per kind: the survivor's stays primary.
        demote = identity.is_primary and identity.kind in has_primary_kind
        try:
            with transaction.atomic():
                # update(), not save(): updated_at stays as it was, so unmerge restores the row exactly.
                ContactIdentity.objects.filter(pk=identity.pk).update(
                    contact=primary, **({"is_primary": False} if demote else {})
                )
        except IntegrityError as exc:
            not_moved.append(snapshot_row(identity))
            conflicts.append(
                f"{_identity_label(identity.kind, identity.value)} could not move ({exc.__class__.__name__}); "
                "it is kept in the merge record and comes back on unmerge."
            )
            continue
        moved.append({"id": identity.pk, "kind": identity.kind, "normalized": identity.normalized})
        if demote:
            demoted.append(identity.pk)
    return {"moved": moved, "demoted": demoted, "not_moved": not_moved}, conflicts


def restore_identities(primary: Contact, duplicate: Contact, record: dict[str, Any]) -> list[str]:
    conflicts: list[str] = []
    moved = record.get("moved", [])
    current = {i.pk: i for i in ContactIdentity.objects.filter(pk__in=[m["id"] for m in moved]).select_for_update()}
    for m in moved:
        label = _identity_label(m["kind"], m["normalized"])
        row = current.get(m["id"])
        if row is None:
            conflicts.append(f"{label} was deleted after the merge.")
        elif row.contact_id != primary.pk:
            conflicts.append(f"{label} now belongs to contact #{row.contact_id}.")
        elif (row.kind, row.normalized) != (m["kind"], m["normalized"]):
            conflicts.append(f"{label} was edited after the merge (now {row.value}).")
    for data in record.get("not_moved", []):
        if ContactIdentity.objects.filter(kind=data["kind"], normalized=data["normalized"]).exists():
            conflicts.append(f"{_identity_label(data['kind'], data['value'])} now belongs to another contact.")
    if conflicts:
        return conflicts
    ContactIdentity.objects.filter(pk__in=[m["id"] for m in moved]).update(contact=duplicate)
    ContactIdentity.objects.filter(pk__in=record.get("demoted", [])).update(is_primary=True)
    for data in record.get("not_moved", []):
        values = restore_row_values(ContactIdentity, data)
        values["contact_id"] = duplicate.pk
        ContactIdentity.objects.bulk_create([ContactIdentity(**values)])
    return []


# --- Fields and tags ----------------------------------------------------------------------------------------

# Filled one by one when empty on the survivor.
SCALAR_FIELDS = ("title", "company_id", "tier", "birthday", "time_zone", "language", "notes")
# Filled only as a whole, so a street from one contact never sits next to a city from the other.
FIELD_GROUPS = (("street", "city", "region", "postal_code", "country"), ("latitude", "longitude"))
_FIELDS = {f.attname: f for f in Contact._meta.concrete_fields}


def _empty(value: Any) -> bool:
    return value is None or value == "" or value == [] or value == {}


def _field_label(attname: str) -> str:
    return str(_FIELDS[attname].verbose_name).capitalize()


def planned_field_changes(primary: Contact, duplicate: Contact) -> dict[str, Any]:
    """The survivor's new values by attname: its empty fields filled from the duplicate, the tags united, the later
    last touch and the stricter do-not-contact kept. Nothing the survivor already has is overwritten.
    """
    changes: dict[str, Any] = {}
    for attname in SCALAR_FIELDS:
        if _empty(getattr(primary, attname)) and not _empty(getattr(duplicate, attname)):
            changes[attname] = getattr(duplicate, attname)
    for group in FIELD_GROUPS:
        if all(_empty(getattr(primary, f)) for f in group) and any(not _empty(getattr(duplicate, f)) for f in group):
            changes.update({attname: getattr(duplicate, attname) for attname in group})
    custom = {**duplicate.custom_fields, **primary.custom_fields}
    if custom != primary.custom_fields:
        changes["custom_fields"] = custom
    tags = list(primary.tags) + [t for t in duplicate.tags if t not in primary.tags]
    if tags != list(primary.tags):
        changes["tags"] = tags
    if duplicate.do_not_contact and not primary.do_not_contact:
        changes["do_not_contact"] = True  # the person asked not to be contacted: the stricter wish wins
    if duplicate.last_touch_at and (primary.last_touch_at is None or duplicate.last_touch_at > primary.last_touch_at):
        changes["last_touch_at"] = duplicate.last_touch_at
    return changes


def move_fields(primary: Contact, duplicate: Contact) -> tuple[dict[str, Any], list[str]]:
    """Apply :func:`planned_field_changes`, recording each changed field's before and after value."""
    changes: dict[str, dict[str, Any]] = {}
    for attname, value in planned_field_changes(primary, duplicate).items():
        changes[attname] = {"before": json_value(getattr(primary, attname)), "after": json_value(value)}
        setattr(primary, attname, value)
    record: dict[str, Any] = {"fields": changes}
    if changes:
        record["updated_at_before"] = json_value(primary.updated_at)
        primary.save(update_fields=[*changes, "updated_at"])
        record["updated_at_after"] = json_value(primary.updated_at)
    return record, []


def restore_fields(primary: Contact, duplicate: Contact, record: dict[str, Any]) -> list[str]:
    changes: dict[str, dict[str, Any]] = record.get("fields", {})
    if not changes:
        return []
    primary.refresh_from_db()
    conflicts = []
    for attname, change in changes.items():
        now = json_value(getattr(primary, attname))
        # last_touch_at moves with new activity, not with edits: keep a later touch, it is not a conflict.
        if attname != "last_touch_at" and now != change["after"]:
            conflicts.append(
                f"{_field_label(attname)} was changed after the merge (now {now!r}; the merge set {change['after']!r})."
            )
    if conflicts:
        return conflicts
    untouched_since = json_value(primary.updated_at) == record.get("updated_at_after")
    for attname, change in changes.items():
        if attname == "last_touch_at" and json_value(primary.last_touch_at) != change["after"]:
            continue
        setattr(primary, attname, python_value(_FIELDS[attname], change["before"]))
    primary.save(update_fields=[*changes, "updated_at"])
    if untouched_since:
        # Nothing else edited the row since the merge: it is exactly as before, including when it last changed.
        before = python_value(_FIELDS["updated_at"], record["updated_at_before"])
        Contact.objects.filter(pk=primary.pk).update(updated_at=before)
        primary.updated_at = before
    return []


# --- Duplicate candidates -----------------------------------------------------------------------------------


def move_candidates(primary: Contact, duplicate: Contact) -> tuple[dict[str, Any], list[str]]:
    """Mark the merged pair, re-point the duplicate's other pairs to the survivor (or drop them when the survivor
    already has that pair). The merged pair itself goes with the duplicate's row; its snapshot comes back on unmerge.
    """
    a, b = sorted([primary.pk, duplicate.pk])
    DuplicateCandidate.objects.filter(contact_a_id=a, contact_b_id=b).update(
        status=DuplicateCandidate.Status.MERGED, reviewed_at=timezone.now()
    )
    rows = list(DuplicateCandidate.objects.filter(Q(contact_a=duplicate) | Q(contact_b=duplicate)).select_for_update())
    partners_of_primary = set()
    for pa, pb in DuplicateCandidate.objects.filter(Q(contact_a=primary) | Q(contact_b=primary)).values_list(
        "contact_a_id", "contact_b_id"
    ):
        partners_of_primary.add(pb if pa == primary.pk else pa)
    record: dict[str, Any] = {"pair": None, "repointed": [], "dropped": []}
    for row in rows:
        partner = row.contact_b_id if row.contact_a_id == duplicate.pk else row.contact_a_id
        if partner == primary.pk:
            record["pair"] = snapshot_row(row)
        elif partner in partners_of_primary:
            record["dropped"].append(snapshot_row(row))
        else:
            new_a, new_b = sorted([primary.pk, partner])
            DuplicateCandidate.objects.filter(pk=row.pk).update(contact_a_id=new_a, contact_b_id=new_b)
            record["repointed"].append({"id": row.pk, "a": row.contact_a_id, "b": row.contact_b_id})
    return record, []


def restore_candidates(primary: Contact, duplicate: Contact, record: dict[str, Any]) -> list[str]:
    """Pairs are derived data a rescan rebuilds: put back what still fits, without reporting conflicts."""
    for moved in record.get("repointed", []):
        DuplicateCandidate.objects.filter(pk=moved["id"]).update(contact_a_id=moved["a"], contact_b_id=moved["b"])
    for data in [*record.get("dropped", []), *([record["pair"]] if record.get("pair") else [])]:
        values = restore_row_values(DuplicateCandidate, data)
        clash = DuplicateCandidate.objects.filter(
            Q(pk=values["id"]) | Q(contact_a_id=values["contact_a_id"], contact_b_id=values["contact_b_id"])
        )
        if not clash.exists():
            DuplicateCandidate.objects.bulk_create([DuplicateCandidate(**values)])
    return []


# --- Earlier merges into the duplicate ----------------------------------------------------------------------


def move_merge_records(primary: Contact, duplicate: Contact) -> tuple[dict[str, Any], list[str]]:
    """Earlier merges into the duplicate follow it, instead of losing their contact (SET_NULL) for good."""
    ids = list(MergeRecord.objects.filter(primary=duplicate).values_list("id", flat=True))
    MergeRecord.objects.filter(pk__in=ids).update(primary=primary)
    return {"ids": ids}, []


def restore_merge_records(primary: Contact, duplicate: Contact, record: dict[str, Any]) -> list[str]:
    MergeRecord.objects.filter(pk__in=record.get("ids", []), primary=primary).update(primary=duplicate)
    return []


register_merge_handler(MergeHandler("identities", move_identities, restore_identities, order=10))
register_merge_handler(MergeHandler("fields", move_fields, restore_fields, order=20))
register_merge_handler(MergeHandler("duplicate_candidates", move_candidates, restore_candidates, order=30))
register_merge_handler(MergeHandler("merge_records", move_merge_records, restore_merge_records, order=40))


# --- Timeline -----------------------------------------------------------------------------------------------

SOURCE = "merge"

# A record yields up to two entries: the merge (entry id 2n) and its undo (2n+1), so cursor ids stay unique.
_TIMELINE_SQL = """
SELECT at, eid, kind, record_id, first_name, last_name, actor FROM (
    SELECT m.created_at AS at, m.id * 2 AS eid, 'merged' AS kind, m.id AS record_id,
        m.duplicate_snapshot->>'first_name' AS first_name, m.duplicate_snapshot->>'last_name' AS last_name,
        coalesce(nullif(trim(u.first_name || ' ' || u.last_name), ''), u.username) AS actor
    FROM contacts_mergerecord m LEFT JOIN accounts_user u ON u.id = m.actor_id
    WHERE m.primary_id = ANY(%s) AND m.id IN ({visible})
  UNION ALL
    SELECT m.unmerged_at, m.id * 2 + 1, 'unmerged', m.id,
        m.duplicate_snapshot->>'first_name', m.duplicate_snapshot->>'last_name',
        coalesce(nullif(trim(u.first_name || ' ' || u.last_name), ''), u.username)
    FROM contacts_mergerecord m LEFT JOIN accounts_user u ON u.id = m.unmerged_by_id
    WHERE m.primary_id = ANY(%s) AND m.unmerged_at IS NOT NULL AND m.id IN ({visible})
) t
WHERE {before}
ORDER BY t.at DESC, t.eid DESC
LIMIT %s
"""


def merge_timeline(query: TimelineQuery) -> list[TimelineEntry]:
    """Merges into (and undone from) these contacts. The caller passes only contacts the user may see."""
    from contacts.selectors.duplicates import merge_record_list
    from contacts.selectors.timeline import keyset_before_sql

    if not query.contact_ids or query.company is not None:
        return []
    before_sql, before_params = keyset_before_sql(query.before, source=SOURCE, at_col="t.at", id_col="t.eid")
    ids = list(query.contact_ids)
    # Only merges the user may open: the entry names the merged-away contact, which may have been private.
    allowed = merge_record_list(user=query.user).filter(primary_id__in=ids).order_by().values("id")
    try:
        visible_sql, visible_params = allowed.query.sql_with_params()
    except EmptyResultSet:  # the policy grants this user nothing
        return []
    sql = _TIMELINE_SQL.format(before=before_sql, visible=visible_sql)
    params = [ids, *visible_params, ids, *visible_params, *before_params, query.limit]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    entries = []
    for when, entry_id, kind, record_id, first, last, actor in rows:
        name = f"{first or ''} {last or ''}".strip() or "a contact"
        entries.append(
            TimelineEntry(
                at=when,
                source=SOURCE,
                id=entry_id,
                kind=kind,
                title=f"Merged {name} into this contact" if kind == "merged" else f"Unmerged {name}",
                url=reverse("contacts:merge_detail", args=[record_id]),
                actor=actor or "",
            )
        )
    return entries


register_timeline_source(TimelineSource(key=SOURCE, label="Merges", fetch=merge_timeline))
