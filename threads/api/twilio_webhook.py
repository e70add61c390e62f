"""``/webhooks/twilio/sms/`` and ``/webhooks/twilio/status/``: Twilio's inbound SMS and delivery-status callbacks
(filled by the SMS connector work)."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt


@csrf_exempt
def twilio_sms_webhook(request: HttpRequest) -> HttpResponse:
    return HttpResponse("Not implemented yet.", status=501)


@csrf_exempt
def twilio_status_webhook(request: HttpRequest) -> HttpResponse:
    return HttpResponse("Not implemented yet.", status=501)
