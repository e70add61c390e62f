"""contacts' own personal-data sources (GDPR export and erasure). Imported from ContactsConfig.ready().

Erasure order matters: deleting rows makes django-simple-history write one more historical row per deleted
row (with the data it deleted), so the history source runs AFTER the contact row is gone, and last of all.
"""

from __future__ import annotations

import re
from typing import Any

from django.db.models import Q, TextField
from django.db.models.functions import Cast
from django.forms.models import model_to_dict

from contacts.models import (
    Consent,
    Contact,
    ContactIdentity,
    DuplicateCandidate,
    ImportRowError,
    LifeEvent,
    MergeRecord,
    Relationship,
)
from contacts.registry import PersonalDataSource, register_personal_data_source


def _rows(qs: Any, exclude: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    return [{k: v for k, v in row.items() if k not in exclude} for row in qs.values()]


# --- Identities ---


def _identities_export(contact: Contact) -> list[dict[str, Any]]:
    return _rows(ContactIdentity.objects.filter(contact_id=contact.pk).order_by("id"))


def _identities_erase(contact: Contact) -> int:
    return ContactIdentity.objects.filter(contact_id=contact.pk).delete()[0]


# --- Duplicate candidates and merge records: snapshots hold the person's data ---


def _merge_q(contact: Contact) -> Q:
    return Q(primary_id=contact.pk) | Q(duplicate_id_was=contact.pk)


def _merge_export(contact: Contact) -> dict[str, Any]:
    pairs = DuplicateCandidate.objects.filter(Q(contact_a_id=contact.pk) | Q(contact_b_id=contact.pk))
    return {
        "duplicate_candidates": _rows(pairs.order_by("id")),
        "merge_records": _rows(MergeRecord.objects.filter(_merge_q(contact)).order_by("id")),
    }


def _merged_away_ids(contact: Contact) -> list[int]:
    """Contacts merged into this one and not brought back: the same person, whose history rows keep their old id."""
    ids = MergeRecord.objects.filter(primary_id=contact.pk, unmerged_at__isnull=True).values_list(
        "duplicate_id_was", flat=True
    )
    return sorted(set(ids) - set(Contact.objects.filter(pk__in=list(ids)).values_list("id", flat=True)))


def _merge_erase(contact: Contact) -> int:
    # The merge records are the only link to those ids, so their history goes before the records do.
    swept = sum(qs.delete()[0] for pk in _merged_away_ids(contact) for qs in _history_querysets(pk).values())
    pairs = DuplicateCandidate.objects.filter(Q(contact_a_id=contact.pk) | Q(contact_b_id=contact.pk)).delete()[0]
    return swept + pairs + MergeRecord.objects.filter(_merge_q(contact)).delete()[0]


# --- Import error reports that quote the person's addresses (runs before the identities are deleted) ---


def _quotes_an_address(raw: dict[str, Any], values: set[str]) -> bool:
    """A cell (or a ``;``/``,``/space-separated part of one) is one of the addresses: a substring is not enough,
    or erasing ann@x.io would delete the row of joann@x.io, another person."""
    for cell in raw.values():
        text = str(cell).strip().lower()
        parts = {p.strip("<>").removeprefix("mailto:") for p in re.split(r"[;,\s]+", text) if p}
        if text in values or parts & values:
            return True
    return False


def _import_rows(contact: Contact) -> Any:
    values = set()
    for value, normalized in ContactIdentity.objects.filter(contact_id=contact.pk).values_list("value", "normalized"):
        values |= {v.strip().lower() for v in (value, normalized) if len(v) >= 5}
    if not values:
        return ImportRowError.objects.none()
    query = Q()
    for value in values:
        query |= Q(raw_text__icontains=value)
    # The substring filter narrows in SQL; the exact check decides.
    candidates = ImportRowError.objects.annotate(raw_text=Cast("raw", TextField())).filter(query).only("id", "raw")
    ids = [row.pk for row in candidates if isinstance(row.raw, dict) and _quotes_an_address(row.raw, values)]
    return ImportRowError.objects.filter(pk__in=ids).order_by("job_id", "row_number")


def _import_rows_export(contact: Contact) -> list[dict[str, Any]]:
    return [{"job_id": e.job_id, "row_number": e.row_number, "raw": e.raw} for e in _import_rows(contact)]


def _import_rows_erase(contact: Contact) -> int:
    return ImportRowError.objects.filter(pk__in=list(_import_rows(contact).values_list("pk", flat=True))).delete()[0]


# --- The contact row (life events, consents and relationships are the profile area's sources) ---


def _contact_export(contact: Contact) -> dict[str, Any]:
    row = model_to_dict(contact, exclude=["search_vector"])
    row.update(
        id=contact.pk, created_at=contact.created_at, updated_at=contact.updated_at,
        last_touch_at=contact.last_touch_at, company_name=contact.company.name if contact.company_id else "",
    )  # fmt: skip
    return row


def _contact_erase(contact: Contact) -> int:
    # A queryset delete keeps ``contact.pk`` set for the sources that run after this one.
    return Contact.objects.filter(pk=contact.pk).delete()[0]


# --- simple-history rows: they hold every past value of the person's data ---


def _history_querysets(contact_id: int) -> dict[str, Any]:
    return {
        "contact": Contact.history.model.objects.filter(id=contact_id),
        "identities": ContactIdentity.history.model.objects.filter(contact_id=contact_id),
        "life_events": LifeEvent.history.model.objects.filter(contact_id=contact_id),
        "consents": Consent.history.model.objects.filter(contact_id=contact_id),
        "relationships": Relationship.history.model.objects.filter(
            Q(from_contact_id=contact_id) | Q(to_contact_id=contact_id)
        ),
    }


def _history_export(contact: Contact) -> dict[str, Any]:
    # The other history tables are exported by their areas' sources; erasure below still sweeps them all,
    # because deleting the rows above wrote fresh historical copies.
    querysets = _history_querysets(contact.pk)
    return {name: _rows(querysets[name].order_by("history_id")) for name in ("contact", "identities")}


def _history_erase(contact: Contact) -> int:
    return sum(qs.delete()[0] for qs in _history_querysets(contact.pk).values())


register_personal_data_source(PersonalDataSource("contacts.identities", _identities_export, _identities_erase, 900))
register_personal_data_source(PersonalDataSource("contacts.merges", _merge_export, _merge_erase, 910))
register_personal_data_source(PersonalDataSource("contacts.import_rows", _import_rows_export, _import_rows_erase, 890))
register_personal_data_source(PersonalDataSource("contacts.contact", _contact_export, _contact_erase, 990))
register_personal_data_source(PersonalDataSource("contacts.history", _history_export, _history_erase, 1000))
