"""Merge two contacts into one, and undo it.

contact_merge snapshots both contacts, runs every registered merge handler (contacts' own in
contacts.merge_registrations; relationships, life events, consents, messages, deals ... register theirs), then
deletes the duplicate. contact_unmerge re-creates the duplicate with its old id and asks every handler to move its
rows back; if anything changed since the merge in a way that cannot be put back, it refuses with an itemised
conflict report and changes nothing.
"""

from __future__ import annotations

import datetime
import decimal
import uuid
from typing import Any

from django.db import models, transaction
from django.utils import timezone

from accounts.models import User
from accounts.selectors import visible
from contacts.models import Contact, ContactIdentity, DuplicateCandidate, MergeRecord
from contacts.registry import merge_handlers
from contacts.services import contact_search_refresh
from crm.errors import Conflict, DomainError, NotFound

# Rows of these models are handled by contacts' own handlers (or are audit rows), so the "would anything be
# lost?" check before deleting the duplicate skips them.
_HANDLED_ELSEWHERE = (ContactIdentity, DuplicateCandidate, MergeRecord)
_NOT_SNAPSHOTTED = {"search_vector"}


def json_value(value: Any) -> Any:
    """A JSON-safe form that loses nothing: full-precision datetimes (DjangoJSONEncoder drops microseconds)."""
    if isinstance(value, datetime.datetime | datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, decimal.Decimal | uuid.UUID):
        return str(value)
    if isinstance(value, list | tuple):
        return [json_value(v) for v in value]
    if isinstance(value, dict):
        return {k: json_value(v) for k, v in value.items()}
    return value


def python_value(field: models.Field, value: Any) -> Any:
    """The inverse of :func:`json_value` for one model field."""
    if value is None:
        return None
    return field.to_python(value)


def snapshot_row(instance: models.Model, *, exclude: set[str] | frozenset[str] = frozenset()) -> dict[str, Any]:
    """Every concrete column of ``instance`` by attname (``company_id``, not ``company``), JSON-safe."""
    return {
        f.attname: json_value(f.value_from_object(instance))
        for f in type(instance)._meta.concrete_fields
        if f.name not in exclude
    }


def restore_row_values(model: type[models.Model], data: dict[str, Any]) -> dict[str, Any]:
    """Snapshot values converted back to Python values, keyed by attname."""
    by_attname = {f.attname: f for f in model._meta.concrete_fields}
    return {name: python_value(by_attname[name], value) for name, value in data.items() if name in by_attname}


def contact_snapshot(contact: Contact) -> dict[str, Any]:
    data = snapshot_row(contact, exclude=_NOT_SNAPSHOTTED)
    data["identities"] = [snapshot_row(i) for i in ContactIdentity.objects.filter(contact=contact).order_by("id")]
    return data


def _lock_pair(*, actor: User, ids: list[int]) -> dict[int, Contact]:
    # Lock in id order: two merges of the same pair in opposite directions then queue instead of deadlocking.
    rows = list(visible(Contact.objects.filter(pk__in=ids), actor).order_by("id").select_for_update(of=("self",)))
    return {c.pk: c for c in rows}


def _unhandled_rows(duplicate: Contact) -> list[str]:
    """Rows that still point at ``duplicate`` and would be deleted with it (no handler moved them)."""
    problems = []
    for rel in Contact._meta.related_objects:
        model = rel.related_model
        if model in _HANDLED_ELSEWHERE or getattr(model._meta, "simple_history_model", False):
            continue
        if getattr(rel, "on_delete", None) not in (models.CASCADE, models.PROTECT, models.RESTRICT):
            continue
        if model._default_manager.filter(**{rel.field.name: duplicate}).exists():
            problems.append(f"{model._meta.verbose_name_plural} ({model._meta.label}.{rel.field.name})")
    return problems


