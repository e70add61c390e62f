"""How activities plug into the apps below it: the contact timeline, merge and unmerge, GDPR, and My day.

Imported once from ActivitiesConfig.ready().
"""

from __future__ import annotations

from typing import Any

from django.db.models import Q
from django.db.models.functions import Coalesce
from django.http import HttpRequest
from django.urls import reverse

from accounts.selectors import visible
from activities.models import Activity, ContactCadence, PlanRun, TouchPrompt
from activities.selectors import my_day_activities
from contacts.models import Contact
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
from contacts.selectors.timeline import keyset_before_q
from crm.panels import Panel, register_panel

SOURCE = "activity"
LIVE_RUN = [PlanRun.Status.ACTIVE, PlanRun.Status.PAUSED]
LIVE_PROMPT = [TouchPrompt.Status.OPEN, TouchPrompt.Status.SNOOZED]


# --- Timeline -----------------------------------------------------------------------------------------------


def activity_timeline(query: TimelineQuery) -> list[TimelineEntry]:
    """Done activities at the time they were done; open ones at their due time (planned touches show too)."""
    qs = (
        visible(Activity.objects.filter(contact_id__in=query.contact_ids), query.user)
        .exclude(status=Activity.Status.CANCELLED)
        .annotate(at=Coalesce("done_at", "due_at", "created_at"))
        .filter(keyset_before_q(query.before, source=SOURCE, at_field="at"))
        .select_related("owner")
        .order_by("-at", "-pk")[: query.limit]
    )
    entries = []
    for activity in qs:
        state = "" if activity.status == Activity.Status.DONE else f" ({activity.get_status_display().lower()})"
        outcome = f" · {activity.outcome.replace('_', ' ')}" if activity.outcome else ""
        entries.append(
            TimelineEntry(
                at=activity.at, source=SOURCE, id=activity.pk, kind=f"activity_{activity.kind}",
                title=f"{activity.get_kind_display()}: {activity.subject}{state}{outcome}",
                body=activity.notes[:500], url=reverse("activities:detail", args=[activity.pk]),
                actor=str(activity.owner) if activity.owner_id else "",
            )
        )  # fmt: skip
    return entries


# --- Merge --------------------------------------------------------------------------------------------------


def _move_ids(model: type, ids: list[int], contact_id: int) -> None:
    if ids:
        model.objects.filter(pk__in=ids).update(contact_id=contact_id)


def activities_move(primary: Contact, duplicate: Contact) -> tuple[dict[str, Any], list[str]]:
    activity_ids = list(Activity.objects.filter(contact=duplicate).values_list("pk", flat=True))
    _move_ids(Activity, activity_ids, primary.pk)
    # One live run of a plan per contact: where both had the same plan running, the duplicate's run ends
    # (recorded, and restored on unmerge) instead of breaking the unique constraint.
    live = PlanRun.objects.filter(contact=primary, status__in=LIVE_RUN)
    primary_live_plans = set(live.values_list("plan", flat=True))
    runs = list(PlanRun.objects.filter(contact=duplicate).values_list("pk", "plan_id", "status"))
    ended = [(pk, status) for pk, plan_id, status in runs if status in LIVE_RUN and plan_id in primary_live_plans]
    if ended:
        PlanRun.objects.filter(pk__in=[pk for pk, _ in ended]).update(
            status=PlanRun.Status.CANCELLED, stop_reason="Merged into a contact already running this plan"
        )
    _move_ids(PlanRun, [pk for pk, _, _ in runs], primary.pk)
    primary_has_prompt = TouchPrompt.objects.filter(contact=primary, status__in=LIVE_PROMPT).exists()
    prompts = list(TouchPrompt.objects.filter(contact=duplicate).values_list("pk", "status"))
    dismissed = [(pk, status) for pk, status in prompts if status in LIVE_PROMPT and primary_has_prompt]
    if dismissed:
        TouchPrompt.objects.filter(pk__in=[pk for pk, _ in dismissed]).update(status=TouchPrompt.Status.DISMISSED)
    _move_ids(TouchPrompt, [pk for pk, _ in prompts], primary.pk)
    cadence = ContactCadence.objects.filter(contact=duplicate).values("pk", "days", "source").first()
    moved_cadence = None
    if cadence and not ContactCadence.objects.filter(contact=primary).exists():
        ContactCadence.objects.filter(pk=cadence["pk"]).update(contact=primary)
        moved_cadence = cadence["pk"]
    elif cadence:
        ContactCadence.objects.filter(pk=cadence["pk"]).delete()
    record = {
        "activities": activity_ids, "runs": [pk for pk, _, _ in runs], "ended_runs": ended,
        "prompts": [pk for pk, _ in prompts], "dismissed_prompts": dismissed, "moved_cadence": moved_cadence,
        "dropped_cadence": cadence if cadence and not moved_cadence else None,
    }  # fmt: skip
    conflicts = [f"Plan run #{pk} of the merged contact ended: the survivor runs the same plan." for pk, _ in ended]
    return record, conflicts


