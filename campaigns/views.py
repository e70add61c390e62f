"""Browser pages for Campaigns."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse

from crm.views import coming_soon


@login_required
def index(request: HttpRequest) -> HttpResponse:
    return coming_soon(request, "Campaigns")
