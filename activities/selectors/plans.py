"""Reads for activity plans, their runs and the manager's adherence report, visibility applied."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.db.models import Avg, Count, DurationField, ExpressionWrapper, F, Prefetch, Q, QuerySet, Value
from django.db.models.functions import Greatest
from django.utils import timezone

from accounts.models import Membership, User
from accounts.selectors import user_managed_team_ids, user_team_ids
from activities.models import Activity, ActivityPlan, PlanAssignment, PlanRun, PlanStep, StepBranch
from crm.errors import NotFound


def is_planner(user: User) -> bool:
    return bool(user.is_authenticated and (user.is_admin_role or user.is_manager_role))


def directed_user_ids(user: User) -> QuerySet | None:
    """Users whose plan work ``user`` oversees: None means everyone (admins)."""
    if user.is_admin_role:
        return None
    return Membership.objects.filter(team_id__in=user_managed_team_ids(user)).values("user_id")


def plan_list(*, user: User) -> QuerySet[ActivityPlan]:
    """Plans are managers' templates: admins see all, managers company-wide and their teams' plans; reps none
    (a rep reaches a plan only through a run)."""
    if not is_planner(user):
        return ActivityPlan.objects.none()
    qs = ActivityPlan.objects.all()
    if not user.is_admin_role:
        # A manager sees company-wide plans, their teams' plans and their own.
        qs = qs.filter(Q(team__isnull=True) | Q(team_id__in=user_team_ids(user)) | Q(created_by=user))
    return qs.annotate(
        step_count=Count("steps", distinct=True),
        live_runs=Count("runs", filter=Q(runs__status__in=["active", "paused"]), distinct=True),
    ).select_related("team")


def plan_get(*, user: User, pk: int) -> ActivityPlan:
    plan = plan_list_with_steps(user=user).filter(pk=pk).first()
    if plan is None:
        raise NotFound("No such plan.")
    return plan


def step_as_dict(s: PlanStep) -> dict:
    """A step in the shape plan_create/plan_update take (needs next_step and branches__goto loaded)."""
    return {
        "key": s.key, "kind": s.kind, "subject_template": s.subject_template, "offset_days": s.offset_days,
        "offset_from": s.offset_from, "assignee_rule": s.assignee_rule, "named_user": s.named_user_id,
        "next_step": s.next_step.key if s.next_step_id else None, "is_final": s.is_final,
        "branches": {b.outcome: b.goto.key for b in s.branches.all()},
    }  # fmt: skip


def plan_steps_as_dicts(plan: ActivityPlan) -> list[dict]:
    """The step dicts plan_create/plan_update take, for editing an existing plan."""
    return [step_as_dict(s) for s in plan.steps.all()]


def plan_list_with_steps(*, user: User) -> QuerySet[ActivityPlan]:
    return plan_list(user=user).prefetch_related(
        Prefetch("steps", queryset=PlanStep.objects.select_related("named_user", "next_step").order_by("order")),
        Prefetch("steps__branches", queryset=StepBranch.objects.select_related("goto").order_by("outcome")),
    )


def plan_assignment_get(*, user: User, pk: int) -> PlanAssignment:
    qs = PlanAssignment.objects.select_related("plan", "assignee", "assigned_by").filter(pk=pk)
    if not user.is_admin_role:
        qs = qs.filter(Q(assigned_by=user) | Q(assignee=user))
    assignment = qs.first() if user.is_authenticated else None
    if assignment is None:
        raise NotFound("No such assignment.")
    return assignment


def plan_run_list(*, user: User, filters: dict | None = None) -> QuerySet[PlanRun]:
    """Runs worked by ``user``, plus those of the people a manager oversees; an admin sees all."""
    filters = filters or {}
    qs = PlanRun.objects.select_related("plan", "contact", "assignee", "current_step")
    if not user.is_authenticated:
        return qs.none()
    directed = directed_user_ids(user)
    if directed is not None:
        qs = qs.filter(Q(assignee=user) | Q(assignee_id__in=directed))
    if filters.get("status"):
        qs = qs.filter(status=filters["status"])
    if filters.get("plan"):
        qs = qs.filter(plan_id=filters["plan"])
    if filters.get("contact"):
        qs = qs.filter(contact_id=filters["contact"])
    if filters.get("assignee"):
        qs = qs.filter(assignee_id=filters["assignee"])
    return qs


def plan_run_get(*, user: User, pk: int) -> PlanRun:
    run = plan_run_list(user=user).filter(pk=pk).first()
    if run is None:
        raise NotFound("No such plan run.")
    return run


@dataclass(frozen=True)
class AdherenceRow:
    user_id: int
    user_name: str
    plan_id: int
    plan_name: str
    steps: int
    done: int
    on_time: int
    overdue_open: int
    avg_delay: dt.timedelta | None

    @property
    def on_time_percent(self) -> int | None:
        return round(100 * self.on_time / self.done) if self.done else None

    @property
    def avg_delay_hours(self) -> float | None:
        return round(self.avg_delay.total_seconds() / 3600, 1) if self.avg_delay is not None else None

    @property
    def avg_delay_display(self) -> str:
        hours = self.avg_delay_hours
        if hours is None:
            return "—"
        return f"{hours / 24:.1f} days" if hours >= 48 else f"{hours:.1f} h"


def adherence_report(*, user: User, plan_id: int | None = None) -> list[AdherenceRow]:
    """Per employee and plan: plan steps done on time, overdue open ones, done ones and the average delay.

    One GROUP BY over plan activities with FILTER clauses. Delay is how late a done step was (0 when on time),
    averaged over done steps. Managers see the members of the teams they manage, admins everyone; reps nothing.
    """
    if not is_planner(user):
        raise NotFound("No such page.")
    now = timezone.now()
    qs = Activity.objects.filter(plan_run__isnull=False, plan_step__isnull=False, due_at__isnull=False)
    directed = directed_user_ids(user)
    if directed is not None:
        qs = qs.filter(owner_id__in=directed)
    if plan_id:
        qs = qs.filter(plan_run__plan_id=plan_id)
    done = Q(status=Activity.Status.DONE)
    lateness = ExpressionWrapper(
        Greatest(F("done_at") - F("due_at"), Value(dt.timedelta(0))), output_field=DurationField()
    )
    rows = (
        qs.values(
            "owner_id",
            "owner__username",
            "owner__first_name",
            "owner__last_name",
            "plan_run__plan_id",
            "plan_run__plan__name",
        )
        .annotate(
            steps=Count("id", filter=~Q(status=Activity.Status.CANCELLED)),
            done=Count("id", filter=done),
            on_time=Count("id", filter=done & Q(done_at__lte=F("due_at"))),
            overdue_open=Count("id", filter=Q(status=Activity.Status.OPEN, due_at__lt=now)),
            avg_delay=Avg(lateness, filter=done & Q(done_at__isnull=False)),
        )
        .order_by("owner__username", "plan_run__plan__name")
    )
    return [
        AdherenceRow(
            user_id=r["owner_id"],
            user_name=(f"{r['owner__first_name']} {r['owner__last_name']}".strip() or r["owner__username"]),
            plan_id=r["plan_run__plan_id"],
            plan_name=r["plan_run__plan__name"],
            steps=r["steps"],
            done=r["done"],
            on_time=r["on_time"],
            overdue_open=r["overdue_open"],
            avg_delay=r["avg_delay"],
        )
        for r in rows
    ]
