"""Pages: the week/month calendar (own and team), the iCal feed, touch prompt actions and meeting invitations."""

from __future__ import annotations

import calendar as pycalendar
import datetime as dt
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from accounts.models import User
from accounts.selectors import user_managed_team_ids
from accounts.services import user_calendar_token_rotate
from activities.models import Activity, TouchPrompt
from activities.selectors import activity_get
from activities.selectors import calendar as selectors
from activities.services import calendar as services
from crm.errors import DomainError, NotFound

MAX_PER_DAY = 6


def _parse_date(request: HttpRequest) -> tuple[dt.date, str]:
    raw = request.GET.get("date", "")
    if not raw:
        return timezone.localdate(), ""
    try:
        return dt.date.fromisoformat(raw[:10]), ""
    except ValueError:
        return timezone.localdate(), f"“{raw[:20]}” is not a date (YYYY-MM-DD); showing today."


def _range(view: str, day: dt.date) -> tuple[dt.date, dt.date, dt.date, dt.date]:
    """(first shown day, day after the last shown day, previous anchor, next anchor). Weeks start on Monday."""
    if view == "month":
        first = day.replace(day=1)
        start = first - dt.timedelta(days=first.weekday())
        last = first.replace(day=pycalendar.monthrange(first.year, first.month)[1])
        end = last + dt.timedelta(days=7 - last.weekday())
        prev = (first - dt.timedelta(days=1)).replace(day=1)
        nxt = last + dt.timedelta(days=1)
        return start, end, prev, nxt
    start = day - dt.timedelta(days=day.weekday())
    return start, start + dt.timedelta(days=7), start - dt.timedelta(days=7), start + dt.timedelta(days=7)


def _aware(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time.min, tzinfo=timezone.get_current_timezone())


def _calendar(request: HttpRequest, *, team: bool) -> HttpResponse:
    user: User = request.user  # type: ignore[assignment]
    view = request.GET.get("view", "week")
    if view not in ("week", "month"):
        messages.warning(request, "Unknown calendar view; showing the week.")
        view = "week"
    day, problem = _parse_date(request)
    if problem:
        messages.warning(request, problem)
    start, end, prev, nxt = _range(view, day)
    if team:
        activities = list(selectors.team_calendar_activities(user=user, start=_aware(start), end=_aware(end)))
    else:
        activities = list(selectors.calendar_activities(user=user, start=_aware(start), end=_aware(end)))
    by_day: dict[dt.date, list[Activity]] = {}
    for activity in activities:
        assert activity.due_at is not None
        by_day.setdefault(timezone.localtime(activity.due_at).date(), []).append(activity)
    today = timezone.localdate()
    weeks: list[list[dict[str, Any]]] = []
    cursor = start
    while cursor < end:
        week = []
        for _ in range(7):
            items = by_day.get(cursor, [])
            week.append(
                {
                    "date": cursor,
                    "items": items[:MAX_PER_DAY],
                    "more": max(0, len(items) - MAX_PER_DAY),
                    "is_today": cursor == today,
                    "in_month": view == "week" or cursor.month == day.month,
                }
            )
            cursor += dt.timedelta(days=1)
        weeks.append(week)
    title = f"{day:%B %Y}" if view == "month" else f"Week of {start:%d %B %Y}"
    base = reverse("activities:calendar_team" if team else "activities:calendar")
    feed_url = ""
    if not team and user.calendar_token:
        feed_url = request.build_absolute_uri(reverse("activities:ical_feed", args=[user.calendar_token]))
    context = {
        "page_title": ("Team calendar" if team else "Calendar") + f" · {title}",
        "heading": "Team calendar" if team else "Calendar",
        "title": title,
        "view": view,
        "team": team,
        "weeks": weeks,
        "weekdays": ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"],
        "base": base,
        "anchor": day.isoformat(),
        "prev": prev.isoformat(),
        "next": nxt.isoformat(),
        "today": today.isoformat(),
        "feed_url": feed_url,
        "can_team": bool(user.is_admin_role or user_managed_team_ids(user)),
        "invitable": ("meeting", "appointment"),
    }
    return render(request, "activities/calendar.html", context)


@login_required
@require_GET
def calendar_page(request: HttpRequest) -> HttpResponse:
    return _calendar(request, team=False)


@login_required
@require_GET
def calendar_team(request: HttpRequest) -> HttpResponse:
    return _calendar(request, team=True)


@login_required
@require_POST
def calendar_token_rotate(request: HttpRequest) -> HttpResponse:
    user_calendar_token_rotate(user=request.user)  # type: ignore[arg-type]
    messages.success(request, "New calendar link created. The old link no longer works.")
    return redirect("activities:calendar")


