"""Browser pages of Listening: the rules (list, editor with a live dry-run preview, delete), the mentions feed,
charts of volume and sentiment, and the listening sources.

Thin: parse input with a form, call a selector or a service, render or redirect. Rules of visibility and validity
live in listening.selectors and listening.services.
"""

from __future__ import annotations

import json
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from accounts.selectors import team_list
from crm.errors import DomainError
from crm.forms import add_service_errors
from listening import selectors, services
from listening.forms import CHANNEL_LABELS, DryRunForm, RuleForm
from listening.models import ListeningRule
from listening.views.charts import sentiment_chart, sparkline, volume_chart
from listening.views.highlight import error_markup, highlight_segments
from listening.views.links import message_links, post_links
from listening.views.mentions import mention_list  # noqa: F401  (re-exported for listening.urls)
from listening.views.sources import (  # noqa: F401
    source_create,
    source_delete,
    source_edit,
    source_fetch_now,
    source_list,
    source_rotate_secret,
)

CHART_DAYS = (7, 30, 90)
DRY_RUN_LIMIT = 1000
DRY_RUN_MAX_HITS = 50
SERVICE_ALIASES = {"sources": "source_ids", "team_id": "team"}


# --- Rules list -----------------------------------------------------------------------------------------------


@login_required
def index(request: HttpRequest) -> HttpResponse:
    rules = list(selectors.rule_list(user=request.user).select_related("owner", "team"))
    volume = selectors.mention_volume(user=request.user, rule_ids=[r.pk for r in rules], days=30) if rules else []
    sparks = {row["rule_id"]: sparkline(row["series"]) for row in volume}
    context = {
        "rows": [{"rule": rule, "spark": sparks.get(rule.pk)} for rule in rules],
        "spikes": selectors.spike_list(user=request.user, limit=5),
        "page_title": "Listening",
        "tab": "rules",
    }
    return render(request, "listening/index.html", context)


@login_required
def charts(request: HttpRequest) -> HttpResponse:
    days = int(request.GET["days"]) if request.GET.get("days", "").isdigit() else 30
    days = days if days in CHART_DAYS else 30
    rules = list(selectors.rule_list(user=request.user))
    rule_id = int(request.GET["rule"]) if request.GET.get("rule", "").isdigit() else None
    rule_ids = [rule_id] if rule_id in {r.pk for r in rules} else None
    context = {
        "volume": volume_chart(selectors.mention_volume(user=request.user, rule_ids=rule_ids, days=days)),
        "sentiment": sentiment_chart(selectors.sentiment_mix(user=request.user, rule_ids=rule_ids, days=days)),
        "days": days, "day_choices": CHART_DAYS, "rules": rules, "rule_id": rule_ids[0] if rule_ids else None,
        "page_title": "Listening charts", "tab": "charts",
    }  # fmt: skip
    return render(request, "listening/charts.html", context)


# --- The rule editor ------------------------------------------------------------------------------------------


def _rule_form(request: HttpRequest, *, rule: ListeningRule | None = None, read_only: bool = False) -> RuleForm:
    sources = list(selectors.source_list(user=request.user))
    if rule is not None:
        # A source the rule already uses stays listed even if the editor cannot see it, so saving keeps it.
        known = {s.pk for s in sources}
        sources += [s for s in rule.sources.all() if s.pk not in known]
    return RuleForm(
        request.POST if request.method == "POST" else None, user=request.user, sources=sources,
        teams=list(team_list(actor=request.user)), instance=rule, read_only=read_only,
    )  # fmt: skip


def _editor(request: HttpRequest, form: RuleForm, *, rule: ListeningRule | None, can_edit: bool, status: int = 200):  # type: ignore[no-untyped-def]
    context: dict[str, Any] = {
        "form": form, "rule": rule, "can_edit": can_edit,
        "page_title": rule.name if rule is not None else "New listening rule", "tab": "rules",
    }  # fmt: skip
    if rule is not None:
        context["volume"] = volume_chart(selectors.mention_volume(user=request.user, rule_ids=[rule.pk], days=30))
        context["sentiment"] = sentiment_chart(selectors.sentiment_mix(user=request.user, rule_ids=[rule.pk], days=30))
        if not can_edit:
            # Disabled inputs are not submitted, so the read-only preview sends the stored rule as values.
            context["preview_vals"] = json.dumps(
                {"query": rule.query, "channels": rule.channels,
                 "include_messages": "on" if rule.include_messages else "",
                 "include_posts": "on" if rule.include_posts else ""}
            )  # fmt: skip
    return render(request, "listening/rule_form.html", context, status=status)


