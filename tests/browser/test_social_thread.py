"""One contact, four channels, one thread: an e-mail, a tweet, a Facebook comment and an SMS land through their
real connectors (a raw tweet event; Meta's and Twilio's signed webhooks), interleave in the contact's thread, and
the rep answers each one through its own channel from the thread page. The answers are delivered by the real
senders: SMTP to aiosmtpd, and recorded HTTP exchanges for X, the Graph API and Twilio."""

from __future__ import annotations

import datetime as dt
import json
import re
from urllib.parse import urlencode

import pytest
import responses
from django.test import Client
from django.utils import timezone
from playwright.sync_api import expect
from twilio.request_validator import RequestValidator

from contacts.services import contact_create
from tests.accounts.factories import TeamFactory, UserFactory, membership
from tests.threads.conftest import _smtp_servers, smtp_server  # noqa: F401  (fixtures)
from tests.threads.conversation_helpers import email_from
from tests.threads.factories import ChannelAccountFactory
from tests.threads.mailservers import SmtpServer
from threads.connectors import RawEventIn
from threads.models import ChannelAccount, Message
from threads.services.pipeline import raw_events_drain, raw_events_store
from threads.services.send import message_deliver

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

APP_SECRET = "meta-app-secret-for-the-browser-test"
PAGE_ID = "104857600000042"
TWILIO_TOKEN = "twilio-auth-token-browser"
OUR_X_ID, GRETA_X_ID = "1580000000000000001", "1580000000000000777"
GRETA_FB_ID = "5512093318847777"
GRETA_PHONE, OUR_PHONE = "+14155550123", "+14155550100"
TWEET_ID, COMMENT_ID, POST_ID = "1860000000000000001", f"{PAGE_ID}_777_888", f"{PAGE_ID}_777"


def sign_in(page, live_server) -> None:  # type: ignore[no-untyped-def]
    page.goto(f"{live_server.url}/accounts/login/")
    page.get_by_label("Username").fill("rep")
    page.get_by_label("Password").fill("correct-horse-battery")
    page.get_by_role("button", name="Sign in").click()


def world(smtp: SmtpServer) -> dict[str, object]:
    team = TeamFactory(name="Team A")
    rep = membership(UserFactory(username="rep"), team)
    greta = contact_create(
        actor=rep, first_name="Greta", last_name="Golfer",
        identities=[
            {"kind": "email", "value": "greta@example.com"}, {"kind": "phone", "value": GRETA_PHONE},
            {"kind": "twitter", "value": GRETA_X_ID}, {"kind": "facebook", "value": GRETA_FB_ID},
        ],
    )  # fmt: skip
    shared = {"owner": rep, "team": team}
    accounts = {
        "email": ChannelAccountFactory(
            **shared, name="Sales mailbox", address="sales@ourco.example",
            config={"smtp_host": smtp.host, "smtp_port": smtp.port, "smtp_security": "none"},
        ),
        "twitter": ChannelAccountFactory(
            **shared, kind="twitter", name="Our X", address="@ourco",
            config={"user_id": OUR_X_ID, "username": "ourco"}, credentials=json.dumps({"access_token": "x-token"}),
        ),
        "facebook": ChannelAccountFactory(
            **shared, kind="facebook", name="Our page", address=PAGE_ID, config={"page_id": PAGE_ID},
            credentials=json.dumps({"page_access_token": "fb-page-token"}),
        ),
        "sms": ChannelAccountFactory(
            **shared, kind="sms", name="Our SMS", address=OUR_PHONE,
            credentials=json.dumps({"account_sid": "AC" + "1" * 32, "auth_token": TWILIO_TOKEN}),
        ),
    }  # fmt: skip
    return {"rep": rep, "greta": greta, "accounts": accounts}


def she_writes_on_every_channel(accounts: dict[str, ChannelAccount]) -> None:
    now = timezone.now()
    email_from(accounts["email"], "greta@example.com", subject="Tee times", body="Can we play on Friday?", minutes=0)
    # A tweet, as the X poller stores it (the connector's own raw event type).
    tweet = {
        "data": {
            "id": TWEET_ID, "author_id": GRETA_X_ID, "conversation_id": TWEET_ID, "lang": "en",
            "created_at": (now - dt.timedelta(minutes=30)).strftime("%Y-%m-%dT%H:%M:%S.000Z"),
            "text": "@ourco is the course open after the storm? ⛳", "edit_history_tweet_ids": [TWEET_ID],
        },
        "includes": {"users": [{"id": GRETA_X_ID, "name": "Greta Golfer", "username": "gretagolf"}]},
    }  # fmt: skip
    raw_events_store(
        account=accounts["twitter"], events=[RawEventIn(TWEET_ID, "twitter.tweet", json.dumps(tweet).encode())]
    )
    raw_events_drain(account=accounts["twitter"])
    web = Client()
    # A comment on the page, through Meta's signed webhook.
    change = {
        "field": "feed",
        "value": {
            "item": "comment", "verb": "add", "comment_id": COMMENT_ID, "post_id": POST_ID, "parent_id": POST_ID,
            "created_time": int((now - dt.timedelta(minutes=20)).timestamp()),
            "from": {"id": GRETA_FB_ID, "name": "Greta Golfer"}, "message": "Do you rent clubs for beginners?",
        },
    }  # fmt: skip
    body = json.dumps({"object": "page", "entry": [{"id": PAGE_ID, "time": 1, "changes": [change]}]}).encode()
    import hashlib
    import hmac

    signature = "sha256=" + hmac.new(APP_SECRET.encode(), body, hashlib.sha256).hexdigest()
    response = web.post(
        "/webhooks/facebook/", body, content_type="application/json", HTTP_X_HUB_SIGNATURE_256=signature
    )
    assert response.status_code == 200, response.content
    raw_events_drain(account=accounts["facebook"])
    # A text, through Twilio's signed webhook.
    form = {"MessageSid": "SM" + "c" * 32, "AccountSid": "AC" + "1" * 32, "From": GRETA_PHONE, "To": OUR_PHONE,
            "Body": "Running 10 minutes late 🙈", "NumMedia": "0"}  # fmt: skip
    signature = RequestValidator(TWILIO_TOKEN).compute_signature("http://testserver/webhooks/twilio/sms/", form)
    response = web.post(
        "/webhooks/twilio/sms/", urlencode(form), content_type="application/x-www-form-urlencoded",
        HTTP_X_TWILIO_SIGNATURE=signature,
    )  # fmt: skip
    assert response.status_code == 200, response.content
    raw_events_drain(account=accounts["sms"])


