"""Browser pages for the Inbox (filled by the UI work)."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse

from crm.views import coming_soon


@login_required
def index(request: HttpRequest) -> HttpResponse:
    return coming_soon(request, "Inbox")


@login_required
def account_detail(request: HttpRequest, pk: int) -> HttpResponse:
    return coming_soon(request, "Channel account")
