"""The Twilio SMS connector: conversation keys, sending through Twilio's Messages API (recorded exchanges shaped as
Twilio documents them, served by ``responses``), the opt-out lock on the sender, and the connection test."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any
from urllib.parse import parse_qs

import pytest
import requests
import responses
from django.test import Client, override_settings
from django.utils import timezone

from contacts.models import Consent
from contacts.services.consent import consent_set
from crm.errors import DomainError
from tests.threads.test_twilio_webhook import (
    ACCOUNT_SID,
    ANN,
    OUR,
    SMS_URL,
    STATUS_URL,
    ann_phone,
    inbound_form,
    sms_account,
    status_form,
    twilio_post,
)
from threads import connectors
from threads.connectors import AttachmentIn, ChannelRateLimited, ChannelUnavailable, Party, RawEventIn
from threads.connectors.sms import EVENT_TYPE, SmsRefused, keyword_of
from threads.models import ChannelAccount, Message, RawEvent
from threads.services.channel_accounts import channel_account_test
from threads.services.pipeline import raw_events_process, raw_events_store
from threads.services.send import message_deliver, message_send
from threads.tasks import message_deliver_task

pytestmark = pytest.mark.django_db

API = f"https://api.twilio.com/2010-04-01/Accounts/{ACCOUNT_SID}"
MESSAGES = f"{API}/Messages.json"
SID = "SM" + "b" * 32


def twilio_message(sid: str = SID, status: str = "queued", body: str = "Yes, until Friday.", **extra: Any) -> dict:
    """A Message resource as Twilio's create call returns it."""
    now = "Thu, 24 Aug 2023 05:01:45 +0000"
    return {
        "account_sid": ACCOUNT_SID, "api_version": "2010-04-01", "body": body, "date_created": now,
        "date_sent": None, "date_updated": now, "direction": "outbound-api", "error_code": None,
        "error_message": None, "from": OUR, "messaging_service_sid": None, "num_media": "0", "num_segments": "1",
        "price": None, "price_unit": "USD", "sid": sid, "status": status,
        "subresource_uris": {"media": f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/{sid}/Media.json"},
        "to": ANN, "uri": f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/{sid}.json", **extra,
    }  # fmt: skip


def twilio_error(code: int, message: str, status: int) -> dict:
    return {"code": code, "message": message, "more_info": f"https://www.twilio.com/docs/errors/{code}",
            "status": status}  # fmt: skip


def store_sms(account: ChannelAccount, sid: str, *, at: dt.datetime, body: str = "Hello", sender: str = ANN) -> None:
    """An inbound SMS as the webhook stores it, received at ``at`` (still pending)."""
    form = inbound_form(sid=sid, body=body, From=sender)
    raw_events_store(
        account=account,
        events=[RawEventIn(provider_event_id=sid, event_type=EVENT_TYPE, payload=json.dumps(form).encode(),
                           meta={"our": OUR, "their": sender})],
    )  # fmt: skip
    RawEvent.objects.filter(channel_account=account, provider_event_id=sid).update(received_at=at)


def key_of(sid: str) -> str:
    return Message.objects.get(external_id=sid).provider_thread_key


@pytest.fixture
def account(world: Any) -> ChannelAccount:
    return sms_account(world)


@pytest.fixture
def inbound(world: Any, account: ChannelAccount) -> Message:
    """Ann's SMS, already in her thread."""
    ann_phone(world)
    store_sms(account, "SM" + "1" * 32, at=timezone.now() - dt.timedelta(hours=1), body="Is the offer still valid?")
    raw_events_process(account=account)
    return Message.objects.get()


def reply(world: Any, account: ChannelAccount, inbound: Message, body: str = "Yes, until Friday.") -> Message:
    return message_send(actor=world.a1, thread=inbound.thread, account=account, to=[Party("phone", ANN)],
                        body_text=body, reply_to=inbound)  # fmt: skip


def sent_form(call: Any) -> dict[str, list[str]]:
    return parse_qs(call.request.body if isinstance(call.request.body, str) else call.request.body.decode())


# --- Conversation keys ---------------------------------------------------------------------------------------


def test_messages_within_the_inactivity_window_share_a_key_and_a_gap_starts_a_new_one(world, account) -> None:
    ann_phone(world)
    start = timezone.now() - dt.timedelta(hours=200)
    store_sms(account, "SMa", at=start)
    raw_events_process(account=account)
    store_sms(account, "SMb", at=start + dt.timedelta(hours=71))
    raw_events_process(account=account)
    store_sms(account, "SMc", at=start + dt.timedelta(hours=71 + 73))  # quiet for 73 h > 72 h
    raw_events_process(account=account)
    first = f"sms:{OUR}:{ANN}:{start.astimezone(dt.UTC):%Y-%m-%dT%H:%M:%SZ}"
    assert key_of("SMa") == key_of("SMb") == first
    later = start + dt.timedelta(hours=144)
    assert key_of("SMc") == f"sms:{OUR}:{ANN}:{later.astimezone(dt.UTC):%Y-%m-%dT%H:%M:%SZ}"
    # Every session lands in Ann's thread; the key only lets a rep move one conversation to a topic.
    assert {m.thread_id for m in Message.objects.all()} == {Message.objects.get(external_id="SMa").thread_id}


@override_settings(SMS_THREAD_INACTIVITY_HOURS=1)
def test_the_inactivity_window_is_a_setting(world, account) -> None:
    ann_phone(world)
    start = timezone.now() - dt.timedelta(hours=5)
    store_sms(account, "SMa", at=start)
    raw_events_process(account=account)
    store_sms(account, "SMb", at=start + dt.timedelta(minutes=90))
    raw_events_process(account=account)
    assert key_of("SMa") != key_of("SMb")


def test_a_burst_processed_in_one_batch_shares_one_key(world, account) -> None:
    # A new number texts three times before a worker gets to them: one batch, nothing stored yet for the pair.
    now = timezone.now()
    for i, sid in enumerate(["SMx", "SMy", "SMz"]):
        store_sms(account, sid, at=now - dt.timedelta(minutes=3 - i))
    raw_events_process(account=account)
    assert Message.objects.count() == 3
    assert key_of("SMx") == key_of("SMy") == key_of("SMz")


def test_each_number_pair_has_its_own_key(world, account) -> None:
    now = timezone.now()
    store_sms(account, "SMa", at=now)
    store_sms(account, "SMb", at=now, sender="+14155550177")
    raw_events_process(account=account)
    assert key_of("SMa").startswith(f"sms:{OUR}:{ANN}:")
    assert key_of("SMb").startswith(f"sms:{OUR}:+14155550177:")


def test_a_reply_continues_the_conversation_it_answers(world, account, inbound) -> None:
    sent = reply(world, account, inbound)
    assert sent.provider_thread_key == inbound.provider_thread_key
    assert sent.thread == inbound.thread and sent.delivery == Message.Delivery.QUEUED
    assert sent.external_id.startswith("pending:") and sent.author_address == OUR


def test_replaying_events_stores_nothing_twice(world, account, inbound) -> None:
    from threads.services.pipeline import raw_events_replay

    before = (Message.objects.count(), inbound.provider_thread_key)
    result = raw_events_replay(account=account)
    assert result.created == [] and (Message.objects.count(), Message.objects.get().provider_thread_key) == before


@pytest.mark.parametrize(
    ("body", "expected"),
    [("STOP", "opt_out"), (" quit\n", "opt_out"), ("Unsubscribe!", "opt_out"), ("START", "opt_in"),
     ("unstop", "opt_in"), ("YES", None), ("stop please", None), ("", None)],
)  # fmt: skip
def test_keywords(body: str, expected: str | None) -> None:
    found = keyword_of(body)
    assert (found or {}).get("action") == expected


# --- Sending -------------------------------------------------------------------------------------------------


@override_settings(TWILIO_PUBLIC_BASE_URL="https://crm.example.com")
@responses.activate
def test_reply_goes_out_through_twilio_and_takes_the_message_sid(world, account, inbound) -> None:
    responses.post(MESSAGES, json=twilio_message(), status=201)
    sent = reply(world, account, inbound, body="Yes, until Friday 🎉 — שלום")
    ref = sent.external_id.removeprefix("pending:")
    assert message_deliver(message_id=sent.pk) == Message.Delivery.SENT

    form = sent_form(responses.calls[0])
    assert form["From"] == [OUR] and form["To"] == [ANN] and form["Body"] == ["Yes, until Friday 🎉 — שלום"]
    assert form["StatusCallback"] == [f"https://crm.example.com/webhooks/twilio/status/?ref={ref}"]
    assert responses.calls[0].request.headers["Authorization"].startswith("Basic ")
    sent.refresh_from_db()
    assert (sent.external_id, sent.global_key, sent.delivery) == (SID, f"sms:{SID}", "sent")
    assert sent.meta["twilio_status"] == "queued" and sent.meta["segments"] == "1"

    # Twilio's receipts, signed for the public URL it was given, reach this one message.
    twilio = Client()
    url = f"https://crm.example.com/webhooks/twilio/status/?ref={ref}"
    for status in ("sent", "delivered"):
        response = twilio_post(twilio, f"{STATUS_URL}?ref={ref}", status_form(SID, status), signed_url=url)
        assert response.status_code == 200
    sent.refresh_from_db()
    assert sent.delivery == "delivered"
    # The same MessageSid seen again (a copy with our number as sender): still one message.
    assert twilio_post(twilio, SMS_URL, inbound_form(sid=SID, From=OUR, To=ANN, body="Yes"),
                       signed_url="https://crm.example.com/webhooks/twilio/sms/").status_code == 200  # fmt: skip
    raw_events_process(account=account)
    assert Message.objects.filter(global_key=f"sms:{SID}").count() == 1 and Message.objects.count() == 2


@responses.activate
def test_no_status_callback_when_our_only_url_is_loopback(world, account, inbound) -> None:
    responses.post(MESSAGES, json=twilio_message(), status=201)
    message_deliver(message_id=reply(world, account, inbound).pk)
    assert "StatusCallback" not in sent_form(responses.calls[0])


@responses.activate
def test_a_messaging_service_sends_instead_of_the_number(world, account, inbound) -> None:
    account.config = {"messaging_service_sid": "MG" + "c" * 32}
    account.save()
    responses.post(MESSAGES, json=twilio_message(), status=201)
    message_deliver(message_id=reply(world, account, inbound).pk)
    form = sent_form(responses.calls[0])
    assert form["MessagingServiceSid"] == ["MG" + "c" * 32] and "From" not in form


@responses.activate
def test_an_api_key_authenticates_the_rest_calls(world, inbound) -> None:
    account = ChannelAccount.objects.get(kind="sms")
    account.credentials = json.dumps(
        {"account_sid": ACCOUNT_SID, "auth_token": "t" * 32, "api_key_sid": "SK" + "d" * 32, "api_key_secret": "s3"}
    )
    account.save()
    responses.post(MESSAGES, json=twilio_message(), status=201)
    message_deliver(message_id=reply(world, account, inbound).pk)
    import base64

    auth = responses.calls[0].request.headers["Authorization"].removeprefix("Basic ")
    assert base64.b64decode(auth).decode() == f"SK{'d' * 32}:s3"


@override_settings(TWILIO_PUBLIC_BASE_URL="https://crm.example.com")
@responses.activate
def test_a_receipt_for_a_send_whose_worker_died_keeps_it_from_going_out_twice(world, account, inbound) -> None:
    # Twilio accepted the message but the worker died before committing the MessageSid: the row is still queued
    # under its provisional id. The status callback (its URL carries that id) names the message.
    sent = reply(world, account, inbound)
    ref = sent.external_id.removeprefix("pending:")
    url = f"https://crm.example.com/webhooks/twilio/status/?ref={ref}"
    response = twilio_post(Client(), f"{STATUS_URL}?ref={ref}", status_form(SID, "sent"), signed_url=url)
    assert response.status_code == 200
    sent.refresh_from_db()
    assert (sent.external_id, sent.delivery) == (SID, "sent")
    # The retried task finds nothing queued: no second POST to Twilio (none is registered: it would raise).
    assert message_deliver(message_id=sent.pk) == "sent"
    assert len(responses.calls) == 0


@responses.activate
def test_refused_credentials_fail_the_message_and_flag_the_account(world, account, inbound) -> None:
    responses.post(MESSAGES, json=twilio_error(20003, "Authenticate", 401), status=401)
    sent = reply(world, account, inbound)
    assert message_deliver(message_id=sent.pk) == Message.Delivery.FAILED
    sent.refresh_from_db()
    account.refresh_from_db()
    assert "Twilio refused the credentials of Support SMS" in sent.meta["error"] and "20003" in sent.meta["error"]
    assert account.status == ChannelAccount.Status.NEEDS_REAUTH


@pytest.mark.parametrize(("headers", "wait"), [({"Retry-After": "30"}, 30.0), ({}, 60.0)])
@responses.activate
def test_rate_limit_asks_the_task_to_wait(world, account, inbound, headers, wait) -> None:
    responses.post(MESSAGES, json=twilio_error(20429, "Too Many Requests", 429), status=429, headers=headers)
    sent = reply(world, account, inbound)
    with pytest.raises(ChannelRateLimited) as limited:
        message_deliver(message_id=sent.pk)
    assert limited.value.retry_after == wait
    sent.refresh_from_db()
    assert sent.delivery == Message.Delivery.QUEUED  # the task retries it


@pytest.mark.parametrize("status", [500, 503])
@responses.activate
def test_twilio_outage_is_transient(world, account, inbound, status) -> None:
    responses.post(MESSAGES, json=twilio_error(20500, "Internal Server Error", status), status=status)
    sent = reply(world, account, inbound)
    with pytest.raises(ChannelUnavailable, match=f"HTTP {status}"):
        message_deliver(message_id=sent.pk)
    sent.refresh_from_db()
    assert sent.delivery == Message.Delivery.QUEUED


@responses.activate
def test_unreachable_twilio_is_transient(world, account, inbound) -> None:
    responses.post(MESSAGES, body=requests.ConnectionError("Connection refused"))
    sent = reply(world, account, inbound)
    with pytest.raises(ChannelUnavailable, match="Cannot reach Twilio"):
        message_deliver(message_id=sent.pk)


@responses.activate
def test_an_invalid_number_fails_the_message_with_twilios_reason(world, account, inbound) -> None:
    responses.post(MESSAGES, json=twilio_error(21211, "Invalid 'To' Phone Number: +1415555XXXX", 400), status=400)
    sent = reply(world, account, inbound)
    outcome = message_deliver_task.apply(args=[sent.pk], retries=message_deliver_task.max_retries)
    assert outcome.get() == "failed"
    sent.refresh_from_db()
    assert (
        sent.delivery == "failed" and "21211" in sent.meta["error"] and "not a valid phone number" in sent.meta["error"]
    )


@responses.activate
def test_a_contact_who_opted_out_after_the_reply_was_queued_gets_nothing(world, account, inbound) -> None:
    sent = reply(world, account, inbound)
    consent_set(contact=world.a1_shared, channel="sms", status="opted_out", source="SMS STOP keyword", actor=None)
    outcome = message_deliver_task.apply(args=[sent.pk], retries=message_deliver_task.max_retries)
    assert outcome.get() == "failed"
    sent.refresh_from_db()
    assert sent.delivery == "failed" and "Ann Shared opted out of SMS" in sent.meta["error"]
    assert len(responses.calls) == 0  # Twilio was never asked


@responses.activate
def test_the_sender_refuses_an_opted_out_number(world, account, inbound) -> None:
    sent = reply(world, account, inbound)
    world.a1_shared.do_not_contact = True
    world.a1_shared.save()
    with pytest.raises(SmsRefused, match="do-not-contact"):
        connectors.sender_for("sms")(account, connectors.OutgoingDraft(to=[Party("phone", ANN)], body_text="x",
                                                                        external_id=sent.external_id))  # fmt: skip
    assert len(responses.calls) == 0


@responses.activate
def test_unsubscribed_recipient_opts_the_contact_out_and_fails_the_message_at_once(world, account, inbound) -> None:
    responses.post(MESSAGES, json=twilio_error(21610, "Attempt to send to unsubscribed recipient", 400), status=400)
    sent = reply(world, account, inbound)
    assert message_deliver(message_id=sent.pk) == Message.Delivery.FAILED
    sent.refresh_from_db()
    assert "21610" in sent.meta["error"] and "replied STOP" in sent.meta["error"]
    consent = Consent.objects.get(contact=world.a1_shared, channel="sms")
    assert (consent.status, consent.source) == ("opted_out", "Twilio: unsubscribed recipient (21610)")
    with pytest.raises(DomainError, match="opted out of SMS"):
        reply(world, account, inbound, body="Still there?")


@responses.activate
def test_unsubscribed_recipient_fails_the_message_with_the_explanation(world, account, inbound) -> None:
    responses.post(MESSAGES, json=twilio_error(21610, "Attempt to send to unsubscribed recipient", 400), status=400)
    sent = reply(world, account, inbound)
    outcome = message_deliver_task.apply(args=[sent.pk], retries=message_deliver_task.max_retries)
    assert outcome.get() == "failed"
    sent.refresh_from_db()
    assert sent.delivery == "failed" and "recipient replied STOP" in sent.meta["error"]


@pytest.mark.parametrize(
    ("to", "body", "field"),
    [([Party("phone", ANN), Party("phone", "+14155550177")], "Hi", "to"),
     ([Party("phone", "not a number")], "Hi", "to"), ([Party("phone", ANN)], "x" * 1601, "body_text")],
)  # fmt: skip
def test_a_reply_sms_cannot_send_is_refused_before_it_is_stored(world, account, inbound, to, body, field) -> None:
    with pytest.raises(DomainError) as refused:
        message_send(actor=world.a1, thread=inbound.thread, account=account, to=to, body_text=body)
    assert field in refused.value.fields
    assert Message.objects.count() == 1


def test_an_sms_with_an_attachment_is_refused(world, account, inbound) -> None:
    with pytest.raises(DomainError, match="cannot carry attachments"):
        message_send(actor=world.a1, thread=inbound.thread, account=account, to=[Party("phone", ANN)], body_text="Hi",
                     attachments=[AttachmentIn("quote.pdf", "application/pdf", b"%PDF-1.4", 8)])  # fmt: skip
    assert Message.objects.count() == 1


def test_an_sms_reply_drops_the_prefilled_subject(world, account, inbound) -> None:
    sent = message_send(actor=world.a1, thread=inbound.thread, account=account, to=[Party("phone", "(415) 555-0199")],
                        subject="Re: Pricing", body_text="Hi")  # fmt: skip
    assert sent.subject == "" and sent.recipients == [{"kind": "to", "address": ANN, "name": ""}]


def test_missing_credentials_need_reauthentication(world, account, inbound) -> None:
    account.credentials = json.dumps({"auth_token": "t" * 32})
    account.save()
    sent = reply(world, account, inbound)
    assert message_deliver(message_id=sent.pk) == "failed"
    sent.refresh_from_db()
    assert "no Twilio Account SID" in sent.meta["error"]


# --- Connection test -----------------------------------------------------------------------------------------


def twilio_account(status: str = "active") -> dict:
    return {
        "auth_token": "redacted", "date_created": "Thu, 24 Aug 2023 05:01:45 +0000",
        "date_updated": "Thu, 24 Aug 2023 05:01:45 +0000", "friendly_name": "Acme Support", "owner_account_sid":
        ACCOUNT_SID, "sid": ACCOUNT_SID, "status": status, "subresource_uris": {}, "type": "Full",
        "uri": f"/2010-04-01/Accounts/{ACCOUNT_SID}.json",
    }  # fmt: skip


def number_page(numbers: list[str]) -> dict:
    return {
        "end": max(0, len(numbers) - 1),
        "first_page_uri": f"/2010-04-01/Accounts/{ACCOUNT_SID}/IncomingPhoneNumbers.json",
        "next_page_uri": None, "page": 0, "page_size": 1, "previous_page_uri": None, "start": 0,
        "uri": f"/2010-04-01/Accounts/{ACCOUNT_SID}/IncomingPhoneNumbers.json",
        "incoming_phone_numbers": [
            {"sid": "PN" + "e" * 32, "account_sid": ACCOUNT_SID, "phone_number": n, "friendly_name": n,
             "capabilities": {"sms": True, "mms": True, "voice": True}} for n in numbers
        ],
    }  # fmt: skip


@responses.activate
def test_connection_test_names_the_number_and_account(world, account) -> None:
    responses.get(f"{API}.json", json=twilio_account())
    responses.get(f"{API}/IncomingPhoneNumbers.json", json=number_page([OUR]))
    assert channel_account_test(account=account, actor=world.ma) == (
        f"Connected: {OUR} (account {ACCOUNT_SID} “Acme Support”)"
    )
    assert parse_qs(responses.calls[1].request.url.split("?", 1)[1])["PhoneNumber"] == [OUR]


@responses.activate
def test_connection_test_with_refused_credentials_asks_for_reauthentication(world, account) -> None:
    responses.get(f"{API}.json", json=twilio_error(20003, "Authenticate", 401), status=401)
    with pytest.raises(DomainError, match="Twilio refused the credentials") as refused:
        channel_account_test(account=account, actor=world.ma)
    assert refused.value.code == "auth_refused"
    account.refresh_from_db()
    assert account.status == ChannelAccount.Status.NEEDS_REAUTH


@responses.activate
def test_connection_test_says_when_the_number_is_not_in_the_account(world, account) -> None:
    responses.get(f"{API}.json", json=twilio_account())
    responses.get(f"{API}/IncomingPhoneNumbers.json", json=number_page([]))
    with pytest.raises(DomainError, match=r"\+14155550100 is not one of its numbers"):
        channel_account_test(account=account, actor=world.ma)


@responses.activate
def test_connection_test_reports_a_suspended_account(world, account) -> None:
    responses.get(f"{API}.json", json=twilio_account(status="suspended"))
    responses.get(f"{API}/IncomingPhoneNumbers.json", json=number_page([OUR]))
    with pytest.raises(DomainError, match="is suspended"):
        channel_account_test(account=account, actor=world.ma)


@pytest.mark.django_db(transaction=True)
@override_settings(TWILIO_PUBLIC_BASE_URL="https://crm.example.com")
def test_a_receipt_arriving_while_the_send_commits_waits_for_it(world, account, inbound) -> None:
    import threading
    import time

    from django.db import connection, transaction

    sent = reply(world, account, inbound)
    ref = sent.external_id.removeprefix("pending:")
    url = f"https://crm.example.com/webhooks/twilio/status/?ref={ref}"
    answers: list[int] = []

    def twilio_calls_back() -> None:
        try:
            answers.append(twilio_post(Client(), f"{STATUS_URL}?ref={ref}", status_form(SID, "delivered"),
                                       signed_url=url).status_code)  # fmt: skip
        finally:
            connection.close()

    # What message_deliver does: lock the row, hear Twilio's MessageSid, commit. The receipt comes in between.
    with transaction.atomic():
        Message.objects.select_for_update().get(pk=sent.pk)
        Message.objects.filter(pk=sent.pk).update(external_id=SID, global_key=f"sms:{SID}", delivery="sent")
        callback = threading.Thread(target=twilio_calls_back)
        callback.start()
        time.sleep(0.5)
        assert callback.is_alive()  # waiting for our row lock, not answering "unknown MessageSid"
    callback.join(timeout=10)
    assert answers == [200]
    sent.refresh_from_db()
    assert (sent.external_id, sent.delivery) == (SID, "delivered")
