"""Registers the profile area's rows with the contacts registries and My day. Imported once from
``ContactsConfig.ready()``.

- timeline: life events;
- merge: relationships, life events, consents (move to the survivor, and back on unmerge);
- personal data: export and erasure of relationships, life events, consents;
- My day: upcoming birthdays and anniversaries.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone

from contacts.models import Consent, Contact, LifeEvent, Relationship
from contacts.registry import (
    MergeHandler,
    PersonalDataSource,
    TimelineEntry,
    TimelineQuery,
    TimelineSource,
    register_merge_handler,
    register_personal_data_source,
    register_timeline_source,
)
from crm.panels import Panel, register_panel

LIFE_EVENT_SOURCE = "life_event"


# --- Timeline -----------------------------------------------------------------------------------------------


def _midnight(day: dt.date) -> dt.datetime:
    return timezone.make_aware(dt.datetime.combine(day, dt.time.min), timezone.get_current_timezone())


def _before_q(before: tuple[dt.datetime, str, int] | None) -> Q:
    """Rows whose cursor ``(midnight(date), "life_event", id)`` sorts strictly before ``before``."""
    if before is None:
        return Q()
    at, source, pk = before
    day = timezone.localtime(at).date()
    if at != _midnight(day):
        # ``at`` lies inside ``day``: every event of that day (at midnight) is older.
        return Q(date__lte=day)
    if source > LIFE_EVENT_SOURCE:
        same_instant = Q(date=day)
    elif source == LIFE_EVENT_SOURCE:
        same_instant = Q(date=day, id__lt=pk)
    else:
        same_instant = Q(pk__in=[])
    return Q(date__lt=day) | same_instant


def life_event_timeline(query: TimelineQuery) -> list[TimelineEntry]:
    from accounts.selectors import visible

    events = (
        visible(LifeEvent.objects.filter(contact_id__in=query.contact_ids), query.user, prefix="contact__")
        .filter(_before_q(query.before))
        .select_related("created_by")
        .order_by("-date", "-id")[: query.limit]
    )
    return [
        TimelineEntry(
            at=_midnight(event.date),
            source=LIFE_EVENT_SOURCE,
            id=event.pk,
            kind="life_event",
            title=event.title or event.get_kind_display(),
            body=event.note,
            url=reverse("contacts:detail", args=[event.contact_id]),
            actor=str(event.created_by) if event.created_by_id else "",
            extra={"life_event_kind": event.kind, "origin": event.source, "contact_id": event.contact_id},
        )
        for event in events
    ]


# --- Merge --------------------------------------------------------------------------------------------------


def _relationship_data(rel: Relationship) -> dict[str, Any]:
    return {
        "id": rel.pk, "from_contact": rel.from_contact_id, "to_contact": rel.to_contact_id, "kind": rel.kind,
        "strength": rel.strength, "notes": rel.notes, "created_by": rel.created_by_id,
        "created_at": rel.created_at.isoformat(),
    }  # fmt: skip


def _relationship_from(data: dict[str, Any]) -> Relationship:
    return Relationship(
        id=data["id"], from_contact_id=data["from_contact"], to_contact_id=data["to_contact"], kind=data["kind"],
        strength=data["strength"], notes=data["notes"], created_by_id=data["created_by"],
        created_at=dt.datetime.fromisoformat(data["created_at"]),
    )  # fmt: skip


def relationships_move(primary: Contact, duplicate: Contact) -> tuple[dict[str, Any], list[str]]:
    """Re-point the duplicate's edges to the primary. An edge that would become a self-link (primary <->
    duplicate) or duplicate one the primary already has cannot move: it is deleted, kept whole in the record so
    unmerge recreates it, and reported as a conflict."""
    edges = list(
        Relationship.objects.select_for_update()
        .filter(Q(from_contact=duplicate) | Q(to_contact=duplicate))
        .order_by("id")
    )
    existing = set(
        Relationship.objects.filter(Q(from_contact=primary) | Q(to_contact=primary))
        .exclude(pk__in=[e.pk for e in edges])
        .values_list("from_contact_id", "to_contact_id", "kind")
    )
    moved: list[dict[str, Any]] = []
    kept_aside: list[dict[str, Any]] = []
    conflicts: list[str] = []
    for edge in edges:
        new_from = primary.pk if edge.from_contact_id == duplicate.pk else edge.from_contact_id
        new_to = primary.pk if edge.to_contact_id == duplicate.pk else edge.to_contact_id
        if new_from == new_to or (new_from, new_to, edge.kind) in existing:
            why = "would link the contact to itself" if new_from == new_to else "already exists on the survivor"
            conflicts.append(f"Relationship #{edge.pk} ({edge.get_kind_display().lower()}) {why}; kept for unmerge.")
            kept_aside.append(_relationship_data(edge))
            edge.delete()
            continue
        moved.append({"id": edge.pk, "from_contact": edge.from_contact_id, "to_contact": edge.to_contact_id})
        edge.from_contact_id, edge.to_contact_id = new_from, new_to
        edge.save(update_fields=["from_contact", "to_contact"])
        existing.add((new_from, new_to, edge.kind))
    return {"moved": moved, "kept_aside": kept_aside}, conflicts


def relationships_restore(primary: Contact, duplicate: Contact, record: dict[str, Any]) -> list[str]:
    conflicts: list[str] = []
    by_id = Relationship.objects.select_for_update().in_bulk([m["id"] for m in record.get("moved", [])])
    for item in record.get("moved", []):
        edge = by_id.get(item["id"])
        if edge is None:
            conflicts.append(f"Relationship #{item['id']} was deleted after the merge and was not restored.")
            continue
        edge.from_contact_id, edge.to_contact_id = item["from_contact"], item["to_contact"]
        conflicts += _save_or_report(edge, ["from_contact", "to_contact"])
    for data in record.get("kept_aside", []):
        conflicts += _save_or_report(_relationship_from(data), None)
    return conflicts


def _save_or_report(edge: Relationship, update_fields: list[str] | None) -> list[str]:
    ends = {edge.from_contact_id, edge.to_contact_id}
    if len(ends) < 2 or Contact.objects.filter(pk__in=ends).count() < 2:
        return [f"Relationship #{edge.pk} could not be restored: one of its contacts no longer exists."]
    try:
        with transaction.atomic():
            if update_fields is None:
                edge.save(force_insert=True)
            else:
                edge.save(update_fields=update_fields)
    except IntegrityError:
        return [f"Relationship #{edge.pk} could not be restored: the same link was created after the merge."]
    return []


def life_events_move(primary: Contact, duplicate: Contact) -> tuple[dict[str, Any], list[str]]:
    ids = list(LifeEvent.objects.filter(contact=duplicate).order_by("id").values_list("id", flat=True))
    LifeEvent.objects.filter(pk__in=ids).update(contact=primary)
    return {"moved": ids}, []


def life_events_restore(primary: Contact, duplicate: Contact, record: dict[str, Any]) -> list[str]:
    ids = record.get("moved", [])
    present = set(LifeEvent.objects.filter(pk__in=ids, contact=primary).values_list("id", flat=True))
    LifeEvent.objects.filter(pk__in=present).update(contact=duplicate)
    return [
        f"Life event #{pk} was deleted or moved after the merge and was not restored."
        for pk in ids
        if pk not in present
    ]


def _consent_data(consent: Consent) -> dict[str, Any]:
    return {
        "id": consent.pk, "contact": consent.contact_id, "channel": consent.channel, "status": consent.status,
        "legal_basis": consent.legal_basis, "source": consent.source, "recorded_at": consent.recorded_at.isoformat(),
        "recorded_by": consent.recorded_by_id,
    }  # fmt: skip


def _consent_from(data: dict[str, Any]) -> Consent:
    return Consent(
        id=data["id"], contact_id=data["contact"], channel=data["channel"], status=data["status"],
        legal_basis=data["legal_basis"], source=data["source"],
        recorded_at=dt.datetime.fromisoformat(data["recorded_at"]), recorded_by_id=data["recorded_by"],
    )  # fmt: skip


def consents_move(primary: Contact, duplicate: Contact) -> tuple[dict[str, Any], list[str]]:
    """Move the duplicate's consents. Where both have a row for a channel, the most recently recorded one ends
    up on the primary; the other is deleted and kept whole in the record for unmerge."""
    mine = {c.channel: c for c in Consent.objects.select_for_update().filter(contact=primary)}
    moved: list[int] = []
    recorded: dict[str, str] = {}
    replaced: list[dict[str, Any]] = []
    for theirs in Consent.objects.select_for_update().filter(contact=duplicate).order_by("id"):
        current = mine.get(theirs.channel)
        if current is not None and current.recorded_at >= theirs.recorded_at:
            replaced.append(_consent_data(theirs))
            theirs.delete()
            continue
        if current is not None:
            replaced.append(_consent_data(current))
            current.delete()
        theirs.contact = primary
        theirs.save(update_fields=["contact"])
        moved.append(theirs.pk)
        recorded[str(theirs.pk)] = theirs.recorded_at.isoformat()
    return {"moved": moved, "replaced": replaced, "recorded": recorded}, []


def consents_restore(primary: Contact, duplicate: Contact, record: dict[str, Any]) -> list[str]:
    conflicts: list[str] = []
    ids = record.get("moved", [])
    recorded = record.get("recorded", {})
    for consent in Consent.objects.filter(pk__in=ids, contact=primary):
        if str(consent.pk) in recorded and consent.recorded_at.isoformat() != recorded[str(consent.pk)]:
            # Recorded again on the survivor since (an opt-out, say): moving it away would lose that wish.
            conflicts.append(
                f"The {consent.get_channel_display()} consent was recorded again after the merge "
                f"({consent.get_status_display().lower()}, {consent.recorded_at:%Y-%m-%d})."
            )
    if conflicts:
        return conflicts
    present = set(Consent.objects.filter(pk__in=ids, contact=primary).values_list("id", flat=True))
    Consent.objects.filter(pk__in=present).update(contact=duplicate)
    conflicts += [f"Consent #{pk} was deleted after the merge and was not restored." for pk in ids if pk not in present]
    for data in record.get("replaced", []):
        consent = _consent_from(data)
        try:
            with transaction.atomic():
                consent.save(force_insert=True)
        except IntegrityError:
            conflicts.append(
                f"The {consent.get_channel_display()} consent recorded {consent.recorded_at:%Y-%m-%d} was not "
                "restored: a newer one was recorded after the merge."
            )
    return conflicts


# --- Personal data (GDPR) -----------------------------------------------------------------------------------


def relationships_export(contact: Contact) -> list[dict[str, Any]]:
    rows = Relationship.objects.filter(Q(from_contact=contact) | Q(to_contact=contact)).order_by("id")
    return [
        {
            "direction": "outgoing" if rel.from_contact_id == contact.pk else "incoming",
            "other_contact_id": rel.to_contact_id if rel.from_contact_id == contact.pk else rel.from_contact_id,
            "kind": rel.kind,
            "strength": rel.strength,
            "notes": rel.notes,
            "created_at": rel.created_at.isoformat(),
        }
        for rel in rows
    ]


def relationships_erase(contact: Contact) -> int:
    where = Q(from_contact_id=contact.pk) | Q(to_contact_id=contact.pk)
    count = Relationship.objects.filter(where).count()
    Relationship.objects.filter(where).delete()
    # The change history holds the same notes; erasure must reach it too.
    Relationship.history.filter(where).delete()
    return count


def life_events_export(contact: Contact) -> list[dict[str, Any]]:
    return [
        {
            "kind": e.kind,
            "title": e.title,
            "date": e.date.isoformat(),
            "note": e.note,
            "source": e.source,
            "data": e.data,
            "created_at": e.created_at.isoformat(),
        }
        for e in LifeEvent.objects.filter(contact=contact).order_by("date", "id")
    ]


def life_events_erase(contact: Contact) -> int:
    count, _ = LifeEvent.objects.filter(contact=contact).delete()
    LifeEvent.history.filter(contact_id=contact.pk).delete()
    return count


def consents_export(contact: Contact) -> list[dict[str, Any]]:
    return [
        {
            "channel": c.channel,
            "status": c.status,
            "legal_basis": c.legal_basis,
            "source": c.source,
            "recorded_at": c.recorded_at.isoformat(),
        }
        for c in Consent.objects.filter(contact=contact).order_by("channel")
    ]


def consents_erase(contact: Contact) -> int:
    count, _ = Consent.objects.filter(contact=contact).delete()
    Consent.history.filter(contact_id=contact.pk).delete()
    return count


# --- My day -------------------------------------------------------------------------------------------------


def birthdays_panel_context(request: HttpRequest) -> dict[str, Any]:
    from contacts.selectors.life_events import upcoming_dates

    return {"upcoming": upcoming_dates(user=request.user, days=14)}


register_timeline_source(TimelineSource(key=LIFE_EVENT_SOURCE, label="Life events", fetch=life_event_timeline))
register_merge_handler(MergeHandler(key="relationships", move=relationships_move, restore=relationships_restore))
register_merge_handler(MergeHandler(key="life_events", move=life_events_move, restore=life_events_restore))
register_merge_handler(MergeHandler(key="consents", move=consents_move, restore=consents_restore))
register_personal_data_source(
    PersonalDataSource(key="relationships", export=relationships_export, erase=relationships_erase)
)
register_personal_data_source(PersonalDataSource(key="life_events", export=life_events_export, erase=life_events_erase))
register_personal_data_source(PersonalDataSource(key="consents", export=consents_export, erase=consents_erase))
register_panel(
    Panel(
        key="birthdays",
        title="Birthdays and anniversaries",
        template="contacts/_myday_birthdays.html",
        context=birthdays_panel_context,
        order=40,
    )
)
