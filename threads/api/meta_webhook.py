"""``/webhooks/facebook/``: Meta's webhook for connected Facebook pages (Messenger and page feed).

- ``GET`` is Meta's verification handshake: ``hub.mode=subscribe`` and ``hub.verify_token`` equal to
  ``FACEBOOK_VERIFY_TOKEN`` (compared in constant time) → ``hub.challenge`` echoed as text/plain; otherwise 403.
- ``POST`` delivers events. Cheapest refusal first, nothing stored before every check passed: declared or actual
  body over ``FACEBOOK_WEBHOOK_MAX_BYTES`` → 413 (before any parsing); ``X-Hub-Signature-256`` not the HMAC-SHA256
  of the raw body with the app secret → 403; unreadable JSON → 400. Then each ``entry`` (one page) is matched to
  the connected ChannelAccount(s) of that page id: a page nobody connected, or a paused account, is logged and
  skipped with a 200 (an error answer would only make Meta retry, and eventually disable the subscription for
  every page). The events are stored as RawEvents and answered at once; a Celery task normalizes them. A redelivery
  stores nothing new (UNIQUE account + provider event id).

The signature is the authentication: no session, no CSRF token.
"""

from __future__ import annotations

import hmac
import json
import logging
from collections import defaultdict

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from crm.api import error_json
from threads.api.inbound import read_limited_body
from threads.connectors import RawEventIn
from threads.connectors.facebook import app_secret_of, signature_valid, webhook_events, webhook_secrets
from threads.models import ChannelAccount
from threads.services.pipeline import raw_events_store

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Hub-Signature-256"


@csrf_exempt
@require_http_methods(["GET", "POST"])
def facebook_webhook(request: HttpRequest) -> HttpResponse:
    if request.method == "GET":
        return _verify(request)
    return _receive(request)


def _verify(request: HttpRequest) -> HttpResponse:
    expected = settings.FACEBOOK_VERIFY_TOKEN
    token = request.GET.get("hub.verify_token", "")
    mode_ok = request.GET.get("hub.mode") == "subscribe"
    # Constant-time, and never true for an unset token: an empty FACEBOOK_VERIFY_TOKEN verifies nothing.
    token_ok = bool(expected) and hmac.compare_digest(token.encode(), expected.encode())
    if not (mode_ok and token_ok):
        return HttpResponse("Verification failed.", status=403, content_type="text/plain")
    response = HttpResponse(request.GET.get("hub.challenge", ""), content_type="text/plain")
    response["X-Content-Type-Options"] = "nosniff"
    return response


def _accounts_for_page(page_id: str) -> list[ChannelAccount]:
    match = Q(config__page_id=page_id)
    if page_id.isdigit():
        match |= Q(config__page_id=int(page_id))  # a page id entered as a JSON number
    return list(ChannelAccount.objects.filter(kind=ChannelAccount.Kind.FACEBOOK).filter(match).order_by("pk"))


def _receive(request: HttpRequest) -> HttpResponse:
    limit = settings.FACEBOOK_WEBHOOK_MAX_BYTES
    body = read_limited_body(request, limit)
    if body is None:
        return error_json("too_large", f"The body is larger than {limit} bytes.", 413)
    header = request.headers.get(SIGNATURE_HEADER)
    signed_with = {secret for secret in webhook_secrets() if signature_valid(secret, body, header)}
    if not signed_with:
        return error_json("forbidden", "Missing or bad signature.", 403)
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, ValueError) as exc:
        return error_json("invalid", f"The body is not valid JSON: {exc}", 400)
    if not isinstance(payload, dict) or payload.get("object") != "page":
        kind = payload.get("object") if isinstance(payload, dict) else type(payload).__name__
        log.info("facebook webhook: ignored a delivery for object %r", kind)
        return JsonResponse({"status": "ignored", "stored": 0})
    per_account: dict[int, tuple[ChannelAccount, list[RawEventIn]]] = {}
    ignored: dict[str, int] = defaultdict(int)
    for entry in payload.get("entry") or []:
        if not isinstance(entry, dict) or not entry.get("id"):
            continue
        page_id = str(entry["id"])
        events = webhook_events(entry)
        if not events:
            continue
        accounts = _accounts_for_page(page_id)
        if not accounts:
            ignored[page_id] += len(events)
            continue
        for account in accounts:
            if account.status == ChannelAccount.Status.PAUSED:
                ignored[page_id] += len(events)
                continue
            if app_secret_of(account) not in signed_with:
                # Signed by some app we know, but not the one this page is connected through.
                log.warning("facebook webhook: page %s events signed by another app; ignored", page_id)
                ignored[page_id] += len(events)
                continue
            per_account.setdefault(account.pk, (account, []))[1].extend(events)
    for page_id, count in ignored.items():
        log.info("facebook webhook: page %s is not connected (or paused); %s event(s) ignored", page_id, count)
    stored = 0
    with transaction.atomic():
        for account, events in per_account.values():
            created = raw_events_store(account=account, events=events)
            stored += len(created)
            if created:
                from threads.tasks import raw_events_process_task

                transaction.on_commit(lambda pk=account.pk: raw_events_process_task.delay(pk))
    # Meta wants a 200 within seconds; the work happens in the task.
    return JsonResponse({"status": "received", "stored": stored, "ignored": sum(ignored.values())})