def test_one_thread_interleaves_every_channel_and_each_is_answered_on_its_own(
    page, live_server, smtp_server: SmtpServer, settings  # noqa: F811
) -> None:  # fmt: skip
    settings.FACEBOOK_APP_SECRET = APP_SECRET
    settings.TWILIO_PUBLIC_BASE_URL = ""
    data = world(smtp_server)
    accounts: dict[str, ChannelAccount] = data["accounts"]  # type: ignore[assignment]
    she_writes_on_every_channel(accounts)
    greta = data["greta"]
    inbound = Message.objects.filter(contact=greta, direction="inbound")
    assert sorted(inbound.values_list("channel", flat=True)) == ["email", "facebook", "sms", "twitter"]
    assert inbound.values("thread_id").distinct().count() == 1  # one thread for the relationship

    sign_in(page, live_server)
    page.goto(f"{live_server.url}/inbox/")
    page.get_by_role("link", name="Greta Golfer").click()
    messages = page.locator("#message-list")
    for label in ("E-mail", "Twitter/X", "Facebook", "SMS"):
        expect(messages.locator(".channel-badge", has_text=label).first).to_be_visible()
    expect(messages).to_contain_text("is the course open after the storm? ⛳")
    expect(messages).to_contain_text("Do you rent clubs for beginners?")
    expect(messages).to_contain_text("Running 10 minutes late 🙈")

    answers = {
        "email": ("Sales mailbox (E-mail (IMAP/SMTP))", "email:greta@example.com", "Friday at 9 works."),
        "twitter": ("Our X (Twitter/X)", f"twitter:{GRETA_X_ID}", "Open again since this morning!"),
        "facebook": ("Our page (Facebook page)", f"facebook:{GRETA_FB_ID}", "We do, free for first-timers."),
        "sms": ("Our SMS (SMS (Twilio))", f"phone:{GRETA_PHONE}", "No problem, see you soon."),
    }  # fmt: skip
    for kind, (account_label, recipient, text) in answers.items():
        page.get_by_label("Send from").select_option(label=account_label)
        page.get_by_label("To", exact=True).select_option(value=recipient)
        page.get_by_label("Message", exact=True).fill(text)
        page.get_by_role("button", name="Send").click()
        expect(page.get_by_text(f"Reply queued for sending through {accounts[kind].name}.")).to_be_visible()
        expect(messages.locator(".message-item").last).to_contain_text(text)

    # The Celery worker's part: deliver each reply through its channel's real sender.
    outbound = {m.channel: m for m in Message.objects.filter(contact=greta, direction="outbound")}
    assert set(outbound) == {"email", "twitter", "facebook", "sms"}
    assert message_deliver(message_id=outbound["email"].pk) == "sent"
    assert smtp_server.messages and b"Friday at 9 works." in smtp_server.messages[-1].data
    with responses.RequestsMock(assert_all_requests_are_fired=True) as provider:
        provider.post(
            "https://api.twitter.com/2/tweets", status=201,
            json={"data": {"id": "1860000000000000099", "text": "@gretagolf Open again since this morning!",
                           "edit_history_tweet_ids": ["1860000000000000099"]}},
        )  # fmt: skip
        provider.post(re.compile(rf"https://graph\.facebook\.com/v[\d.]+/{COMMENT_ID}/comments"),
                      json={"id": f"{POST_ID}_999"})  # fmt: skip
        provider.post(
            re.compile(r"https://api\.twilio\.com/2010-04-01/Accounts/AC1+/Messages\.json"), status=201,
            json={"sid": "SM" + "d" * 32, "status": "queued", "to": GRETA_PHONE, "from": OUR_PHONE,
                  "body": "No problem, see you soon.", "num_segments": "1", "direction": "outbound-api",
                  "account_sid": "AC" + "1" * 32, "date_created": "Wed, 25 Nov 2026 10:00:00 +0000",
                  "error_code": None, "error_message": None, "price": None, "uri": "/x"},
        )  # fmt: skip
        for kind in ("twitter", "facebook", "sms"):
            assert message_deliver(message_id=outbound[kind].pk) == "sent", outbound[kind].meta
        tweet_call = next(c for c in provider.calls if "api.twitter.com" in c.request.url)
        assert json.loads(tweet_call.request.body)["reply"] == {"in_reply_to_tweet_id": TWEET_ID}

    page.reload()
    for text in (a[2] for a in answers.values()):
        item = messages.locator(".message-item", has_text=text)
        expect(item.locator(".delivery-badge")).to_have_text("Sent")
    # Eight messages, one thread, four channels each way.
    expect(messages.locator(".message-item")).to_have_count(8)
