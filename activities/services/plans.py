"""Writes for activity plans: define (with validation), assign to contacts, move runs along, pause/stop/cancel.

A plan is a small directed graph of steps. A run walks it: each step becomes one Activity; when that activity is
completed or skipped, activities.services calls :func:`plan_run_step_done`, which picks the next step (the branch
matching the outcome, else ``next_step``, else the following step in order) and creates its activity.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable
from typing import Any

from django.db import connection, transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from accounts.models import Membership, User, Visibility
from accounts.selectors import user_managed_team_ids, visible
from activities.models import Activity, ActivityPlan, Kind, PlanAssignment, PlanRun, PlanStep, StepBranch
from contacts.models import Contact, SavedView
from crm.errors import DomainError, NotFound
from crm.sql import array_literal, int_array

# Assignments up to this many contacts run inside the request; larger ones go to Celery with a progress bar.
INLINE_LIMIT = 200
# Contacts per transaction in the background path: big enough for few round trips, small enough for short locks.
CHUNK_SIZE = 1000
# A step due on a day is due by the end of that working day, so "done that day" counts as on time.
DUE_TIME = dt.time(17, 0)

LIVE_STATUSES = (PlanRun.Status.ACTIVE, PlanRun.Status.PAUSED)
_PLACEHOLDER_RE = re.compile(r"\{([^{}]*)\}")
_PLACEHOLDERS = {"contact.first_name", "contact.last_name", "contact.name"}
_KEY_RE = re.compile(r"^[-a-zA-Z0-9_]+$")


# --- Permissions ---


def _require_planner(actor: User) -> None:
    if not (actor.is_admin_role or actor.is_manager_role):
        raise DomainError("Only managers and admins can define and assign activity plans.", code="forbidden")


def _managed_user_ids(actor: User) -> set[int]:
    managed = user_managed_team_ids(actor)
    return set(Membership.objects.filter(team_id__in=managed).values_list("user_id", flat=True)) | {actor.pk}


def _check_can_direct(actor: User, user: User) -> None:
    """Managers direct the members of the teams they manage; admins everyone."""
    if actor.is_admin_role:
        return
    _require_planner(actor)
    if user.pk not in _managed_user_ids(actor):
        raise DomainError(f"{user} is not in a team you manage.", fields={"assignee": ["Not in a team you manage."]})


def _check_can_manage_run(actor: User, run: PlanRun) -> None:
    if actor.is_admin_role or run.assignee_id == actor.pk:
        return
    if run.assignee_id not in _managed_user_ids(actor):
        raise NotFound("No such plan run.")


# --- Definition ---


def _step_label(step: dict[str, Any], index: int) -> str:
    return f"Step '{step.get('key') or index + 1}'"


def _clean_steps(steps: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Validate step dicts; return normalized copies. Errors name the step and the field."""
    if not steps:
        raise DomainError("A plan needs at least one step.", fields={"steps": ["Add at least one step."]})
    fields: dict[str, list[str]] = {}

    def err(index: int, name: str, message: str) -> None:
        fields.setdefault(f"steps.{index}.{name}", []).append(message)

    cleaned: list[dict[str, Any]] = []
    seen: set[str] = set()
    for i, raw in enumerate(steps):
        label = _step_label(raw, i)
        key = str(raw.get("key") or "").strip()
        if not key or not _KEY_RE.match(key):
            err(i, "key", f"{label}: give the step a key of letters, digits, '-' or '_'.")
        elif key in seen:
            err(i, "key", f"{label}: the key '{key}' is used by another step.")
        seen.add(key)
        kind = raw.get("kind") or Kind.CALL
        if kind not in Kind.values:
            err(i, "kind", f"{label}: unknown kind '{kind}'.")
        subject = str(raw.get("subject_template") or "").strip()
        if not subject:
            err(i, "subject_template", f"{label}: the subject is required.")
        for placeholder in _PLACEHOLDER_RE.findall(subject):
            if placeholder not in _PLACEHOLDERS:
                allowed = ", ".join("{" + p + "}" for p in sorted(_PLACEHOLDERS))
                err(i, "subject_template", f"{label}: unknown placeholder {{{placeholder}}}; use {allowed}.")
        try:
            offset = int(raw.get("offset_days") or 0)
        except (TypeError, ValueError):
            err(i, "offset_days", f"{label}: the offset must be a whole number of days.")
            offset = 0
        if offset < 0:
            err(i, "offset_days", f"{label}: the offset cannot be negative ({offset} days).")
        offset_from = raw.get("offset_from") or PlanStep.OffsetFrom.PREVIOUS
        if offset_from not in PlanStep.OffsetFrom.values:
            err(i, "offset_from", f"{label}: unknown offset base '{offset_from}'.")
        rule = raw.get("assignee_rule") or PlanStep.Assignee.PLAN_ASSIGNEE
        if rule not in PlanStep.Assignee.values:
            err(i, "assignee_rule", f"{label}: unknown assignee rule '{rule}'.")
        named = raw.get("named_user")
        if isinstance(named, int | str) and str(named).strip():
            named = User.objects.filter(pk=named, is_active=True).first()
            if named is None:
                err(i, "named_user", f"{label}: no such active user.")
        elif not isinstance(named, User):
            named = None
        if rule == PlanStep.Assignee.NAMED_USER and named is None:
            err(i, "named_user", f"{label}: choose the named user this step is assigned to.")
        branches = {str(k).strip(): str(v).strip() for k, v in (raw.get("branches") or {}).items() if str(k).strip()}
        cleaned.append({
            "key": key, "kind": kind, "subject_template": subject, "offset_days": max(offset, 0),
            "offset_from": offset_from, "assignee_rule": rule,
            "named_user": named if rule == PlanStep.Assignee.NAMED_USER else None,
            "next_step": (str(raw.get("next_step") or "").strip() or None), "is_final": bool(raw.get("is_final")),
            "branches": branches,
        })  # fmt: skip
    for i, step in enumerate(cleaned):
        label = _step_label(step, i)
        if step["next_step"] and step["next_step"] not in seen:
            err(i, "next_step", f"{label}: the next step '{step['next_step']}' does not exist.")
        for outcome, target in step["branches"].items():
            if target not in seen:
                err(i, "branches", f"{label}: the branch '{outcome}' goes to '{target}', which does not exist.")
    if fields:
        first = next(iter(fields.values()))[0]
        raise DomainError(first, fields=fields)
    cycle = _find_cycle(cleaned)
    if cycle:
        index = next(i for i, s in enumerate(cleaned) if s["key"] == cycle[0])
        message = f"Step '{cycle[0]}' leads back to itself via {' → '.join(cycle)}."
        raise DomainError(message, fields={f"steps.{index}.branches": [message]}, code="cycle")
    return cleaned


