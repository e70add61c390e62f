"""``/webhooks/twilio/sms/`` and ``/webhooks/twilio/status/``: Twilio's inbound SMS and delivery-status callbacks.

Both are ``application/x-www-form-urlencoded`` POSTs signed with ``X-Twilio-Signature`` (HMAC-SHA1 of the URL
Twilio called plus the sorted form fields, keyed with the account's auth token). The URL is
``TWILIO_PUBLIC_BASE_URL`` + the request's path and query when that is set (behind a proxy that rewrites the
host or scheme), else the request's own absolute URL.

Order of checks, cheapest refusal first; nothing is stored before all pass:
body over ``INBOUND_WEBHOOK_MAX_BYTES`` → 413 (before parsing); not a form → 415; no signature → 403;
our number (``To`` inbound, ``From`` for a status) is no SMS account → 200 with empty TwiML and a log line (Twilio
would only retry or alert on an error, and nobody here can fix a number that is not ours); a signature no
account with that number validates → 403; no MessageSid → 400.

An inbound SMS is stored as a RawEvent (``twilio.sms``, the form fields as JSON) and answered ``<Response />`` at
once; ``raw_events_process_task`` ingests it after commit. A redelivered MessageSid stores nothing new. A paused
account takes nothing (200, logged). A status callback updates the delivery state of our outbound message in the
request (one locked row); an unknown MessageSid is logged and answered 200.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from django.conf import settings
from django.core.exceptions import SuspiciousOperation, ValidationError
from django.db import transaction
from django.http import HttpRequest, HttpResponse, QueryDict
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST
from twilio.twiml.messaging_response import MessagingResponse

from crm.api import error_json
from threads.api.inbound import read_limited_body
from threads.connectors import RawEventIn
from threads.connectors.sms import EVENT_TYPE, SIGNATURE_HEADER, accounts_for_number, phone_e164, signature_valid
from threads.models import ChannelAccount
from threads.services.pipeline import raw_events_store
from threads.services.sms import message_delivery_update

log = logging.getLogger(__name__)

FORM_TYPE = "application/x-www-form-urlencoded"
EMPTY_TWIML = str(MessagingResponse())


def _twiml() -> HttpResponse:
    return HttpResponse(EMPTY_TWIML, content_type="text/xml; charset=utf-8")


def _read_form(request: HttpRequest) -> QueryDict | HttpResponse:
    limit = settings.INBOUND_WEBHOOK_MAX_BYTES
    body = read_limited_body(request, limit)
    if body is None:
        return error_json("too_large", f"The body is larger than {limit} bytes.", 413)
    if request.content_type != FORM_TYPE:
        return error_json("unsupported", f"Expected {FORM_TYPE}.", 415)
    try:
        return QueryDict(body, encoding="utf-8")
    except SuspiciousOperation:  # more fields than DATA_UPLOAD_MAX_NUMBER_FIELDS
        return error_json("invalid", "Too many form fields.", 400)


def _signed_url(request: HttpRequest) -> str:
    base = settings.TWILIO_PUBLIC_BASE_URL
    return f"{base}{request.get_full_path()}" if base else request.build_absolute_uri()


def _our_accounts(request: HttpRequest, form: QueryDict, field: str) -> list[ChannelAccount] | HttpResponse:
    """The SMS accounts whose number is ``form[field]`` and that validate the signature; a response when none."""
    signature = request.headers.get(SIGNATURE_HEADER)
    if not signature:
        return error_json("forbidden", "Missing X-Twilio-Signature.", 403)
    raw = form.get(field, "")
    try:
        number = phone_e164(raw)
    except ValidationError:
        number = ""
    accounts = accounts_for_number(number) if number else []
    if not accounts:
        log.warning("twilio %s for %s %r, which is no SMS account here: ignored", request.path, field, raw[:40])
        return _twiml()
    url = _signed_url(request)
    valid = [a for a in accounts if signature_valid(a, url, form, signature)]
    if not valid:
        log.warning("twilio %s for %s: bad signature (checked against %s)", request.path, number, url)
        return error_json("forbidden", "Bad X-Twilio-Signature.", 403)
    return valid


def _fields(form: QueryDict) -> dict[str, Any]:
    return {key: values[0] if len(values) == 1 else values for key, values in form.lists()}


@csrf_exempt  # Twilio cannot send a CSRF token: the signature is the authentication
@require_POST
def twilio_sms_webhook(request: HttpRequest) -> HttpResponse:
    form = _read_form(request)
    if isinstance(form, HttpResponse):
        return form
    accounts = _our_accounts(request, form, "To")
    if isinstance(accounts, HttpResponse):
        return accounts
    sid = (form.get("MessageSid") or form.get("SmsSid") or "").strip()
    if not sid:
        return error_json("invalid", "MessageSid is missing; nothing was stored.", 400)
    active = [a for a in accounts if a.status != ChannelAccount.Status.PAUSED]
    if not active:
        log.warning("twilio SMS %s for paused account(s) %s: not stored", sid, [a.pk for a in accounts])
        return _twiml()
    try:
        their = phone_e164(form.get("From", ""))
    except ValidationError:
        their = form.get("From", "")[:64]  # stored anyway: the normalizer dead-letters it with the reason
    payload = json.dumps(_fields(form), ensure_ascii=False).encode()
    with transaction.atomic():
        for account in active:
            meta = {"our": account.address, "their": their, "remote_addr": request.META.get("REMOTE_ADDR", "")}
            created = raw_events_store(
                account=account,
                events=[RawEventIn(provider_event_id=sid, event_type=EVENT_TYPE, payload=payload, meta=meta)],
            )
            if created:
                from threads.tasks import raw_events_process_task

                transaction.on_commit(lambda pk=account.pk: raw_events_process_task.delay(pk))
    return _twiml()


@csrf_exempt
@require_POST
def twilio_status_webhook(request: HttpRequest) -> HttpResponse:
    form = _read_form(request)
    if isinstance(form, HttpResponse):
        return form
    # A status callback is about a message we sent: our number is its From.
    accounts = _our_accounts(request, form, "From")
    if isinstance(accounts, HttpResponse):
        return accounts
    sid = (form.get("MessageSid") or form.get("SmsSid") or "").strip()
    status = (form.get("MessageStatus") or form.get("SmsStatus") or "").strip()
    if not sid or not status:
        return error_json("invalid", "MessageSid and MessageStatus are required.", 400)
    message = message_delivery_update(
        account_ids=[a.pk for a in accounts], external_id=sid, status=status,
        error_code=(form.get("ErrorCode") or "").strip(), ref=request.GET.get("ref", "")[:64],
    )  # fmt: skip
    if message is None:
        log.info("twilio status %r for unknown MessageSid %s: ignored", status, sid)
    return _twiml()
