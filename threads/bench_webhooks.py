"""`manage.py bench webhooks --deliveries N`: signed Meta and Twilio webhook deliveries against the Django app
through its WSGI handler, the way gunicorn calls it, beside a same-run baseline (Meta's verification handshake
through the same stack).

Half the deliveries are Messenger messages to a connected Facebook page (``X-Hub-Signature-256`` over the raw
body), half are inbound SMS to a connected Twilio number (``X-Twilio-Signature``, computed by Twilio's own
RequestValidator). Each request is timed from the WSGI call to the end of the response: verify, store the raw
event, enqueue the Celery task on commit (a real Redis broker). The work itself is deferred, so it is not timed.

Then every delivery is sent twice more (providers redeliver), the queued events are processed, and
``duplicates_after_redelivery`` counts raw events or messages beyond one per delivery: it must be 0.
Everything the run created is deleted at the end; the broker queue it filled is purged.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import itertools
import json
import time
import uuid
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.core.management.base import CommandParser
from django.core.wsgi import get_wsgi_application
from django.db import transaction
from django.test.utils import override_settings

from accounts.models import User
from crm.bench import Benchmark, p95_ms, register
from threads.models import ChannelAccount, Message, RawEvent, Thread
from threads.services.pipeline import raw_events_drain

PAGE_ID = "990000000001"
OUR_NUMBER = "+14155550199"
TWILIO_TOKEN = "bench-twilio-auth-token"  # noqa: S105 - a throw-away bench credential
APP_SECRET = "bench-meta-app-secret"  # noqa: S105
PUBLIC_BASE = "https://bench.threadline.example"


def _environ(path: str, body: bytes, content_type: str, headers: dict[str, str]) -> dict[str, Any]:
    environ = {
        "REQUEST_METHOD": "POST", "PATH_INFO": path, "QUERY_STRING": "", "SERVER_NAME": "bench.threadline.example",
        "SERVER_PORT": "443", "wsgi.url_scheme": "https", "wsgi.input": io.BytesIO(body), "wsgi.errors": io.StringIO(),
        "wsgi.version": (1, 0), "wsgi.multithread": False, "wsgi.multiprocess": True, "wsgi.run_once": False,
        "CONTENT_TYPE": content_type, "CONTENT_LENGTH": str(len(body)), "REMOTE_ADDR": "127.0.0.1",
        "HTTP_HOST": "bench.threadline.example",
    }  # fmt: skip
    for key, value in headers.items():
        environ["HTTP_" + key.upper().replace("-", "_")] = value
    return environ


def _meta_delivery(i: int, run: str) -> tuple[str, bytes, str, dict[str, str]]:
    ts = 1_764_000_000_000 + i
    body = json.dumps({
        "object": "page",
        "entry": [{
            "id": PAGE_ID, "time": ts,
            "messaging": [{
                "sender": {"id": f"77{i:010d}"}, "recipient": {"id": PAGE_ID}, "timestamp": ts,
                "message": {"mid": f"m_{run}_{i}", "text": f"Hi, is the blue model {i % 97} still in stock? 🚗"},
            }],
        }],
    }).encode()  # fmt: skip
    signature = "sha256=" + hmac.new(APP_SECRET.encode(), body, hashlib.sha256).hexdigest()
    return "/webhooks/facebook/", body, "application/json", {"X-Hub-Signature-256": signature}


def _twilio_delivery(i: int, run: str) -> tuple[str, bytes, str, dict[str, str]]:
    from twilio.request_validator import RequestValidator

    params = {
        "MessageSid": f"SM{hashlib.md5(f'{run}{i}'.encode()).hexdigest()}",  # noqa: S324 - an id, not security
        "AccountSid": "ACbench", "From": f"+1415{2000000 + i:07d}", "To": OUR_NUMBER,
        "Body": f"Can I move my appointment {i % 31}? مرحبا", "NumMedia": "0", "NumSegments": "1",
        "SmsStatus": "received", "ApiVersion": "2010-04-01",
    }  # fmt: skip
    path = "/webhooks/twilio/sms/"
    signature = RequestValidator(TWILIO_TOKEN).compute_signature(PUBLIC_BASE + path, params)
    body = urlencode(params).encode()
    return path, body, "application/x-www-form-urlencoded", {"X-Twilio-Signature": signature}


def _accounts() -> tuple[ChannelAccount, ChannelAccount]:
    owner = User.objects.filter(is_superuser=True).first()  # None is fine: a webhook needs no owner
    page = ChannelAccount.objects.create(
        kind=ChannelAccount.Kind.FACEBOOK, name="Bench page", owner=owner, config={"page_id": PAGE_ID},
        credentials=json.dumps({"page_access_token": "bench-page-token", "app_secret": APP_SECRET}),
        unknown_policy=ChannelAccount.UnknownPolicy.UNMATCHED,
    )  # fmt: skip
    sms = ChannelAccount.objects.create(
        kind=ChannelAccount.Kind.SMS, name="Bench SMS", owner=owner, address=OUR_NUMBER,
        credentials=json.dumps({"account_sid": "ACbench", "auth_token": TWILIO_TOKEN}),
        unknown_policy=ChannelAccount.UnknownPolicy.UNMATCHED,
    )  # fmt: skip
    return page, sms


def _cleanup(accounts: list[ChannelAccount]) -> None:
    ids = [a.pk for a in accounts]
    with transaction.atomic():
        Thread.objects.filter(messages__channel_account_id__in=ids).delete()
        Message.objects.filter(channel_account_id__in=ids).delete()
        RawEvent.objects.filter(channel_account_id__in=ids).delete()
        ChannelAccount.objects.filter(pk__in=ids).delete()


def run(*, deliveries: int = 50_000, **_: Any) -> dict[str, Any]:
    from crm.celery import app as celery_app

    wsgi = get_wsgi_application()
    run_id = uuid.uuid4().hex[:8]
    half = deliveries // 2
    meta = [_meta_delivery(i, run_id) for i in range(half)]
    twilio = [_twilio_delivery(i, run_id) for i in range(deliveries - half)]
    # Interleave the providers, as real traffic would.
    requests = [r for pair in itertools.zip_longest(meta, twilio) for r in pair if r is not None]
    statuses: dict[int, int] = {}

    def call(path: str, body: bytes, content_type: str, headers: dict[str, str]) -> int:
        status: list[str] = []
        out = wsgi(_environ(path, body, content_type, headers), lambda s, h, exc_info=None: status.append(s))
        for _chunk in out:
            pass
        if hasattr(out, "close"):
            out.close()
        return int(status[0].split()[0])

    overrides = {
        "FACEBOOK_APP_SECRET": APP_SECRET, "TWILIO_PUBLIC_BASE_URL": PUBLIC_BASE,
        "ALLOWED_HOSTS": [*settings.ALLOWED_HOSTS, "bench.threadline.example"], "SECURE_SSL_REDIRECT": False,
    }  # fmt: skip
    page, sms = _accounts()
    try:
        with override_settings(**overrides):
            # Baseline: the cheapest request through the same stack and view (Meta's verification handshake with a
            # wrong token: middleware, routing, a constant-time compare, a 403; no database write).
            base = []
            for _ in range(min(2_000, deliveries)):
                t0 = time.perf_counter()
                env = _environ("/webhooks/facebook/", b"", "text/plain", {})
                env["REQUEST_METHOD"] = "GET"
                env["QUERY_STRING"] = "hub.mode=subscribe&hub.verify_token=wrong&hub.challenge=42"
                list(wsgi(env, lambda s, h, exc_info=None: None))
                base.append(time.perf_counter() - t0)
            samples = []
            started = time.perf_counter()
            for request in requests:
                t0 = time.perf_counter()
                code = call(*request)
                samples.append(time.perf_counter() - t0)
                statuses[code] = statuses.get(code, 0) + 1
            elapsed = time.perf_counter() - started
            # Providers redeliver: everything twice more.
            for _ in range(2):
                for request in requests:
                    call(*request)
        for account in (page, sms):
            raw_events_drain(account=account)
        raw = RawEvent.objects.filter(channel_account__in=[page, sms]).count()
        stored = Message.objects.filter(channel_account__in=[page, sms]).count()
        return {
            "deliveries": deliveries,
            "accepted_per_s": round(len(requests) / elapsed, 1),
            "p95_ms": p95_ms(samples),
            "duplicates_after_redelivery": max(0, raw - deliveries) + max(0, stored - deliveries),
            "baseline_handshake_p95_ms": p95_ms(base),
            "accepted": statuses.get(200, 0) + statuses.get(202, 0),
            "statuses": {str(k): v for k, v in sorted(statuses.items())},
            "raw_events": raw,
            "messages": stored,
        }
    finally:
        _cleanup([page, sms])
        celery_app.control.purge()


def add_arguments(parser: CommandParser) -> None:
    parser.add_argument("--deliveries", type=int, default=50_000, help="Signed webhook deliveries (half Meta).")


register(
    Benchmark(
        name="webhooks",
        run=run,
        add_arguments=add_arguments,
        help="Signed Meta and Twilio webhooks through the WSGI handler: accept rate, p95, duplicates after redelivery.",
    )
)
