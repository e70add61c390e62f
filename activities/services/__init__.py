"""Writes for activities: create, complete, cancel, skip, reassign.

Completing an activity is where the rest of the CRM hears about it: the contact's ``last_touch_at`` moves, a call,
meeting or in-person activity is recorded in the contact's conversation thread (``record_in_thread``), and a
plan run moves on to its next step (activities.services.plans).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from accounts.models import User
from accounts.selectors import can_see, user_team_ids
from activities.models import Activity, Kind
from contacts.models import Company, Contact
from crm.errors import DomainError

# Kinds that are conversations with the customer: once done they belong in the contact's thread and timeline.
THREAD_KINDS = {Kind.CALL: "call", Kind.MEETING: "meeting", Kind.IN_PERSON: "in_person"}
PLAN_DRIVEN_STATUSES = (Activity.Status.DONE, Activity.Status.SKIPPED)


def _check_owner_sees(owner: User, contact: Contact | None, company: Company | None) -> None:
    if contact is not None and not can_see(owner, contact):
        raise DomainError(
            f"{owner} cannot see {contact.display_name}; assign the activity to someone who can.",
            fields={"owner": ["This person cannot see the contact."]},
            code="assignee_cannot_see_contact",
        )
    if company is not None and not can_see(owner, company):
        raise DomainError(
            f"{owner} cannot see {company.name}.",
            fields={"owner": ["This person cannot see the company."]},
            code="assignee_cannot_see_company",
        )


def _team_for(owner: User) -> Any:
    team_ids = user_team_ids(owner)
    return team_ids[0] if team_ids else None


@transaction.atomic
def activity_create(
    *,
    actor: User,
    subject: str,
    kind: str = Kind.TASK,
    owner: User | None = None,
    contact: Contact | None = None,
    company: Company | None = None,
    due_at: dt.datetime | None = None,
    duration_minutes: int | None = None,
    location: str = "",
    priority: str = Activity.Priority.NORMAL,
    notes: str = "",
    plan_run: Any = None,
    plan_step: Any = None,
) -> Activity:
    """Create an activity assigned to ``owner`` (default: the actor). The assignee must be able to see the
    contact and company it is about: an activity nobody can open is a silent failure."""
    owner = owner or actor
    if not owner.is_active:
        raise DomainError(f"{owner} is deactivated; choose someone else.", fields={"owner": ["Deactivated user."]})
    _check_owner_sees(owner, contact, company)
    if company is None and contact is not None:
        company = contact.company
    activity = Activity(
        kind=kind, subject=subject.strip(), owner=owner, team_id=_team_for(owner), contact=contact, company=company,
        created_by=actor, due_at=due_at, duration_minutes=duration_minutes, location=location, priority=priority,
        notes=notes, plan_run=plan_run, plan_step=plan_step,
    )  # fmt: skip
    activity.full_clean()
    activity.save()
    return activity


ACTIVITY_EDITABLE = (
    "kind",
    "subject",
    "notes",
    "due_at",
    "duration_minutes",
    "location",
    "priority",
    "contact",
    "company",
)


@transaction.atomic
def activity_update(*, activity: Activity, actor: User, **data: Any) -> Activity:
    unknown = set(data) - set(ACTIVITY_EDITABLE)
    if unknown:
        raise DomainError("These fields cannot be changed here.", fields={k: ["Cannot be set."] for k in unknown})
    for key, value in data.items():
        setattr(activity, key, value)
    _check_owner_sees(activity.owner, activity.contact, activity.company)
    activity.full_clean()
    activity.save()
    return activity


def _require_open(activity: Activity) -> None:
    if activity.status != Activity.Status.OPEN:
        raise DomainError(
            f"This activity is already {activity.get_status_display().lower()}.", code="activity_not_open"
        )


def record_in_thread(*, activity: Activity) -> None:
    """Record a completed call, meeting or in-person activity as a message in the contact's thread, so it shows
    there and on the timeline. The one hook between activities and threads; threads makes it idempotent (one
    message per activity, however often this runs)."""
    if activity.kind not in THREAD_KINDS or activity.contact_id is None:
        return
    from threads.services import message_record_activity

    message_record_activity(activity=activity, channel=THREAD_KINDS[activity.kind])


def _touch_contact(activity: Activity) -> None:
    if activity.contact_id is None or activity.done_at is None:
        return
    # Only forwards: completing an old activity late must not make a recent touch look older.
    Contact.objects.filter(pk=activity.contact_id).filter(
        Q(last_touch_at__isnull=True) | Q(last_touch_at__lt=activity.done_at)
    ).update(last_touch_at=activity.done_at)


def _advance_plan(activity: Activity) -> None:
    if activity.plan_run_id is None:
        return
    from activities.services.plans import plan_run_step_done

    plan_run_step_done(activity=activity)


@transaction.atomic
def activity_complete(*, activity: Activity, actor: User, outcome: str = "", notes: str | None = None) -> Activity:
    """Mark done with an outcome (for calls: reached, no_answer, left_voicemail, wrong_number, or free text)."""
    activity = Activity.objects.select_for_update().get(pk=activity.pk)
    _require_open(activity)
    activity.status = Activity.Status.DONE
    activity.outcome = outcome.strip()[:64]
    if notes is not None:
        activity.notes = notes
    activity.done_at = timezone.now()
    activity.save()
    _touch_contact(activity)
    record_in_thread(activity=activity)
    _advance_plan(activity)
    return activity


@transaction.atomic
def activity_skip(*, activity: Activity, actor: User) -> Activity:
    """Skip a step without doing it: a plan run moves on as if it were done with no outcome."""
    activity = Activity.objects.select_for_update().get(pk=activity.pk)
    _require_open(activity)
    activity.status = Activity.Status.SKIPPED
    activity.done_at = timezone.now()
    activity.save()
    _advance_plan(activity)
    return activity


@transaction.atomic
def activity_cancel(*, activity: Activity, actor: User) -> Activity:
    activity = Activity.objects.select_for_update().get(pk=activity.pk)
    _require_open(activity)
    activity.status = Activity.Status.CANCELLED
    activity.save()
    return activity


@transaction.atomic
def activity_reassign(*, activity: Activity, actor: User, owner: User) -> Activity:
    _check_owner_sees(owner, activity.contact, activity.company)
    activity.owner = owner
    activity.team_id = _team_for(owner)
    activity.save()
    return activity


@transaction.atomic
def activities_reassign_all(*, from_user: User, to_user: User, actor: User) -> int:
    """Hand every open activity of ``from_user`` to ``to_user`` (someone leaves the team). One UPDATE."""
    if from_user.pk == to_user.pk:
        raise DomainError("Choose a different person to take over.")
    if not to_user.is_active:
        raise DomainError(f"{to_user} is deactivated; choose someone else.")
    return Activity.objects.filter(owner=from_user, status=Activity.Status.OPEN).update(
        owner=to_user, team_id=_team_for(to_user), updated_at=timezone.now()
    )


def open_activity_count(*, user: User) -> int:
    return Activity.objects.filter(owner=user, status=Activity.Status.OPEN).count()