def _successors(steps: list[dict[str, Any]]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for i, step in enumerate(steps):
        targets = [] if step["is_final"] else list(step["branches"].values())
        if not step["is_final"]:
            if step["next_step"]:
                targets.append(step["next_step"])
            elif i + 1 < len(steps):
                targets.append(steps[i + 1]["key"])
        out[step["key"]] = list(dict.fromkeys(targets))
    return out


def _find_cycle(steps: list[dict[str, Any]]) -> list[str] | None:
    """The first cycle found by depth-first search, as [a, b, ..., a]; None for an acyclic plan."""
    graph = _successors(steps)
    state: dict[str, int] = {}  # 1 = on the current path, 2 = fully explored
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in graph.get(node, []):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        path.pop()
        state[node] = 2
        return None

    for step in steps:
        if step["key"] not in state:
            found = visit(step["key"])
            if found:
                return found
    return None


def _write_steps(plan: ActivityPlan, cleaned: list[dict[str, Any]]) -> None:
    by_key: dict[str, PlanStep] = {}
    for order, data in enumerate(cleaned):
        by_key[data["key"]] = PlanStep.objects.create(
            plan=plan, key=data["key"], order=order, kind=data["kind"], subject_template=data["subject_template"],
            offset_days=data["offset_days"], offset_from=data["offset_from"], assignee_rule=data["assignee_rule"],
            named_user=data["named_user"], is_final=data["is_final"],
        )  # fmt: skip
    for data in cleaned:
        step = by_key[data["key"]]
        if data["next_step"]:
            step.next_step = by_key[data["next_step"]]
            step.save(update_fields=["next_step"])
        StepBranch.objects.bulk_create(
            StepBranch(step=step, outcome=outcome, goto=by_key[target]) for outcome, target in data["branches"].items()
        )


def _clean_holidays(holidays: Iterable[dt.date | str]) -> list[dt.date]:
    out: list[dt.date] = []
    for value in holidays:
        if isinstance(value, dt.date):
            out.append(value)
            continue
        try:
            out.append(dt.date.fromisoformat(str(value).strip()))
        except ValueError:
            message = f"'{value}' is not a date (use YYYY-MM-DD)."
            raise DomainError(message, fields={"holidays": ["Not a date."]}) from None
    return sorted(set(out))


@transaction.atomic
def plan_create(
    *,
    actor: User,
    name: str,
    description: str = "",
    team: Any = None,
    working_days_only: bool = True,
    holidays: Iterable[dt.date | str] = (),
    steps: list[dict[str, Any]],
) -> ActivityPlan:
    _require_planner(actor)
    name = (name or "").strip()
    if not name:
        raise DomainError("Give the plan a name.", fields={"name": ["This field is required."]})
    cleaned = _clean_steps(steps)
    plan = ActivityPlan.objects.create(
        name=name[:200], description=description or "", team=team, created_by=actor,
        working_days_only=working_days_only, holidays=_clean_holidays(holidays),
    )  # fmt: skip
    _write_steps(plan, cleaned)
    return plan


@transaction.atomic
def plan_update(
    *,
    plan: ActivityPlan,
    actor: User,
    name: str | None = None,
    description: str | None = None,
    team: Any = ...,
    working_days_only: bool | None = None,
    holidays: Iterable[dt.date | str] | None = None,
    is_active: bool | None = None,
    steps: list[dict[str, Any]] | None = None,
) -> ActivityPlan:
    """Change a plan; ``steps`` replaces all steps at once. Live runs move to the new step with the same key."""
    _require_planner(actor)
    plan = ActivityPlan.objects.select_for_update().get(pk=plan.pk)
    if name is not None:
        if not name.strip():
            raise DomainError("Give the plan a name.", fields={"name": ["This field is required."]})
        plan.name = name.strip()[:200]
    if description is not None:
        plan.description = description
    if team is not ...:
        plan.team = team
    if working_days_only is not None:
        plan.working_days_only = working_days_only
    if holidays is not None:
        plan.holidays = _clean_holidays(holidays)
    if is_active is not None:
        plan.is_active = is_active
    plan.save()
    if steps is not None:
        cleaned = _clean_steps(steps)
        old_keys = dict(plan.steps.values_list("pk", "key"))
        # Old steps stay referenced by past activities (SET_NULL keeps history readable); rename them out of the
        # unique (plan, key) space, write the new graph, then repoint live runs and open activities by key.
        old_steps = list(plan.steps.all())
        StepBranch.objects.filter(step__plan=plan).delete()
        for step in old_steps:
            step.key = f"old-{step.pk}"
        PlanStep.objects.bulk_update(old_steps, ["key"])
        _write_steps(plan, cleaned)
        new_by_key = dict(plan.steps.exclude(pk__in=old_keys).values_list("key", "pk"))
        for old_pk, key in old_keys.items():
            new_pk = new_by_key.get(key)
            PlanRun.objects.filter(current_step_id=old_pk).update(current_step_id=new_pk)
            Activity.objects.filter(plan_step_id=old_pk).update(plan_step_id=new_pk)
        PlanStep.objects.filter(pk__in=old_keys).delete()
    return plan


# --- Dates ---


def plan_due_date(*, plan: ActivityPlan, base: dt.date, offset_days: int) -> dt.date:
    """``base`` + ``offset_days``; on a working-days plan only Monday-Friday outside ``plan.holidays`` count,
    and a step never falls due on a non-working day."""
    if not plan.working_days_only:
        return base + dt.timedelta(days=offset_days)
    holidays = set(plan.holidays or ())

    def working(day: dt.date) -> bool:
        return day.weekday() < 5 and day not in holidays

    day = base
    remaining = offset_days
    while remaining > 0:
        day += dt.timedelta(days=1)
        if working(day):
            remaining -= 1
    while not working(day):
        day += dt.timedelta(days=1)
    return day


def _due_at(day: dt.date) -> dt.datetime:
    return timezone.make_aware(dt.datetime.combine(day, DUE_TIME))


def render_subject(template: str, contact: Contact) -> str:
    values = {
        "contact.first_name": contact.first_name or "",
        "contact.last_name": contact.last_name or "",
        "contact.name": f"{contact.first_name or ''} {contact.last_name or ''}".strip(),
    }
    return _PLACEHOLDER_RE.sub(lambda m: values.get(m.group(1), m.group(0)), template)[:300]


def _step_owner_id(step: PlanStep, *, run_assignee_id: int, contact_owner_id: int | None) -> int:
    if step.assignee_rule == PlanStep.Assignee.NAMED_USER and step.named_user_id:
        return step.named_user_id
    if step.assignee_rule == PlanStep.Assignee.CONTACT_OWNER and contact_owner_id:
        return contact_owner_id
    return run_assignee_id


def _owner_teams(owner_ids: Iterable[int]) -> dict[int, int]:
    """Each owner's team, the one activities.services gives an activity it creates (the first membership)."""
    teams: dict[int, int] = {}
    for user_id, team_id in (
        Membership.objects.filter(user_id__in=set(owner_ids)).order_by("id").values_list("user_id", "team_id")
    ):
        teams.setdefault(user_id, team_id)
    return teams


def _step_activity(
    *, run: PlanRun, step: PlanStep, contact: Contact, due: dt.date, created_by_id: int | None,
    teams: dict[int, int] | None = None,
) -> Activity:  # fmt: skip
    owner_id = _step_owner_id(step, run_assignee_id=run.assignee_id, contact_owner_id=contact.owner_id)
    if teams is None:
        teams = _owner_teams([owner_id])
    return Activity(
        owner_id=owner_id, team_id=teams.get(owner_id), visibility=Visibility.TEAM, kind=step.kind,
        subject=render_subject(step.subject_template, contact), contact_id=contact.pk, due_at=_due_at(due),
        plan_run=run, plan_step=step, created_by_id=created_by_id,
    )  # fmt: skip


# --- Assignment ---


def _saved_view_contacts(view: SavedView, user: User) -> Any:
    from contacts.filters import ContactFilter
    from contacts.selectors import contact_search_ids

    filters = dict(view.filters or {})
    qs = visible(Contact.objects.all(), user)
    query = str(filters.pop("q", "") or "").strip()
    if query:
        qs = qs.filter(pk__in=contact_search_ids(user=user, query=query, limit=100_000))
    return ContactFilter(data=filters, queryset=qs).qs


@transaction.atomic
def plan_assign(
    *,
    plan: ActivityPlan,
    actor: User,
    assignee: User,
    contacts: Iterable[Contact] | None = None,
    contact_ids: Iterable[int] | None = None,
    saved_view: SavedView | None = None,
    start_on: dt.date | None = None,
) -> PlanAssignment:
    """Start ``plan`` for each target contact, worked by ``assignee``. Contacts the assignee cannot see, or that
    already run this plan, are skipped and counted. Small targets finish here; large ones in Celery."""
    _check_can_direct(actor, assignee)
    if not plan.is_active:
        raise DomainError("This plan is archived; reactivate it before assigning it.")
    if not assignee.is_active:
        raise DomainError(f"{assignee} is deactivated.", fields={"assignee": ["Deactivated user."]})
    targets = [t for t in (contacts, contact_ids, saved_view) if t is not None]
    if len(targets) != 1:
        raise DomainError("Choose one target: a contact, a list of contacts or a saved view.", fields={"target": [
            "Choose exactly one target."]})  # fmt: skip
    if not plan.steps.exists():
        raise DomainError("This plan has no steps.")
    if saved_view is not None:
        ids = sorted(_saved_view_contacts(saved_view, actor).values_list("pk", flat=True))
    else:
        requested = [c.pk for c in contacts] if contacts is not None else [int(i) for i in contact_ids or []]
        requested = list(dict.fromkeys(requested))
        if not requested:
            raise DomainError("Choose at least one contact.", fields={"contact_ids": ["No contacts given."]})
        if len(requested) == 1:
            contact = visible(Contact.objects.filter(pk=requested[0]), actor).first()
            if contact is None:
                raise NotFound("No such contact.")
            if not visible(Contact.objects.filter(pk=contact.pk), assignee).exists():
                raise DomainError(
                    f"{assignee} cannot see {contact}; share the contact with their team or choose someone else.",
                    fields={"assignee": ["Cannot see this contact."]}, code="assignee_cannot_see",
                )  # fmt: skip
            for step in plan.steps.filter(assignee_rule=PlanStep.Assignee.NAMED_USER).select_related("named_user"):
                if step.named_user and not visible(Contact.objects.filter(pk=contact.pk), step.named_user).exists():
                    raise DomainError(
                        f"Step “{step.subject_template}” is assigned to {step.named_user}, who cannot see {contact}; "
                        "share the contact with their team or change the step.",
                        fields={"named_user": ["Cannot see this contact."]}, code="named_user_cannot_see",
                    )  # fmt: skip
        # Ids the actor cannot see stay in the list: they are skipped (and counted) like any invisible contact.
        ids = requested
    assignment = PlanAssignment.objects.create(
        plan=plan, assignee=assignee, assigned_by=actor, contact_ids=ids, saved_view=saved_view,
        start_on=start_on or timezone.localdate(), total=len(ids), status=PlanAssignment.Status.QUEUED,
    )  # fmt: skip
    if len(ids) <= INLINE_LIMIT:
        _process(assignment, actor_id=actor.pk, chunk_size=max(len(ids), 1))
    else:
        from activities.tasks.plans import plan_assignment_task

        assignment_id = assignment.pk
        transaction.on_commit(lambda: plan_assignment_task.delay(assignment_id))
    return assignment


def _process(assignment: PlanAssignment, *, actor_id: int | None, chunk_size: int) -> None:
    """Run every remaining chunk. Each chunk commits with the progress counters (in the caller's transaction
    when inline), so a retried task resumes after the last committed chunk and creates nothing twice."""
    while True:
        with transaction.atomic():
            locked = PlanAssignment.objects.select_for_update().get(pk=assignment.pk)
            if locked.status in (PlanAssignment.Status.DONE, PlanAssignment.Status.FAILED):
                return
            chunk = locked.contact_ids[locked.processed : locked.processed + chunk_size]
            created = _assign_chunk(locked, chunk, actor_id=actor_id) if chunk else 0
            locked.processed += len(chunk)
            locked.created_runs += created
            locked.skipped += len(chunk) - created
            locked.status = PlanAssignment.Status.RUNNING
            if locked.processed >= locked.total:
                locked.status = PlanAssignment.Status.DONE
                locked.finished_at = timezone.now()
            locked.save(update_fields=["processed", "created_runs", "skipped", "status", "finished_at"])
            assignment.__dict__.update({k: getattr(locked, k) for k in (
                "processed", "created_runs", "skipped", "status", "finished_at")})  # fmt: skip
            if locked.status == PlanAssignment.Status.DONE:
                return


def _assign_chunk(assignment: PlanAssignment, contact_ids: list[int], *, actor_id: int | None) -> int:
    plan = assignment.plan
    steps = list(plan.steps.all())
    first = steps[0]
    assignee = assignment.assignee
    # Both must see the contact: the assignee works it, and a manager must not reach a contact through a rep
    # who happens to share it with a team the manager does not manage.
    targets = visible(Contact.objects.filter(pk__in=contact_ids), assignee)
    if assignment.assigned_by_id:
        targets = visible(targets, assignment.assigned_by)
    # A step assigned to a named user creates that user's activity: they must see the contact too.
    for named in {s.named_user for s in steps if s.assignee_rule == PlanStep.Assignee.NAMED_USER and s.named_user}:
        targets = visible(targets, named)
    contacts = {c.pk: c for c in targets.only("pk", "first_name", "last_name", "owner_id", "team_id")}
    if not contacts:
        return 0
    # The partial unique index (one live run per plan and contact) makes a second assignment, or a retried
    # chunk, insert nothing: ON CONFLICT DO NOTHING, then re-read which runs are new (they have no activity yet).
    PlanRun.objects.bulk_create(
        [
            PlanRun(plan=plan, assignment=assignment, contact_id=pk, assignee=assignee, current_step=first,
                    started_on=assignment.start_on)
            for pk in contacts
        ],
        ignore_conflicts=True,
    )  # fmt: skip
    new_runs = list(
        PlanRun.objects.filter(assignment=assignment, contact_id__in=list(contacts), status=PlanRun.Status.ACTIVE)
        .annotate(has_activity=Exists(Activity.objects.filter(plan_run=OuterRef("pk"))))
        .filter(has_activity=False)
    )
    # The first step has no previous one: both offset bases mean the assignment's start date.
    due = plan_due_date(plan=plan, base=assignment.start_on, offset_days=first.offset_days)
    owner_ids = {
        _step_owner_id(first, run_assignee_id=assignee.pk, contact_owner_id=c.owner_id) for c in contacts.values()
    }
    teams = _owner_teams(owner_ids)
    Activity.objects.bulk_create(
        [_step_activity(run=run, step=first, contact=contacts[run.contact_id], due=due, created_by_id=actor_id,
                        teams=teams)
         for run in new_runs],
        batch_size=2000,
    )  # fmt: skip
    return len(new_runs)


def plan_assignment_process(*, assignment_id: int, chunk_size: int | None = None) -> PlanAssignment | None:
    """The background half of :func:`plan_assign` (called by the Celery task). Safe to run twice."""
    assignment = PlanAssignment.objects.select_related("plan", "assignee").filter(pk=assignment_id).first()
    if assignment is None or assignment.status in (PlanAssignment.Status.DONE, PlanAssignment.Status.FAILED):
        return assignment
    try:
        _process(assignment, actor_id=assignment.assigned_by_id, chunk_size=chunk_size or CHUNK_SIZE)
    except DomainError as exc:
        PlanAssignment.objects.filter(pk=assignment.pk).update(
            status=PlanAssignment.Status.FAILED, error=exc.message, finished_at=timezone.now()
        )
    assignment.refresh_from_db()
    return assignment


# --- Runs ---


def _next_step(step: PlanStep, outcome: str) -> PlanStep | None:
    if step.is_final:
        return None
    if outcome:
        branch = StepBranch.objects.filter(step=step, outcome=outcome).select_related("goto").first()
        if branch is not None:
            return branch.goto
    if step.next_step_id:
        return step.next_step
    return (
        PlanStep.objects.filter(plan_id=step.plan_id)
        .filter(Q(order__gt=step.order) | Q(order=step.order, pk__gt=step.pk))
        .order_by("order", "pk")
        .first()
    )


def _advance(run: PlanRun, activity: Activity) -> None:
    step = activity.plan_step
    nxt = _next_step(step, activity.outcome if activity.status == Activity.Status.DONE else "") if step else None
    if nxt is None:
        run.status = PlanRun.Status.COMPLETED
        run.current_step = None
        run.ended_at = timezone.now()
        run.save(update_fields=["status", "current_step", "ended_at"])
        return
    base = run.started_on if nxt.offset_from == PlanStep.OffsetFrom.PLAN_START else timezone.localdate()
    due = plan_due_date(plan=run.plan, base=base, offset_days=nxt.offset_days)
    contact = Contact.objects.only("pk", "first_name", "last_name", "owner_id", "team_id").get(pk=run.contact_id)
    new = _step_activity(run=run, step=nxt, contact=contact, due=due, created_by_id=activity.created_by_id)
    new.save()
    run.current_step = nxt
    run.save(update_fields=["current_step"])


@transaction.atomic
def plan_run_step_done(*, activity: Activity) -> PlanRun | None:
    """The run's current step is done (or skipped): go to the next step, or complete the run.

    Idempotent: an activity that is not the run's current step (already handled) changes nothing; a paused
    run waits, and :func:`plan_run_resume` moves it on.
    """
    if not activity.plan_run_id:
        return None
    run = PlanRun.objects.select_for_update().select_related("plan").get(pk=activity.plan_run_id)
    if run.status != PlanRun.Status.ACTIVE or run.current_step_id != activity.plan_step_id:
        return run
    if run.activities.filter(status=Activity.Status.OPEN, plan_step_id=run.current_step_id).exists():
        return run
    _advance(run, activity)
    return run


def _get_run_for_update(run: PlanRun) -> PlanRun:
    return PlanRun.objects.select_for_update().select_related("plan").get(pk=run.pk)


@transaction.atomic
def plan_run_pause(*, run: PlanRun, actor: User) -> PlanRun:
    """Pausing keeps the open activity but the run does not advance until it is resumed."""
    run = _get_run_for_update(run)
    _check_can_manage_run(actor, run)
    if run.status != PlanRun.Status.ACTIVE:
        raise DomainError(f"Only an active run can be paused; this one is {run.get_status_display().lower()}.")
    run.status = PlanRun.Status.PAUSED
    run.save(update_fields=["status"])
    return run


@transaction.atomic
def plan_run_resume(*, run: PlanRun, actor: User) -> PlanRun:
    run = _get_run_for_update(run)
    _check_can_manage_run(actor, run)
    if run.status != PlanRun.Status.PAUSED:
        raise DomainError(f"Only a paused run can be resumed; this one is {run.get_status_display().lower()}.")
    run.status = PlanRun.Status.ACTIVE
    run.save(update_fields=["status"])
    # The current step may have been completed while the run was paused: move on now.
    last = run.activities.filter(plan_step_id=run.current_step_id).order_by("-id").first()
    if last is not None and last.status in (Activity.Status.DONE, Activity.Status.SKIPPED):
        _advance(run, last)
    return run


@transaction.atomic
def plan_run_cancel(*, run: PlanRun, actor: User) -> PlanRun:
    run = _get_run_for_update(run)
    _check_can_manage_run(actor, run)
    if run.status not in LIVE_STATUSES:
        raise DomainError(f"This run has already ended ({run.get_status_display().lower()}).")
    run.activities.filter(status=Activity.Status.OPEN).update(status=Activity.Status.CANCELLED)
    run.status = PlanRun.Status.CANCELLED
    run.ended_at = timezone.now()
    run.save(update_fields=["status", "ended_at"])
    return run


@transaction.atomic
def plan_run_reassign(*, run: PlanRun, actor: User, assignee: User) -> PlanRun:
    """Hand one run (and its open activities owned by the old assignee) to someone else."""
    run = _get_run_for_update(run)
    _check_can_manage_run(actor, run)
    _check_can_direct(actor, assignee)
    if not visible(Contact.objects.filter(pk=run.contact_id), assignee).exists():
        raise DomainError(f"{assignee} cannot see this contact.", fields={"assignee": ["Cannot see the contact."]})
    run.activities.filter(status=Activity.Status.OPEN, owner_id=run.assignee_id).update(owner=assignee)
    run.assignee = assignee
    run.save(update_fields=["assignee"])
    return run


@transaction.atomic
def plan_runs_reassign_all(*, from_user: User, to_user: User, actor: User) -> int:
    """Move every live run of ``from_user`` (someone leaving the team) and their open plan activities to
    ``to_user``. Returns the number of runs moved."""
    _check_can_direct(actor, from_user)
    _check_can_direct(actor, to_user)
    if from_user.pk == to_user.pk:
        raise DomainError("Choose a different person to take over the plans.")
    runs = PlanRun.objects.filter(assignee=from_user, status__in=LIVE_STATUSES)
    Activity.objects.filter(plan_run__in=runs.values("pk"), status=Activity.Status.OPEN, owner=from_user).update(
        owner=to_user
    )
    return runs.update(assignee=to_user)


def plan_runs_stop_for_contacts(*, contact_ids: list[int], reason: str = "The contact replied") -> int:
    """Stop these contacts' live runs and cancel their open plan activities: one lookup, then (only if any run is
    live) two updates, whatever the number of contacts. Idempotent: stopped runs are not live."""
    with connection.cursor() as cursor:
        # One array parameter rather than an IN list: ingest calls this after every batch with up to thousands of
        # contacts, and most have no live run, so this one index probe per contact is usually all there is.
        cursor.execute(
            "SELECT id FROM activities_planrun WHERE contact_id = ANY(%s::bigint[]) AND status = ANY(%s::varchar[])",
            [int_array(contact_ids), array_literal([str(s) for s in LIVE_STATUSES])],
        )
        run_ids = [row[0] for row in cursor.fetchall()]
    if not run_ids:
        return 0
    with transaction.atomic():
        live = PlanRun.objects.filter(pk__in=run_ids, status__in=LIVE_STATUSES)
        Activity.objects.filter(plan_run__in=live.values("pk"), status=Activity.Status.OPEN).update(
            status=Activity.Status.CANCELLED
        )
        return live.update(status=PlanRun.Status.STOPPED, stop_reason=reason, ended_at=timezone.now())


def plan_runs_stop_for_contact(*, contact_id: int, reason: str = "The contact replied") -> int:
    return plan_runs_stop_for_contacts(contact_ids=[contact_id], reason=reason)


__all__ = [
    "CHUNK_SIZE", "INLINE_LIMIT", "plan_assign", "plan_assignment_process", "plan_create", "plan_due_date",
    "plan_run_cancel", "plan_run_pause", "plan_run_reassign", "plan_run_resume", "plan_run_step_done",
    "plan_runs_reassign_all", "plan_runs_stop_for_contact", "plan_runs_stop_for_contacts", "plan_update",
    "render_subject",
]  # fmt: skip
