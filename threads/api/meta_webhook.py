"""``/webhooks/facebook/``: Meta's webhook for connected Facebook pages (filled by the Facebook connector work)."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt


@csrf_exempt
def facebook_webhook(request: HttpRequest) -> HttpResponse:
    return HttpResponse("Not implemented yet.", status=501)
