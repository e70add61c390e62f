"""Meta's webhook at /webhooks/facebook/: the verification handshake, signatures on the raw body, the size limit
before any parsing, pages nobody connected, and redeliveries that store nothing twice."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from django.test import Client

from tests.threads.facebook_fixtures import (
    ANN_PSID,
    APP_SECRET,
    BOB_ID,
    PAGE_ID,
    VERIFY_TOKEN,
    comment_change,
    delivery,
    echo_messaging,
    feed_entry,
    inbound_messaging,
    messaging_entry,
    page_account,
    read_receipt,
    sign,
)
from threads.api import meta_webhook
from threads.models import ChannelAccount, Message, RawEvent
from threads.tasks import raw_events_process_task

pytestmark = pytest.mark.django_db

URL = "/webhooks/facebook/"
POST_ID = f"{PAGE_ID}_2203948571"


@pytest.fixture(autouse=True)
def _meta_app(settings) -> None:  # type: ignore[no-untyped-def]
    settings.FACEBOOK_APP_SECRET = APP_SECRET
    settings.FACEBOOK_VERIFY_TOKEN = VERIFY_TOKEN


@pytest.fixture
def account(world) -> ChannelAccount:  # type: ignore[no-untyped-def]
    return page_account(world)


@pytest.fixture
def queued(monkeypatch) -> list[int]:  # type: ignore[no-untyped-def]
    sent: list[int] = []
    monkeypatch.setattr(raw_events_process_task, "delay", sent.append)
    return sent


@pytest.fixture
def client() -> Client:
    # No session, no CSRF token: the signature is the authentication.
    return Client(enforce_csrf_checks=True)


def post(client: Client, body: bytes, signature: str | None = "sign") -> Any:
    headers = {}
    if signature == "sign":
        headers["HTTP_X_HUB_SIGNATURE_256"] = sign(body)
    elif signature is not None:
        headers["HTTP_X_HUB_SIGNATURE_256"] = signature
    return client.post(URL, data=body, content_type="application/json", **headers)


# --- Verification handshake ------------------------------------------------------------------------------------


def test_verification_echoes_the_challenge_for_the_right_token(client) -> None:
    response = client.get(URL, {"hub.mode": "subscribe", "hub.verify_token": VERIFY_TOKEN,
                                "hub.challenge": "1158201444"})  # fmt: skip
    assert response.status_code == 200
    assert response.content == b"1158201444" and response["Content-Type"].startswith("text/plain")


@pytest.mark.parametrize(
    "params",
    [
        {"hub.mode": "subscribe", "hub.verify_token": "acme-verify-4241", "hub.challenge": "1158201444"},
        {"hub.mode": "subscribe", "hub.verify_token": "", "hub.challenge": "1158201444"},
        {"hub.mode": "unsubscribe", "hub.verify_token": VERIFY_TOKEN, "hub.challenge": "1158201444"},
        {"hub.verify_token": VERIFY_TOKEN, "hub.challenge": "1158201444"},
    ],
)
def test_verification_with_a_wrong_token_or_mode_fails(client, params) -> None:
    response = client.get(URL, params)
    assert response.status_code == 403 and b"1158201444" not in response.content


def test_verification_fails_when_no_token_is_configured(client, settings) -> None:
    settings.FACEBOOK_VERIFY_TOKEN = ""
    response = client.get(URL, {"hub.mode": "subscribe", "hub.verify_token": "", "hub.challenge": "1"})
    assert response.status_code == 403


# --- Deliveries ------------------------------------------------------------------------------------------------


def test_signed_delivery_is_stored_and_processed_by_the_task(
    client, account, queued, django_capture_on_commit_callbacks
) -> None:
    body = delivery(
        messaging_entry(inbound_messaging("m_w1", "Hej! Har ni cykelhjälmar? ⛑️"), read_receipt()),
        feed_entry(comment_change("2203948571_900113", POST_ID, text="مرحبا، هل يتوفر اللون الأحمر؟ 🔴")),
    )
    with django_capture_on_commit_callbacks(execute=True):
        response = post(client, body)
    assert response.status_code == 200
    assert response.json() == {"status": "received", "stored": 2, "ignored": 0}
    raw = {r.provider_event_id: r for r in RawEvent.objects.all()}
    assert set(raw) == {"m_w1", "2203948571_900113"}  # the read receipt carries nothing to store
    assert raw["m_w1"].event_type == "facebook.message" and raw["m_w1"].status == "pending"
    assert queued == [account.pk]
    assert not Message.objects.exists()  # the request only stores; the task does the work

    assert raw_events_process_task(account.pk) == 2
    hello = Message.objects.get(external_id="m_w1")
    assert (hello.direction, hello.author_address, hello.body_text) == (
        "inbound",
        ANN_PSID,
        "Hej! Har ni cykelhjälmar? ⛑️",
    )
    assert hello.provider_thread_key == f"facebook:psid:{PAGE_ID}:{ANN_PSID}"
    arabic = Message.objects.get(external_id="2203948571_900113")
    assert arabic.body_text == "مرحبا، هل يتوفر اللون الأحمر؟ 🔴" and arabic.author_address == BOB_ID


def test_replayed_delivery_stores_nothing_new(client, account, queued, django_capture_on_commit_callbacks) -> None:
    body = delivery(messaging_entry(inbound_messaging("m_w2", "Once")))
    with django_capture_on_commit_callbacks(execute=True):
        assert post(client, body).json()["stored"] == 1
    raw_events_process_task(account.pk)
    with django_capture_on_commit_callbacks(execute=True):
        again = post(client, body)
    assert again.status_code == 200 and again.json()["stored"] == 0
    assert RawEvent.objects.count() == 1 and Message.objects.count() == 1
    assert queued == [account.pk]  # nothing new, nothing enqueued


@pytest.mark.parametrize(
    "signature",
    [
        None,  # missing
        "",
        "sha256=" + "0" * 64,  # wrong
        sign(b"another body"),  # valid for a different body
        sign(delivery(messaging_entry(inbound_messaging("m_bad", "x"))), "not-our-secret"),  # another app's secret
        "sha1=" + "a" * 40,  # the legacy header format
    ],
)
def test_bad_or_missing_signature_is_403_and_stores_nothing(client, account, queued, signature) -> None:
    body = delivery(messaging_entry(inbound_messaging("m_bad", "x")))
    response = post(client, body, signature)
    assert response.status_code == 403
    assert not RawEvent.objects.exists() and queued == []


def test_signature_of_the_pages_own_app_is_accepted(client, world, queued, settings) -> None:
    own = page_account(world, credentials={"page_access_token": "EAAx", "app_secret": "page-app-secret"})
    body = delivery(messaging_entry(inbound_messaging("m_own", "hi")))
    assert post(client, body, sign(body, "page-app-secret")).json()["stored"] == 1
    assert RawEvent.objects.get().channel_account == own
    # Signed with the server's secret, but this page is connected through its own app: not for this account.
    body = delivery(messaging_entry(inbound_messaging("m_own2", "hi")))
    assert post(client, body).json() == {"status": "received", "stored": 0, "ignored": 1}


def test_ten_megabyte_body_is_413_before_parsing(client, account, queued, monkeypatch) -> None:
    def must_not_parse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the body was parsed")

    monkeypatch.setattr(meta_webhook.json, "loads", must_not_parse)
    body = b'{"object": "page", "entry": [' + b" " * (10 * 1024 * 1024) + b"]}"
    response = post(client, body)
    assert response.status_code == 413
    assert not RawEvent.objects.exists() and queued == []


def test_body_over_the_limit_without_a_usable_length_is_413(account, queued, settings) -> None:
    from django.test import RequestFactory

    settings.FACEBOOK_WEBHOOK_MAX_BYTES = 1000
    body = delivery(messaging_entry(inbound_messaging("m_big", "x" * 2000)))
    request = RequestFactory().post(URL, data=body, content_type="application/json",
                                    HTTP_X_HUB_SIGNATURE_256=sign(body))  # fmt: skip
    request.META["CONTENT_LENGTH"] = "chunked"  # not a number: the read itself is bounded
    assert meta_webhook.facebook_webhook(request).status_code == 413
    assert not RawEvent.objects.exists()


def test_page_that_is_not_connected_is_ignored_and_logged(client, account, queued, caplog) -> None:
    body = delivery(messaging_entry(inbound_messaging("m_x", "hello"), page_id="999999999999"))
    with caplog.at_level(logging.INFO, logger="threads.api.meta_webhook"):
        response = post(client, body)
    assert response.status_code == 200 and response.json() == {"status": "received", "stored": 0, "ignored": 1}
    assert not RawEvent.objects.exists() and queued == []
    assert any("999999999999" in r.getMessage() and "not connected" in r.getMessage() for r in caplog.records)


def test_paused_account_is_not_fed_but_meta_gets_its_200(client, account, queued) -> None:
    ChannelAccount.objects.filter(pk=account.pk).update(status="paused")
    response = post(client, delivery(messaging_entry(inbound_messaging("m_p", "hello"))))
    assert response.status_code == 200 and response.json()["ignored"] == 1
    assert not RawEvent.objects.exists()


def test_page_connected_twice_feeds_both_accounts_one_message(client, world, account, queued) -> None:
    private = page_account(world, owner=world.a1, visibility="private", name="Acme Bikes (mine)")
    post(client, delivery(messaging_entry(inbound_messaging("m_both", "hello"))))
    assert set(RawEvent.objects.values_list("channel_account_id", flat=True)) == {account.pk, private.pk}
    raw_events_process_task(account.pk)
    raw_events_process_task(private.pk)
    message = Message.objects.get()
    assert sorted(message.seen_by) == sorted([account.pk, private.pk])


def test_signed_but_unreadable_json_is_400_and_stores_nothing(client, account, queued) -> None:
    response = post(client, b'{"object": "page", "entry": [')
    assert response.status_code == 400 and response.json()["error"]["code"] == "invalid"
    assert not RawEvent.objects.exists()


def test_other_objects_are_acknowledged_and_ignored(client, account, queued) -> None:
    body = json.dumps({"object": "instagram", "entry": [{"id": PAGE_ID, "time": 1, "messaging": []}]}).encode()
    response = post(client, body)
    assert response.status_code == 200 and response.json()["status"] == "ignored"
    assert not RawEvent.objects.exists()


def test_deleted_comment_delivered_by_webhook_is_marked(client, account, queued) -> None:
    post(client, delivery(feed_entry(comment_change("2203948571_900113", POST_ID, text="Worst shop ever"))))
    post(client, delivery(feed_entry(comment_change("2203948571_900113", POST_ID, verb="remove"))))
    raw_events_process_task(account.pk)
    comment = Message.objects.get()
    assert comment.deleted_at is not None and comment.body_text == "Worst shop ever"
    assert set(RawEvent.objects.values_list("provider_event_id", flat=True)) == {
        "2203948571_900113", "2203948571_900113:remove"}  # fmt: skip


def test_an_edit_replaces_the_text_keeps_the_old_one_and_adds_no_message(client, account, queued) -> None:
    post(client, delivery(feed_entry(comment_change("2203948571_900113", POST_ID, text="Nice bike"))))
    post(client, delivery(feed_entry(comment_change("2203948571_900113", POST_ID, verb="edited", text="Nice bike!!"))))
    raw_events_process_task(account.pk)
    assert Message.objects.count() == 1 and RawEvent.objects.count() == 2
    assert not RawEvent.objects.filter(status="dead").exists()
    comment = Message.objects.get()
    assert comment.body_text == "Nice bike!!" and comment.meta["edits"] == ["Nice bike"]
    assert "edited_at" in comment.meta
    # Replaying both events changes nothing more.
    from threads.services.pipeline import raw_events_replay

    raw_events_replay(account=account)
    comment.refresh_from_db()
    assert comment.body_text == "Nice bike!!" and comment.meta["edits"] == ["Nice bike"]


def test_our_own_sends_echo_back_as_outbound_in_the_persons_thread(client, account, queued) -> None:
    post(client, delivery(messaging_entry(inbound_messaging("m_q", "Open on Sunday?"))))
    post(client, delivery(messaging_entry(echo_messaging("m_a", "Yes, 10 to 4."))))  # typed in Meta's inbox
    raw_events_process_task(account.pk)
    question, answer = Message.objects.get(external_id="m_q"), Message.objects.get(external_id="m_a")
    assert answer.direction == "outbound" and answer.thread == question.thread
    assert answer.author_address == PAGE_ID and answer.recipients[0]["address"] == ANN_PSID
    assert question.author_name == ""  # webhook events carry ids, not names


def test_only_get_and_post(client) -> None:
    assert client.put(URL, data=b"{}").status_code == 405
