"""Reads for activities. Visibility is the accounts policy: an activity is owned by its assignee."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.db.models import QuerySet
from django.utils import timezone

from accounts.models import User
from accounts.selectors import visible
from activities.models import Activity
from crm.errors import NotFound


def activity_list(*, user: User, filters: dict[str, Any] | None = None) -> QuerySet[Activity]:
    filters = filters or {}
    qs = visible(Activity.objects.all(), user).select_related("contact", "company", "owner")
    if filters.get("status"):
        qs = qs.filter(status=filters["status"])
    if filters.get("kind"):
        qs = qs.filter(kind=filters["kind"])
    if filters.get("owner"):
        qs = qs.filter(owner_id=filters["owner"])
    if filters.get("contact"):
        qs = qs.filter(contact_id=filters["contact"])
    if filters.get("due_before"):
        qs = qs.filter(due_at__lt=filters["due_before"])
    if filters.get("due_after"):
        qs = qs.filter(due_at__gte=filters["due_after"])
    return qs


def activity_get(*, user: User, pk: int) -> Activity:
    activity = visible(Activity.objects.all(), user).select_related("contact", "company", "owner").filter(pk=pk).first()
    if activity is None:
        raise NotFound("No such activity.")
    return activity


def _end_of_today(now: dt.datetime) -> dt.datetime:
    local = timezone.localtime(now)
    return local.replace(hour=0, minute=0, second=0, microsecond=0) + dt.timedelta(days=1)


def my_day_activities(*, user: User, now: dt.datetime | None = None, limit: int = 50) -> dict[str, list[Activity]]:
    """The user's own open activities: overdue (due before now) and the rest of today. Two index range scans on
    the partial (owner, due_at) index of open activities, however many activities the user has."""
    now = now or timezone.now()
    mine = Activity.objects.filter(owner=user, status=Activity.Status.OPEN).select_related(
        "contact", "company", "owner"
    )
    overdue = list(mine.filter(due_at__lt=now).order_by("-due_at", "-id")[:limit])
    today = list(mine.filter(due_at__gte=now, due_at__lt=_end_of_today(now)).order_by("due_at", "id")[:limit])
    return {"overdue": overdue, "today": today}


def contact_activities(*, user: User, contact_id: int, limit: int = 20) -> list[Activity]:
    qs = visible(Activity.objects.filter(contact_id=contact_id), user).select_related("owner")
    return list(qs.order_by("-due_at", "-id")[:limit])
