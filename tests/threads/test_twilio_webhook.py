"""Twilio's webhooks: inbound SMS and delivery-status callbacks, signed with X-Twilio-Signature exactly as Twilio
signs them (RequestValidator.compute_signature over the URL and the form fields). Only correctly signed requests
for one of our numbers store anything, each MessageSid once."""

from __future__ import annotations

import json
import logging
from typing import Any
from urllib.parse import urlencode

import pytest
from django.test import Client, override_settings
from django.utils import timezone
from twilio.request_validator import RequestValidator

from accounts.models import Visibility
from contacts.models import Consent, ContactIdentity
from crm.errors import DomainError
from threads.connectors import Party
from threads.models import ChannelAccount, Message, RawEvent
from threads.services.channel_accounts import channel_account_create, channel_account_pause
from threads.services.send import message_send
from threads.tasks import raw_events_process_task

pytestmark = pytest.mark.django_db

ACCOUNT_SID = "AC" + "a1" * 16
AUTH_TOKEN = "12345678901234567890123456789012"
OUR = "+14155550100"
ANN = "+14155550199"
SMS_URL = "/webhooks/twilio/sms/"
STATUS_URL = "/webhooks/twilio/status/"
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response />'


def sms_account(
    world: Any, *, address: str = "(415) 555-0100", token: str = AUTH_TOKEN, **kwargs: Any
) -> ChannelAccount:
    """A team SMS account, its number typed the way a person would."""
    return channel_account_create(
        actor=world.ma, kind="sms", name=kwargs.pop("name", "Support SMS"), address=address,
        visibility=Visibility.TEAM, credentials={"account_sid": ACCOUNT_SID, "auth_token": token}, **kwargs,
    )  # fmt: skip


def ann_phone(world: Any, number: str = ANN) -> ContactIdentity:
    return ContactIdentity.objects.create(contact=world.a1_shared, kind="phone", value=number, normalized=number)


def inbound_form(
    sid: str = "SM" + "0" * 31 + "1", body: str = "Is the offer still valid?", **extra: str
) -> dict[str, str]:
    """The fields Twilio posts for an inbound SMS (https://www.twilio.com/docs/messaging/guides/webhook-request)."""
    form = {
        "ToCountry": "US", "ToState": "CA", "SmsMessageSid": sid, "NumMedia": "0", "ToCity": "SAN FRANCISCO",
        "FromZip": "94105", "SmsSid": sid, "FromState": "CA", "SmsStatus": "received", "FromCity": "SAN FRANCISCO",
        "Body": body, "FromCountry": "US", "To": OUR, "MessagingServiceSid": "", "ToZip": "94105",
        "NumSegments": "1", "MessageSid": sid, "AccountSid": ACCOUNT_SID, "From": ANN, "ApiVersion": "2010-04-01",
    }  # fmt: skip
    form.update(extra)
    return form


def status_form(sid: str, status: str, **extra: str) -> dict[str, str]:
    """A status callback (https://www.twilio.com/docs/messaging/guides/track-outbound-message-status)."""
    form = {
        "SmsSid": sid, "SmsStatus": status, "MessageStatus": status, "To": ANN, "MessageSid": sid,
        "AccountSid": ACCOUNT_SID, "From": OUR, "ApiVersion": "2010-04-01",
    }  # fmt: skip
    form.update(extra)
    return form


def twilio_post(
    client: Client, path: str, form: dict[str, str], *, token: str | None = AUTH_TOKEN, signed_url: str | None = None,
    signature: str | None = None, **headers: Any,
) -> Any:  # fmt: skip
    """POST the form as Twilio does, signed for ``signed_url`` (default: the URL the test client requests)."""
    url = signed_url or f"http://testserver{path}"
    if signature is None and token is not None:
        signature = RequestValidator(token).compute_signature(url, form)
    if signature is not None:
        headers["HTTP_X_TWILIO_SIGNATURE"] = signature
    return client.post(path, data=urlencode(form), content_type="application/x-www-form-urlencoded", **headers)


