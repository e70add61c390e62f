"""Cross-cutting pages: My day, health, and the placeholder for sections not built yet."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from crm.health import health_report
from crm.panels import panels


@require_GET
@never_cache
def healthz(request: HttpRequest) -> JsonResponse:
    healthy, report = health_report()
    return JsonResponse(report, status=200 if healthy else 503)


@login_required
def my_day(request: HttpRequest) -> HttpResponse:
    rendered = [{"panel": panel, "context": panel.context(request)} for panel in panels()]
    return render(request, "crm/my_day.html", {"panels": rendered, "page_title": "My day"})


def coming_soon(request: HttpRequest, section: str) -> HttpResponse:
    return render(request, "crm/coming_soon.html", {"section": section, "page_title": section})


@login_required
def reports(request: HttpRequest) -> HttpResponse:
    return coming_soon(request, "Reports")