@require_GET
def ical_feed(request: HttpRequest, token: str) -> HttpResponse:
    """The subscribe URL: no session, the secret token is the credential."""
    from icalendar import Calendar, Event

    user = selectors.feed_user(token=token)
    cal = Calendar()
    cal.add("prodid", "-//Threadline//Activities//EN")
    cal.add("version", "2.0")
    cal.add("x-wr-calname", f"Threadline: {user.get_full_name() or user.get_username()}")
    statuses = {"open": "CONFIRMED", "done": "CONFIRMED", "cancelled": "CANCELLED", "skipped": "CANCELLED"}
    now = timezone.now()
    for activity in selectors.feed_activities(user=user, now=now):
        event = Event()
        event.add("uid", f"activity-{activity.pk}@threadline")
        event.add("dtstamp", now)
        event.add("dtstart", activity.due_at)
        event.add("dtend", services.activity_end(activity))
        event.add("summary", activity.subject)
        description = activity.notes
        if activity.contact is not None:
            description = f"Contact: {activity.contact}\n{description}".strip()
        event.add("description", description)
        if activity.location:
            event.add("location", activity.location)
        event.add("status", statuses.get(activity.status, "CONFIRMED"))
        event.add("last-modified", activity.updated_at)
        cal.add_component(event)
    response = HttpResponse(cal.to_ical(), content_type="text/calendar; charset=utf-8")
    response["Content-Disposition"] = 'inline; filename="threadline.ics"'
    response["Cache-Control"] = "private, max-age=300"
    return response


def _prompts_response(
    request: HttpRequest, note: str, *, level: int = messages.SUCCESS, refresh: bool = False
) -> HttpResponse:
    if request.htmx and refresh:  # type: ignore[attr-defined]
        # A new call belongs in My day's activity panel too: reload the page rather than patch two panels.
        messages.add_message(request, level, note)
        response = HttpResponse(status=204)
        response["HX-Refresh"] = "true"
        return response
    if request.htmx:  # type: ignore[attr-defined]
        ctx = prompts_panel_context(request)
        ctx["note"] = note
        return render(request, "activities/_myday_prompts.html", {"ctx": ctx})
    messages.add_message(request, level, note)
    return redirect("/")


def _prompt_action(request: HttpRequest, pk: int, action: str) -> HttpResponse:
    user: User = request.user  # type: ignore[assignment]
    prompt = selectors.touch_prompt_get(user=user, pk=pk)
    try:
        if action == "activity":
            services.touch_prompt_to_activity(prompt=prompt, actor=user)
            note = f"Call with {prompt.contact} added to today."
        elif action == "snooze":
            try:
                days = int(request.POST.get("days", "7"))
            except ValueError:
                raise DomainError("Snooze for a whole number of days.") from None
            services.touch_prompt_snooze(prompt=prompt, actor=user, days=days)
            note = f"Snoozed {prompt.contact} for {days} days."
        else:
            services.touch_prompt_dismiss(prompt=prompt, actor=user)
            note = f"Dismissed the prompt for {prompt.contact}."
    except DomainError as exc:
        return _prompts_response(request, exc.message, level=messages.ERROR)
    return _prompts_response(request, note, refresh=action == "activity")


@login_required
@require_POST
def prompt_to_activity(request: HttpRequest, pk: int) -> HttpResponse:
    return _prompt_action(request, pk, "activity")


@login_required
@require_POST
def prompt_snooze(request: HttpRequest, pk: int) -> HttpResponse:
    return _prompt_action(request, pk, "snooze")


@login_required
@require_POST
def prompt_dismiss(request: HttpRequest, pk: int) -> HttpResponse:
    return _prompt_action(request, pk, "dismiss")


@login_required
@require_POST
def meeting_invite(request: HttpRequest, pk: int) -> HttpResponse:
    activity = activity_get(user=request.user, pk=pk)  # type: ignore[arg-type]
    if activity.owner_id != request.user.pk:
        raise NotFound("No such activity.")
    try:
        sent = services.meeting_invitation_send(activity=activity, actor=request.user)  # type: ignore[arg-type]
    except DomainError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Invitation sent to {sent} address{'es' if sent != 1 else ''}.")
    due = timezone.localtime(activity.due_at).date().isoformat() if activity.due_at else ""
    return redirect(f"{reverse('activities:calendar')}?date={due}")


def prompts_panel_context(request: HttpRequest) -> dict[str, Any]:
    """My day "Time to get in touch": the signed-in user's open prompts."""
    prompts = list(selectors.touch_prompt_list(user=request.user, status=TouchPrompt.Status.OPEN)[:20])  # type: ignore[arg-type]
    return {"prompts": prompts, "snooze_choices": (3, 7, 30)}


# Included by activities/urls.py under the "activities" namespace.
urlpatterns: list[URLPattern] = [
    path("calendar/", calendar_page, name="calendar"),
    path("calendar/team/", calendar_team, name="calendar_team"),
    path("calendar/feed/rotate/", calendar_token_rotate, name="calendar_token_rotate"),
    path("ical/<str:token>.ics", ical_feed, name="ical_feed"),
    path("prompts/<int:pk>/activity/", prompt_to_activity, name="prompt_to_activity"),
    path("prompts/<int:pk>/snooze/", prompt_snooze, name="prompt_snooze"),
    path("prompts/<int:pk>/dismiss/", prompt_dismiss, name="prompt_dismiss"),
    path("<int:pk>/invite/", meeting_invite, name="meeting_invite"),
]