@pytest.fixture
def queued(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    sent: list[int] = []
    monkeypatch.setattr(raw_events_process_task, "delay", sent.append)
    return sent


@pytest.fixture
def account(world: Any) -> ChannelAccount:
    return sms_account(world)


@pytest.fixture
def twilio() -> Client:
    return Client(enforce_csrf_checks=True)  # no session, no CSRF token: the signature is the authentication


# --- Inbound SMS ---------------------------------------------------------------------------------------------


def test_signed_sms_is_stored_then_lands_in_the_contacts_thread(
    world, account, twilio, queued, django_capture_on_commit_callbacks
) -> None:
    ann_phone(world)
    with django_capture_on_commit_callbacks(execute=True):
        response = twilio_post(twilio, SMS_URL, inbound_form())
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/xml") and response.content.decode() == EMPTY_TWIML
    raw = RawEvent.objects.get()
    assert (raw.provider_event_id, raw.event_type, raw.status) == ("SM" + "0" * 31 + "1", "twilio.sms", "pending")
    assert json.loads(bytes(raw.payload)) == inbound_form()
    assert queued == [account.pk]
    assert not Message.objects.exists()  # the request only stores; the task ingests

    assert raw_events_process_task(account.pk) == 1
    message = Message.objects.get()
    assert message.contact == world.a1_shared and message.thread.topic == ""
    assert (message.channel, message.direction, message.author_address) == ("sms", "inbound", ANN)
    assert message.external_id == "SM" + "0" * 31 + "1" and message.global_key == "sms:SM" + "0" * 31 + "1"
    assert message.body_text == "Is the offer still valid?"
    assert message.sent_at == raw.received_at
    assert message.meta["twilio"]["from_city"] == "SAN FRANCISCO"
    assert message.provider_thread_key.startswith(f"sms:{OUR}:{ANN}:")
    assert message.thread.awaiting_reply


def test_invalid_signature_is_refused_and_stores_nothing(account, twilio, queued) -> None:
    response = twilio_post(twilio, SMS_URL, inbound_form(), token="another-accounts-token-0000000000")
    assert response.status_code == 403
    assert not RawEvent.objects.exists() and queued == []


def test_signature_of_other_fields_is_refused(account, twilio) -> None:
    signature = RequestValidator(AUTH_TOKEN).compute_signature(f"http://testserver{SMS_URL}", inbound_form())
    response = twilio_post(twilio, SMS_URL, inbound_form(body="Tampered"), signature=signature)
    assert response.status_code == 403
    assert not RawEvent.objects.exists()


def test_missing_signature_is_refused(account, twilio) -> None:
    response = twilio_post(twilio, SMS_URL, inbound_form(), token=None)
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "forbidden"
    assert not RawEvent.objects.exists()


def test_replayed_message_sid_stores_nothing_new(account, twilio, queued, django_capture_on_commit_callbacks) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        first = twilio_post(twilio, SMS_URL, inbound_form())
    with django_capture_on_commit_callbacks(execute=True):
        again = twilio_post(twilio, SMS_URL, inbound_form())
    assert first.status_code == again.status_code == 200
    assert RawEvent.objects.count() == 1 and queued == [account.pk]
    raw_events_process_task(account.pk)
    with django_capture_on_commit_callbacks(execute=True):
        assert twilio_post(twilio, SMS_URL, inbound_form()).status_code == 200
    raw_events_process_task(account.pk)
    assert RawEvent.objects.count() == 1 and Message.objects.count() == 1


@override_settings(TWILIO_PUBLIC_BASE_URL="https://crm.example.com")
def test_behind_a_proxy_the_signature_covers_the_public_url(account, twilio) -> None:
    # The proxy forwards to http://testserver; Twilio signed the public https URL it called, query string included.
    public = "https://crm.example.com/webhooks/twilio/sms/?source=twilio"
    ok = twilio.post(
        f"{SMS_URL}?source=twilio", data=urlencode(inbound_form()), content_type="application/x-www-form-urlencoded",
        HTTP_X_TWILIO_SIGNATURE=RequestValidator(AUTH_TOKEN).compute_signature(public, inbound_form()),
    )  # fmt: skip
    assert ok.status_code == 200 and RawEvent.objects.count() == 1
    # Signed for the internal URL the proxy used: not what Twilio called, refused.
    internal = twilio_post(twilio, SMS_URL, inbound_form(sid="SM" + "2" * 32))
    assert internal.status_code == 403 and RawEvent.objects.count() == 1


def test_a_body_over_the_limit_is_refused_before_it_is_parsed(account, twilio) -> None:
    form = inbound_form(body="x" * (10 * 1024 * 1024))
    response = twilio_post(twilio, SMS_URL, form)
    assert response.status_code == 413
    assert not RawEvent.objects.exists()


def test_a_declared_length_over_the_limit_is_refused_unread(account, twilio) -> None:
    body = urlencode(inbound_form()).encode()
    response = twilio.generic(
        "POST", SMS_URL, body, content_type="application/x-www-form-urlencoded", CONTENT_LENGTH=str(10 * 1024 * 1024),
        HTTP_X_TWILIO_SIGNATURE=RequestValidator(AUTH_TOKEN).compute_signature(f"http://testserver{SMS_URL}",
                                                                               inbound_form()),
    )  # fmt: skip
    assert response.status_code == 413 and not RawEvent.objects.exists()


def test_unknown_to_number_gets_empty_twiml_and_a_log_line(world, account, twilio, caplog) -> None:
    with caplog.at_level(logging.WARNING, logger="threads.api.twilio_webhook"):
        response = twilio_post(twilio, SMS_URL, inbound_form(To="+14155550111"))
    assert response.status_code == 200 and response.content.decode() == EMPTY_TWIML
    assert not RawEvent.objects.exists()
    assert "no SMS account here" in caplog.text and "+14155550111" in caplog.text


def test_national_formats_are_normalized_to_e164(world, account, twilio, queued) -> None:
    assert account.address == OUR  # typed as "(415) 555-0100"
    ann_phone(world)
    # Numbers without a country code read in PHONENUMBER_DEFAULT_REGION (US).
    response = twilio_post(twilio, SMS_URL, inbound_form(To="415-555-0100", From="(415) 555-0199"))
    assert response.status_code == 200
    raw_events_process_task(account.pk)
    message = Message.objects.get()
    assert message.author_address == ANN and message.contact == world.a1_shared
    assert message.provider_thread_key.startswith(f"sms:{OUR}:{ANN}:")


def test_paused_account_takes_nothing(world, account, twilio, queued) -> None:
    channel_account_pause(account=account, actor=world.ma)
    response = twilio_post(twilio, SMS_URL, inbound_form())
    assert response.status_code == 200 and not RawEvent.objects.exists() and queued == []


def test_two_accounts_on_one_number_store_one_message_seen_by_both(world, account, twilio, queued) -> None:
    private = sms_account(world, name="Mia's SMS", token="tokentokentokentokentokentoken00")
    private.visibility, private.owner = Visibility.PRIVATE, world.a1
    private.save()
    # Twilio signs with the one account it belongs to; the other account's token does not validate it.
    assert twilio_post(twilio, SMS_URL, inbound_form()).status_code == 200
    assert list(RawEvent.objects.values_list("channel_account_id", flat=True)) == [account.pk]


def test_emoji_rtl_and_ucs2_bodies_arrive_intact(world, account, twilio, queued) -> None:
    ann_phone(world)
    body = "שלום! مرحبا 👋🏽 Grüße — 你好"
    assert twilio_post(twilio, SMS_URL, inbound_form(body=body)).status_code == 200
    raw_events_process_task(account.pk)
    assert Message.objects.get().body_text == body


def test_media_are_kept_as_links_not_fetched(world, account, twilio, queued) -> None:
    import responses

    ann_phone(world)
    media = "https://api.twilio.com/2010-04-01/Accounts/{}/Messages/SM1/Media/ME{}"
    form = inbound_form(
        body="", NumMedia="2", MediaUrl0=media.format(ACCOUNT_SID, 1), MediaContentType0="image/jpeg",
        MediaUrl1=media.format(ACCOUNT_SID, 2), MediaContentType1="application/pdf",
    )  # fmt: skip
    with responses.RequestsMock() as mocked:  # any HTTP request would fail this test
        assert twilio_post(twilio, SMS_URL, form).status_code == 200
        raw_events_process_task(account.pk)
        assert len(mocked.calls) == 0
    message = Message.objects.get()
    assert message.body_text == ""
    assert message.meta["media"] == [
        {"url": media.format(ACCOUNT_SID, 1), "content_type": "image/jpeg"},
        {"url": media.format(ACCOUNT_SID, 2), "content_type": "application/pdf"},
    ]


def test_minimal_and_unknown_fields_are_accepted(world, account, twilio, queued) -> None:
    ann_phone(world)
    form = {"MessageSid": "SM" + "9" * 32, "From": ANN, "To": OUR, "NewTwilioField": "whatever", "NumMedia": "x"}
    assert twilio_post(twilio, SMS_URL, form).status_code == 200
    raw_events_process_task(account.pk)
    message = Message.objects.get()
    assert message.body_text == "" and "media" not in message.meta and message.meta["twilio"] == {}
    assert json.loads(bytes(RawEvent.objects.get().payload))["NewTwilioField"] == "whatever"


def test_unreadable_sender_is_kept_as_a_dead_letter(account, twilio, queued) -> None:
    assert twilio_post(twilio, SMS_URL, inbound_form(From="ACME")).status_code == 200
    raw_events_process_task(account.pk)
    raw = RawEvent.objects.get()
    assert raw.status == RawEvent.Status.DEAD and "From 'ACME' is not a phone number" in raw.error
    assert not Message.objects.exists()


def test_signed_request_without_message_sid_is_a_400(account, twilio) -> None:
    form = inbound_form()
    del form["MessageSid"], form["SmsSid"], form["SmsMessageSid"]
    response = twilio_post(twilio, SMS_URL, form)
    assert response.status_code == 400 and "MessageSid" in response.json()["error"]["message"]
    assert not RawEvent.objects.exists()


def test_only_post_and_forms_are_accepted(account, twilio) -> None:
    assert twilio.get(SMS_URL).status_code == 405
    response = twilio.post(SMS_URL, data=json.dumps(inbound_form()), content_type="application/json",
                           HTTP_X_TWILIO_SIGNATURE="x")  # fmt: skip
    assert response.status_code == 415 and not RawEvent.objects.exists()


# --- Keywords ------------------------------------------------------------------------------------------------


def _sms(twilio: Client, account: ChannelAccount, sid: str, body: str, captured: Any) -> None:
    with captured(execute=True):
        assert twilio_post(twilio, SMS_URL, inbound_form(sid=sid, body=body)).status_code == 200
    with captured(execute=True):  # messages_ingested fires after the ingest commits
        raw_events_process_task(account.pk)


def test_stop_opts_the_contact_out_and_the_next_reply_is_refused(
    world, account, twilio, queued, django_capture_on_commit_callbacks
) -> None:
    ann_phone(world)
    _sms(twilio, account, "SM" + "1" * 32, "  Stop ", django_capture_on_commit_callbacks)
    consent = Consent.objects.get(contact=world.a1_shared, channel="sms")
    assert (consent.status, consent.source, consent.recorded_by) == ("opted_out", "SMS STOP keyword", None)
    stop = Message.objects.get()
    assert stop.meta["keyword"] == {"word": "STOP", "action": "opt_out"}

    with pytest.raises(DomainError, match="Ann Shared opted out of SMS") as refused:
        message_send(actor=world.a1, thread=stop.thread, account=account, to=[Party("phone", ANN)], body_text="Hi?")
    assert refused.value.code == "consent_opted_out"
    assert Message.objects.count() == 1

    # A repeated STOP changes nothing (no new history row); START opts back in.
    history = consent.history.count()
    _sms(twilio, account, "SM" + "2" * 32, "STOP", django_capture_on_commit_callbacks)
    assert consent.history.count() == history
    _sms(twilio, account, "SM" + "3" * 32, "start", django_capture_on_commit_callbacks)
    consent.refresh_from_db()
    assert (consent.status, consent.source) == ("opted_in", "SMS START keyword")


@pytest.mark.parametrize("word", ["STOPALL", "unsubscribe", "Cancel", "END", "quit", "stop."])
def test_every_opt_out_keyword_opts_out(
    world, account, twilio, queued, django_capture_on_commit_callbacks, word
) -> None:
    ann_phone(world)
    _sms(twilio, account, "SM" + "4" * 32, word, django_capture_on_commit_callbacks)
    assert Consent.objects.get(contact=world.a1_shared, channel="sms").status == "opted_out"


@pytest.mark.parametrize("body", ["Please stop calling me at work", "YES", "stop it now", "HELP"])
def test_a_sentence_or_other_word_is_no_keyword(
    world, account, twilio, queued, django_capture_on_commit_callbacks, body
) -> None:
    ann_phone(world)
    _sms(twilio, account, "SM" + "5" * 32, body, django_capture_on_commit_callbacks)
    assert not Consent.objects.filter(contact=world.a1_shared).exists()
    assert "keyword" not in Message.objects.get().meta


def test_stop_from_an_unknown_number_opts_out_the_new_lead(
    world, account, twilio, queued, django_capture_on_commit_callbacks
) -> None:
    _sms(twilio, account, "SM" + "6" * 32, "STOP", django_capture_on_commit_callbacks)
    lead = ContactIdentity.objects.get(kind="phone", normalized=ANN).contact
    assert Consent.objects.get(contact=lead, channel="sms").status == "opted_out"


# --- Status callbacks ----------------------------------------------------------------------------------------


def sent_message(world: Any, account: ChannelAccount, sid: str = "SM" + "a" * 32) -> Message:
    """An outbound SMS Twilio accepted (stored the way message_deliver leaves it)."""
    ann_phone(world)
    from django.db import transaction

    from threads.connectors import NormalizedMessage
    from threads.services.pipeline import ingest_batch

    with transaction.atomic():
        created = ingest_batch(account=account, messages=[NormalizedMessage(
            channel="sms", direction="outbound", external_id=sid, sent_at=timezone.now(),
            author=Party("phone", OUR), counterparts=[Party("phone", ANN, role="to")], body_text="Your order shipped",
            delivery=Message.Delivery.SENT,
        )]).created  # fmt: skip
    return Message.objects.get(pk=created[0])


def test_status_callbacks_move_delivery_forwards_only(world, account, twilio) -> None:
    message = sent_message(world, account)
    sid = message.external_id
    assert twilio_post(twilio, STATUS_URL, status_form(sid, "sent")).status_code == 200
    message.refresh_from_db()
    assert (message.delivery, message.meta["twilio_status"]) == ("sent", "sent")
    assert twilio_post(twilio, STATUS_URL, status_form(sid, "delivered")).status_code == 200
    message.refresh_from_db()
    assert message.delivery == "delivered"
    # Out of order: the "sent" and "queued" callbacks arrive after "delivered" and change nothing.
    twilio_post(twilio, STATUS_URL, status_form(sid, "sent"))
    twilio_post(twilio, STATUS_URL, status_form(sid, "queued"))
    message.refresh_from_db()
    assert (message.delivery, message.meta["twilio_status"]) == ("delivered", "delivered")
    # Replayed: idempotent.
    twilio_post(twilio, STATUS_URL, status_form(sid, "delivered"))
    message.refresh_from_db()
    assert message.delivery == "delivered" and Message.objects.count() == 1


def test_failed_status_records_the_error_code_and_what_it_means(world, account, twilio) -> None:
    message = sent_message(world, account)
    form = status_form(message.external_id, "undelivered", ErrorCode="30003")
    assert twilio_post(twilio, STATUS_URL, form).status_code == 200
    message.refresh_from_db()
    assert message.delivery == "failed" and message.meta["error_code"] == "30003"
    assert "30003" in message.meta["error"] and "unreachable" in message.meta["error"]
    # A delivered receipt straggling in after the failure does not resurrect it.
    twilio_post(twilio, STATUS_URL, status_form(message.external_id, "delivered"))
    message.refresh_from_db()
    assert message.delivery == "failed"


def test_status_for_an_unknown_sid_is_logged_and_answered_200(world, account, twilio, caplog) -> None:
    with caplog.at_level(logging.INFO, logger="threads.api.twilio_webhook"):
        response = twilio_post(twilio, STATUS_URL, status_form("SM" + "f" * 32, "delivered"))
    assert response.status_code == 200 and "unknown MessageSid" in caplog.text


def test_status_callbacks_need_a_valid_signature(world, account, twilio) -> None:
    message = sent_message(world, account)
    assert twilio_post(twilio, STATUS_URL, status_form(message.external_id, "failed"), token=None).status_code == 403
    bad = twilio_post(twilio, STATUS_URL, status_form(message.external_id, "failed"), token="x" * 32)
    assert bad.status_code == 403
    message.refresh_from_db()
    assert message.delivery == "sent"


def test_status_without_a_status_is_a_400(world, account, twilio) -> None:
    form = status_form("SM" + "a" * 32, "")
    del form["MessageStatus"], form["SmsStatus"]
    assert twilio_post(twilio, STATUS_URL, form).status_code == 400


def test_a_failed_receipt_for_an_unsubscribed_recipient_records_the_opt_out(world, account, twilio) -> None:
    message = sent_message(world, account)
    assert (
        twilio_post(twilio, STATUS_URL, status_form(message.external_id, "failed", ErrorCode="21610")).status_code
        == 200
    )
    message.refresh_from_db()
    assert message.delivery == "failed" and "replied STOP" in message.meta["error"]
    consent = Consent.objects.get(contact=world.a1_shared, channel="sms")
    assert (consent.status, consent.source) == ("opted_out", "Twilio: unsubscribed recipient (21610)")
