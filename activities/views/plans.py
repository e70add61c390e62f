"""Pages: activity plans (list, builder), assignment with a progress bar, and the manager's adherence report."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import URLPattern, path
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_http_methods, require_POST

from accounts.selectors import team_list, user_list
from activities.models import ActivityPlan, Kind, PlanRun, PlanStep
from activities.selectors import plans as selectors
from activities.services import plans as services
from contacts.selectors.saved_views import saved_view_list
from crm.errors import DomainError

STEP_FIELDS = ("key", "kind", "subject_template", "offset_days", "offset_from", "assignee_rule", "named_user",
               "next_step", "branches")  # fmt: skip
EXTRA_ROWS = 2


def _require_planner(request: HttpRequest) -> None:
    # Plans are managers' tools: for a rep the pages do not exist.
    if not selectors.is_planner(request.user):
        raise Http404("No such page.")


def _branches_text(branches: dict[str, str]) -> str:
    return "\n".join(f"{outcome} = {target}" for outcome, target in branches.items())


def _parse_branches(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in text.replace(",", "\n").splitlines():
        if "=" in line:
            outcome, _, target = line.partition("=")
            out[outcome.strip()] = target.strip()
        elif line.strip():
            out[line.strip()] = ""
    return out


def _posted_steps(request: HttpRequest) -> list[dict[str, Any]]:
    count = min(int(request.POST.get("step_count") or 0), 50)
    steps = []
    for i in range(count):
        row = {name: request.POST.get(f"steps-{i}-{name}", "").strip() for name in STEP_FIELDS}
        row["is_final"] = bool(request.POST.get(f"steps-{i}-is_final"))
        if not (row["key"] or row["subject_template"]):
            continue  # an untouched blank row
        row["branches"] = _parse_branches(row["branches"])
        steps.append(row)
    return steps


def _step_rows(steps: list[dict[str, Any]], fields: dict[str, list[str]], extra: int) -> list[dict[str, Any]]:
    rows = []
    blank = {"key": "", "kind": Kind.CALL, "subject_template": "", "offset_days": 0, "offset_from": "previous",
             "assignee_rule": "plan_assignee", "named_user": None, "next_step": "", "is_final": False,
             "branches": {}}  # fmt: skip
    for i, step in enumerate([*steps, *[dict(blank) for _ in range(extra)]]):
        errors = [m for name, msgs in fields.items() if name.startswith(f"steps.{i}.") for m in msgs]
        rows.append({**step, "index": i, "number": i + 1, "branches_text": _branches_text(step.get("branches") or {}),
                     "named_user": str(step.get("named_user") or ""), "errors": errors})  # fmt: skip
    return rows


def _builder(request: HttpRequest, plan: ActivityPlan | None) -> HttpResponse:
    _require_planner(request)
    error = ""
    fields: dict[str, list[str]] = {}
    if plan is not None:
        data = {"name": plan.name, "description": plan.description, "team": str(plan.team_id or ""),
                "working_days_only": plan.working_days_only,
                "holidays": ", ".join(d.isoformat() for d in plan.holidays)}  # fmt: skip
        steps = selectors.plan_steps_as_dicts(plan)
    else:
        data = {"name": "", "description": "", "team": "", "working_days_only": True, "holidays": ""}
        steps = []
    extra = EXTRA_ROWS if steps else 3
    if request.method == "POST":
        data = {"name": request.POST.get("name", ""), "description": request.POST.get("description", ""),
                "team": request.POST.get("team", ""), "working_days_only": bool(request.POST.get("working_days_only")),
                "holidays": request.POST.get("holidays", "")}  # fmt: skip
        steps = _posted_steps(request)
        team = team_list(actor=request.user).filter(pk=data["team"]).first() if data["team"].isdigit() else None
        holidays = [h for h in data["holidays"].replace("\n", ",").split(",") if h.strip()]
        kwargs = {"actor": request.user, "name": data["name"], "description": data["description"], "team": team,
                  "working_days_only": data["working_days_only"], "holidays": holidays, "steps": steps}  # fmt: skip
        if request.POST.get("add_step"):
            extra = EXTRA_ROWS + 1
        else:
            try:
                if plan is None:
                    plan = services.plan_create(**kwargs)
                    messages.success(request, f"Plan “{plan.name}” created.")
                else:
                    plan = services.plan_update(plan=plan, **kwargs)
                    messages.success(request, f"Plan “{plan.name}” saved.")
                return redirect("activities:plan_list")
            except DomainError as exc:
                error, fields = exc.message, exc.fields
                extra = 0
    context = {
        "plan": plan, "data": data, "rows": _step_rows(steps, fields, extra), "error": error,
        "field_errors": {k: v for k, v in fields.items() if not k.startswith("steps.")},
        "kinds": Kind.choices, "offset_froms": PlanStep.OffsetFrom.choices, "rules": PlanStep.Assignee.choices,
        "users": user_list(actor=request.user).order_by("username"), "teams": team_list(actor=request.user),
        "page_title": f"Edit plan · {plan.name}" if plan else "New activity plan",
    }  # fmt: skip
    return render(request, "activities/plan_builder.html", context, status=400 if error else 200)


@login_required
def plan_list(request: HttpRequest) -> HttpResponse:
    _require_planner(request)
    plans = selectors.plan_list(user=request.user)
    return render(request, "activities/plan_list.html", {"plans": plans, "page_title": "Activity plans"})


@login_required
@require_http_methods(["GET", "POST"])
def plan_create(request: HttpRequest) -> HttpResponse:
    return _builder(request, None)


@login_required
@require_http_methods(["GET", "POST"])
def plan_edit(request: HttpRequest, pk: int) -> HttpResponse:
    _require_planner(request)
    return _builder(request, selectors.plan_get(user=request.user, pk=pk))


@login_required
@require_http_methods(["GET", "POST"])
def plan_assign(request: HttpRequest, pk: int) -> HttpResponse:
    _require_planner(request)
    plan = selectors.plan_get(user=request.user, pk=pk)
    users = user_list(actor=request.user).order_by("username")
    views = saved_view_list(user=request.user)
    data = {"assignee": "", "target": "contact", "contact_id": request.GET.get("contact", ""), "contact_ids": "",
            "saved_view": ""}  # fmt: skip
    error = ""
    if request.method == "POST":
        data = {k: request.POST.get(k, "").strip() for k in data}
        try:
            assignee = users.filter(pk=data["assignee"]).first() if data["assignee"].isdigit() else None
            if assignee is None:
                raise DomainError("Choose the employee who will work this plan.")
            target: dict[str, Any] = {}
            if data["target"] == "saved_view":
                view = views.filter(pk=data["saved_view"]).first() if data["saved_view"].isdigit() else None
                if view is None:
                    raise DomainError("Choose a saved view.")
                target["saved_view"] = view
            else:
                raw = data["contact_id"] if data["target"] == "contact" else data["contact_ids"]
                tokens = [t for t in raw.replace(",", " ").split() if t]
                if not tokens or not all(t.isdigit() for t in tokens):
                    raise DomainError("Enter contact ids as numbers, separated by spaces or commas.")
                target["contact_ids"] = [int(t) for t in tokens]
            assignment = services.plan_assign(plan=plan, actor=request.user, assignee=assignee, **target)
        except DomainError as exc:
            error = exc.message
        else:
            messages.success(request, f"Plan “{plan.name}” assigned to {assignee}.")
            return redirect("activities:plan_assignment", pk=assignment.pk)
    context = {"plan": plan, "users": users, "views": views, "data": data, "error": error,
               "page_title": f"Assign · {plan.name}"}  # fmt: skip
    return render(request, "activities/plan_assign.html", context, status=400 if error else 200)


@login_required
def plan_assignment(request: HttpRequest, pk: int) -> HttpResponse:
    assignment = selectors.plan_assignment_get(user=request.user, pk=pk)
    context = {"assignment": assignment, "page_title": f"Assigning · {assignment.plan.name}"}
    if request.htmx:
        return render(request, "activities/_plan_assignment_status.html", context)
    return render(request, "activities/plan_assignment.html", context)


@login_required
def adherence(request: HttpRequest) -> HttpResponse:
    plan_id = request.GET.get("plan", "")
    rows = selectors.adherence_report(user=request.user, plan_id=int(plan_id) if plan_id.isdigit() else None)
    bar_height = 28
    chart = [
        {"row": r, "y": i * bar_height, "width": r.on_time_percent or 0, "label_y": i * bar_height + 18}
        for i, r in enumerate(rows)
    ]
    context = {
        "rows": rows, "chart": chart, "chart_height": max(len(rows), 1) * bar_height,
        "plans": selectors.plan_list(user=request.user), "plan_id": plan_id, "page_title": "Plan adherence",
    }  # fmt: skip
    return render(request, "activities/adherence.html", context)


RUNS_PAGE_SIZE = 200


@login_required
def plan_runs(request: HttpRequest) -> HttpResponse:
    """Runs the user works or oversees, newest first, with pause/resume/cancel; managers can hand over all."""
    filters = {k: request.GET[k] for k in ("plan", "status", "contact") if request.GET.get(k)}
    filters = {k: v for k, v in filters.items() if k == "status" or v.isdigit()}
    runs = list(selectors.plan_run_list(user=request.user, filters=filters)[:RUNS_PAGE_SIZE])
    planner = selectors.is_planner(request.user)
    context = {
        "runs": runs, "filters": filters, "statuses": PlanRun.Status.choices, "planner": planner,
        "plans": selectors.plan_list(user=request.user) if planner else [],
        "users": user_list(actor=request.user).order_by("username") if planner else [],
        "page_size": RUNS_PAGE_SIZE, "page_title": "Plan runs",
    }  # fmt: skip
    return render(request, "activities/plan_runs.html", context)


RUN_ACTIONS = {
    "pause": (services.plan_run_pause, "paused"),
    "resume": (services.plan_run_resume, "resumed"),
    "cancel": (services.plan_run_cancel, "cancelled"),
}


@login_required
@require_POST
def plan_run_action(request: HttpRequest, pk: int, verb: str) -> HttpResponse:
    if verb not in RUN_ACTIONS:
        raise Http404("No such action.")
    run = selectors.plan_run_get(user=request.user, pk=pk)
    fn, done = RUN_ACTIONS[verb]
    try:
        fn(run=run, actor=request.user)
    except DomainError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"“{run.plan.name}” for {run.contact} {done}.")
    return redirect(request.POST.get("next") if _safe_next(request) else "activities:plan_runs")


def _safe_next(request: HttpRequest) -> bool:
    return url_has_allowed_host_and_scheme(
        request.POST.get("next"), allowed_hosts={request.get_host()}, require_https=request.is_secure()
    )


# Included by activities/urls.py under the "activities" namespace.
urlpatterns: list[URLPattern] = [
    path("plans/", plan_list, name="plan_list"),
    path("plans/new/", plan_create, name="plan_create"),
    path("plans/<int:pk>/edit/", plan_edit, name="plan_edit"),
    path("plans/<int:pk>/assign/", plan_assign, name="plan_assign"),
    path("plan-assignments/<int:pk>/", plan_assignment, name="plan_assignment"),
    path("adherence/", adherence, name="adherence"),
    path("plans/runs/", plan_runs, name="plan_runs"),
    path("plans/runs/<int:pk>/<slug:verb>/", plan_run_action, name="plan_run_action"),
]