@login_required
def rule_new(request: HttpRequest) -> HttpResponse:
    form = _rule_form(request)
    if request.method == "GET" and request.GET.get("query"):
        form.initial["query"] = request.GET["query"][:4000]
    if request.method == "POST":
        if form.is_valid():
            try:
                rule = services.rule_create(actor=request.user, data=form.service_data())
            except DomainError as exc:
                add_service_errors(form, exc, aliases=SERVICE_ALIASES)
            else:
                messages.success(request, f"Rule “{rule.name}” created. It runs on everything that arrives from now.")
                return redirect("listening:rule_edit", pk=rule.pk)
        messages.error(request, "The rule was not saved; see the form.")
        return _editor(request, form, rule=None, can_edit=True, status=400)
    return _editor(request, form, rule=None, can_edit=True)


@login_required
def rule_edit(request: HttpRequest, pk: int) -> HttpResponse:
    rule = selectors.rule_get(user=request.user, pk=pk)
    can_edit = selectors.rule_can_edit(user=request.user, rule=rule)
    if request.method == "POST":
        if not can_edit:
            messages.error(request, "Only the rule's owner, their manager or an admin can change this rule.")
            return redirect("listening:rule_edit", pk=rule.pk)
        form = _rule_form(request, rule=rule)
        if form.is_valid():
            try:
                rule = services.rule_update(actor=request.user, rule=rule, data=form.service_data())
            except DomainError as exc:
                add_service_errors(form, exc, aliases=SERVICE_ALIASES)
            else:
                messages.success(request, f"Rule “{rule.name}” saved.")
                return redirect("listening:rule_edit", pk=rule.pk)
        messages.error(request, "The rule was not saved; see the form.")
        return _editor(request, form, rule=rule, can_edit=True, status=400)
    return _editor(request, _rule_form(request, rule=rule, read_only=not can_edit), rule=rule, can_edit=can_edit)


@login_required
def rule_delete(request: HttpRequest, pk: int) -> HttpResponse:
    rule = selectors.rule_get(user=request.user, pk=pk)
    if not selectors.rule_can_edit(user=request.user, rule=rule):
        messages.error(request, "Only the rule's owner, their manager or an admin can delete this rule.")
        return redirect("listening:rule_edit", pk=rule.pk)
    if request.method == "POST":
        name = rule.name
        try:
            services.rule_delete(actor=request.user, rule=rule)
        except DomainError as exc:
            messages.error(request, exc.message)
            return redirect("listening:rule_edit", pk=pk)
        messages.success(request, f"Rule “{name}” deleted, with its mentions.")
        return redirect("listening:index")
    return render(
        request, "listening/rule_delete.html",
        {"rule": rule, "mention_count": rule.mentions.count(), "page_title": f"Delete {rule.name}", "tab": "rules"},
    )  # fmt: skip


@login_required
@require_POST
def dry_run(request: HttpRequest) -> HttpResponse:
    """The editor's live preview (an htmx partial): the parse error with its place, or what the query would match."""
    form = DryRunForm(request.POST)
    form.is_valid()
    data = getattr(form, "cleaned_data", {})
    query = data.get("query", "")
    context: dict[str, Any] = {"query": query}
    if "query" in form.errors:
        context["too_long"] = True
    elif query.strip():
        result = services.rule_dry_run(
            actor=request.user, query=query, channels=data.get("channels") or None,
            include_messages=data.get("include_messages", False), include_posts=data.get("include_posts", False),
            limit=DRY_RUN_LIMIT, max_hits=DRY_RUN_MAX_HITS,
        )  # fmt: skip
        context["result"] = result
        if result.error is not None:
            context["error"] = result.error
            context["markup"] = error_markup(query, result.error.position, result.error.end)
        else:
            messages_ = message_links([h.object_id for h in result.hits if h.kind == "message"])
            posts = post_links([h.object_id for h in result.hits if h.kind == "post"])
            context["hits"] = [
                {
                    "hit": hit,
                    "segments": highlight_segments(hit.snippet, hit.highlights),
                    "channel_label": CHANNEL_LABELS.get(hit.channel, hit.channel),
                    "link": (messages_ if hit.kind == "message" else posts).get(hit.object_id, {}).get("url", ""),
                }
                for hit in result.hits
            ]
            context["matched"] = max(getattr(result, "matched", 0) or 0, len(result.hits))
    return render(request, "listening/_dry_run.html", context)