@transaction.atomic
def contact_merge(*, primary: Contact, duplicate: Contact, actor: User) -> MergeRecord:
    """Move everything of ``duplicate`` onto ``primary``; record enough to undo it; delete ``duplicate``.

    Raises DomainError for a merge with itself, NotFound when either contact is invisible to ``actor``.
    """
    if primary.pk == duplicate.pk:
        raise DomainError(
            "A contact cannot be merged with itself. Choose two different contacts.",
            fields={"duplicate": ["Must be a different contact from the one kept."]},
            code="merge_self",
        )
    locked = _lock_pair(actor=actor, ids=[primary.pk, duplicate.pk])
    if len(locked) != 2:
        raise NotFound("No such contact.")
    primary, duplicate = locked[primary.pk], locked[duplicate.pk]
    record = MergeRecord(
        primary=primary,
        duplicate_id_was=duplicate.pk,
        primary_snapshot=contact_snapshot(primary),
        duplicate_snapshot=contact_snapshot(duplicate),
        actor=actor,
    )
    moved: dict[str, Any] = {}
    conflicts: list[str] = []
    for handler in merge_handlers():
        handler_record, handler_conflicts = handler.move(primary, duplicate)
        moved[handler.key] = handler_record
        conflicts.extend(handler_conflicts)
    left_behind = _unhandled_rows(duplicate)
    if left_behind:
        # Deleting them would lose data that unmerge could not bring back: refuse the whole merge.
        raise DomainError(
            "These contacts cannot be merged yet: nothing knows how to move their " + ", ".join(left_behind) + ".",
            code="merge_unsupported",
        )
    record.moved = moved
    record.conflicts = conflicts
    Contact.objects.filter(pk=duplicate.pk).delete()
    record.save()
    # Filled fields, tags and moved identities change what the primary is found by.
    contact_search_refresh(contact_ids=[primary.pk])
    return record


@transaction.atomic
def contact_unmerge(*, record: MergeRecord, actor: User) -> tuple[Contact, Contact]:
    """Re-create the duplicate with its old id and move everything back. Returns (primary, duplicate).

    Raises Conflict with ``fields={"conflicts": [...]}`` (and changes nothing) when the primary or a moved row
    changed since the merge in a way that cannot be restored without overwriting someone's later work.
    """
    record = MergeRecord.objects.select_for_update().get(pk=record.pk)
    if record.unmerged_at is not None:
        raise DomainError(
            f"This merge was already undone on {timezone.localtime(record.unmerged_at):%Y-%m-%d %H:%M}.",
            code="already_unmerged",
        )
    if record.primary_id is None:
        raise Conflict(
            "The contact this merge went into has been deleted, so the merge cannot be undone.",
            fields={"conflicts": ["The surviving contact no longer exists."]},
        )
    locked = _lock_pair(actor=actor, ids=[record.primary_id])
    if record.primary_id not in locked:
        raise NotFound("No such merge.")
    primary = locked[record.primary_id]
    if Contact.objects.filter(pk=record.duplicate_id_was).exists():
        raise Conflict(
            f"Contact #{record.duplicate_id_was} exists again, so the merge cannot be undone.",
            fields={"conflicts": [f"Contact #{record.duplicate_id_was} already exists."]},
        )
    duplicate = _recreate_duplicate(record)
    conflicts: list[str] = []
    for handler in reversed(merge_handlers()):
        if handler.key in record.moved:
            conflicts.extend(handler.restore(primary, duplicate, record.moved[handler.key]))
    if conflicts:
        raise Conflict(
            "This merge cannot be undone because these changed since: " + "; ".join(conflicts),
            fields={"conflicts": conflicts},
            code="unmerge_conflict",
        )
    record.unmerged_at = timezone.now()
    record.unmerged_by = actor
    record.save(update_fields=["unmerged_at", "unmerged_by"])
    contact_search_refresh(contact_ids=[primary.pk, duplicate.pk])
    primary.refresh_from_db()
    duplicate.refresh_from_db()
    return primary, duplicate


def _recreate_duplicate(record: MergeRecord) -> Contact:
    data = {k: v for k, v in record.duplicate_snapshot.items() if k != "identities"}
    values = restore_row_values(Contact, data)
    for f in Contact._meta.concrete_fields:
        pk = values.get(f.attname) if f.is_relation else None
        if pk is not None and not f.related_model._base_manager.filter(pk=pk).exists():
            # The company, team or owner was deleted since: with the contact alive, it would have lost the link
            # too (SET_NULL; PROTECT did not apply to a deleted row). Inserting it would fail the FK at commit.
            values[f.attname] = None
    duplicate = Contact(**values)
    duplicate.save(force_insert=True)
    # auto_now overwrote updated_at on insert; put the snapshot's value back so the row is exactly as it was.
    Contact.objects.filter(pk=duplicate.pk).update(updated_at=values["updated_at"])
    duplicate.updated_at = values["updated_at"]
    return duplicate