def activities_restore(primary: Contact, duplicate: Contact, record: dict[str, Any]) -> list[str]:
    _move_ids(Activity, record.get("activities", []), duplicate.pk)
    _move_ids(PlanRun, record.get("runs", []), duplicate.pk)
    for pk, status in record.get("ended_runs", []):
        PlanRun.objects.filter(pk=pk).update(status=status, stop_reason="")
    _move_ids(TouchPrompt, record.get("prompts", []), duplicate.pk)
    for pk, status in record.get("dismissed_prompts", []):
        TouchPrompt.objects.filter(pk=pk).update(status=status)
    if record.get("moved_cadence"):
        ContactCadence.objects.filter(pk=record["moved_cadence"]).update(contact=duplicate)
    dropped = record.get("dropped_cadence")
    if dropped:
        ContactCadence.objects.create(contact=duplicate, days=dropped["days"], source=dropped["source"])
    return []


# --- Personal data ------------------------------------------------------------------------------------------


def activities_export(contact: Contact) -> list[dict[str, Any]]:
    fields = ["id", "kind", "subject", "notes", "status", "outcome", "due_at", "done_at", "location", "created_at"]
    rows = Activity.objects.filter(contact=contact).order_by("id").values(*fields)
    return [{k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in row.items()} for row in rows]


def activities_erase(contact: Contact) -> int:
    """Activities about the person are deleted, then their history rows (which hold the same notes). In that
    order: deleting a row makes simple-history write one more history row with the deleted values."""
    ids = list(Activity.objects.filter(contact=contact).values_list("pk", flat=True))
    run_ids = list(PlanRun.objects.filter(contact=contact).values_list("pk", flat=True))
    deleted, _ = Activity.objects.filter(pk__in=ids).delete()
    prompts, _ = TouchPrompt.objects.filter(contact=contact).delete()
    runs, _ = PlanRun.objects.filter(pk__in=run_ids).delete()
    cadence, _ = ContactCadence.objects.filter(contact=contact).delete()
    Activity.history.filter(Q(id__in=ids) | Q(contact_id=contact.pk)).delete()
    PlanRun.history.filter(Q(id__in=run_ids) | Q(contact_id=contact.pk)).delete()
    return deleted + prompts + runs + cadence


# --- My day ---------------------------------------------------------------------------------------------------


def my_day_panel_context(request: HttpRequest) -> dict[str, Any]:
    return my_day_activities(user=request.user)


register_timeline_source(TimelineSource(key=SOURCE, label="Activities", fetch=activity_timeline))
register_merge_handler(MergeHandler(key="activities", move=activities_move, restore=activities_restore, order=60))
register_personal_data_source(
    PersonalDataSource(key="activities", export=activities_export, erase=activities_erase, order=50)
)
register_panel(
    Panel(
        key="activities", title="Due today and overdue", template="activities/_myday_activities.html",
        context=my_day_panel_context, order=10,
    )
)  # fmt: skip
