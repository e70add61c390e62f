"""Browser pages for activities: the list, create/edit, detail with complete/skip/cancel."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from accounts.selectors import user_list
from activities import selectors, services
from activities.forms import ActivityForm, CompleteForm
from activities.models import Activity, Kind
from activities.services import plans as plan_services
from contacts.selectors import contact_get
from crm.errors import DomainError
from crm.forms import add_service_errors

PAGE_SIZE = 100


@login_required
def index(request: HttpRequest) -> HttpResponse:
    status = request.GET.get("status", Activity.Status.OPEN)
    filters: dict[str, object] = {"status": status if status in Activity.Status.values else ""}
    kind = request.GET.get("kind", "")
    if kind in Kind.values:
        filters["kind"] = kind
    mine = request.GET.get("mine", "1") == "1"
    if mine:
        filters["owner"] = request.user.pk
    # Open work is read by due date; finished work newest first. Capped, never counted (no COUNT(*)).
    qs = selectors.activity_list(user=request.user, filters=filters)
    order = ["due_at", "id"] if filters["status"] == Activity.Status.OPEN else ["-done_at", "-id"]
    rows = list(qs.order_by(*order)[:PAGE_SIZE])
    context = {
        "activities": rows, "status": filters["status"], "kind": kind, "mine": mine, "kinds": Kind.choices,
        "statuses": Activity.Status.choices, "capped": len(rows) == PAGE_SIZE, "page_title": "Activities",
    }  # fmt: skip
    return render(request, "activities/index.html", context)


@login_required
def create(request: HttpRequest) -> HttpResponse:
    assignable = user_list(actor=request.user)
    contact = None
    contact_id = request.GET.get("contact") or request.POST.get("contact")
    if contact_id and str(contact_id).isdigit():
        contact = contact_get(user=request.user, pk=int(contact_id))
    form = ActivityForm(
        request.POST or None, assignable=assignable, initial={"contact": contact.pk if contact else None}
    )
    if request.method == "POST" and form.is_valid():
        data = dict(form.cleaned_data)
        data.pop("contact", None)
        try:
            activity = services.activity_create(actor=request.user, contact=contact, **data)
        except DomainError as exc:
            add_service_errors(form, exc)
        else:
            messages.success(request, f"{activity.get_kind_display()} “{activity.subject}” scheduled.")
            return (
                redirect("contacts:detail", pk=contact.pk) if contact else redirect("activities:detail", pk=activity.pk)
            )
    return render(request, "activities/form.html", {"form": form, "contact": contact, "page_title": "New activity"})


@login_required
def detail(request: HttpRequest, pk: int) -> HttpResponse:
    activity = selectors.activity_get(user=request.user, pk=pk)
    return render(
        request,
        "activities/detail.html",
        {"activity": activity, "complete_form": CompleteForm(), "page_title": activity.subject},
    )


def _after_action(request: HttpRequest, activity: Activity) -> HttpResponse:
    if request.htmx:
        activity = selectors.activity_get(user=request.user, pk=activity.pk)
        return render(request, "activities/_activity_row.html", {"activity": activity})
    next_url = request.POST.get("next", "")
    # Only back to a page of this site: an arbitrary ``next`` would make this an open redirect.
    if next_url and url_has_allowed_host_and_scheme(
        next_url, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return redirect(next_url)
    return redirect("activities:detail", pk=activity.pk)


@login_required
@require_POST
def complete(request: HttpRequest, pk: int) -> HttpResponse:
    activity = selectors.activity_get(user=request.user, pk=pk)
    form = CompleteForm(request.POST)
    form.is_valid()
    try:
        activity = services.activity_complete(
            activity=activity, actor=request.user, outcome=form.cleaned_data.get("outcome", ""),
            notes=form.cleaned_data.get("notes") or None,
        )  # fmt: skip
    except DomainError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Done: {activity.subject}.")
    return _after_action(request, activity)


@login_required
@require_POST
def skip(request: HttpRequest, pk: int) -> HttpResponse:
    activity = selectors.activity_get(user=request.user, pk=pk)
    try:
        activity = services.activity_skip(activity=activity, actor=request.user)
    except DomainError as exc:
        messages.error(request, exc.message)
    else:
        messages.info(request, f"Skipped: {activity.subject}.")
    return _after_action(request, activity)


@login_required
@require_POST
def cancel(request: HttpRequest, pk: int) -> HttpResponse:
    activity = selectors.activity_get(user=request.user, pk=pk)
    try:
        activity = services.activity_cancel(activity=activity, actor=request.user)
    except DomainError as exc:
        messages.error(request, exc.message)
    else:
        messages.info(request, f"Cancelled: {activity.subject}.")
    return _after_action(request, activity)


@login_required
def reassign_work(request: HttpRequest) -> HttpResponse:
    """Hand all open activities and plan runs of one person to another (someone leaves the team).

    Managers and admins only; both people must be among those the manager may assign work to.
    """
    if not (request.user.is_admin_role or request.user.is_manager_role):
        raise Http404("No such page.")
    people = user_list(actor=request.user).order_by("username")
    if request.method == "POST":
        from_user = people.filter(pk=request.POST.get("from_user") or 0).first()
        to_user = people.filter(pk=request.POST.get("to_user") or 0).first()
        if from_user is None or to_user is None:
            messages.error(request, "Choose both people.")
        else:
            try:
                moved = services.activities_reassign_all(from_user=from_user, to_user=to_user, actor=request.user)
                runs = plan_services.plan_runs_reassign_all(from_user=from_user, to_user=to_user, actor=request.user)
            except DomainError as exc:
                messages.error(request, exc.message)
            else:
                messages.success(
                    request,
                    f"{moved} open activit{'y' if moved == 1 else 'ies'} and {runs} plan run(s) moved to {to_user}.",
                )
                return redirect("activities:reassign_work")
    return render(request, "activities/reassign.html", {"people": people, "page_title": "Reassign work"})
