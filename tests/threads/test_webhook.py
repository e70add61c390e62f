"""The signed inbound webhook: only correctly signed, well-formed events are stored, each exactly once."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from django.test import Client, override_settings

from accounts.models import Visibility
from contacts.models import ContactIdentity
from threads.api.inbound import read_limited_body
from threads.connectors.webhook import sign
from threads.models import ChannelAccount, Message, RawEvent
from threads.services.channel_accounts import channel_account_create, channel_account_pause
from threads.services.pipeline import raw_events_process
from threads.tasks import raw_events_process_task

pytestmark = pytest.mark.django_db

URL = "/api/v1/inbound/helpdesk/"


@pytest.fixture
def source(world) -> ChannelAccount:
    return channel_account_create(
        actor=world.ma, kind="webhook", name="Helpdesk IM", slug="helpdesk", visibility=Visibility.TEAM
    )


@pytest.fixture
def queued(monkeypatch) -> list[int]:
    sent: list[int] = []
    monkeypatch.setattr(raw_events_process_task, "delay", sent.append)
    return sent


def event(**overrides: Any) -> dict[str, Any]:
    data = {
        "event_id": "im-1", "channel": "im", "sent_at": "2025-03-01T10:15:00Z",
        "from": {"kind": "email", "address": "Ann@Example.com", "name": "Ann"},
        "text": "Is the offer still valid?", "thread_key": "conv-9", "url": "https://im.example.com/c/9",
    }  # fmt: skip
    data.update(overrides)
    return data


def post(client: Client, body: bytes, signature: str | None, url: str = URL) -> Any:
    headers = {"HTTP_X_THREADLINE_SIGNATURE": signature} if signature is not None else {}
    return client.post(url, data=body, content_type="application/json", **headers)


def signed(client: Client, source: ChannelAccount, data: dict[str, Any], url: str = URL) -> Any:
    body = json.dumps(data).encode()
    return post(client, body, sign(source.issued_secret, body), url)


def test_signed_event_is_stored_then_lands_in_the_contacts_thread(
    world, source, queued, django_capture_on_commit_callbacks
) -> None:
    ContactIdentity.objects.create(contact=world.a1_shared, kind="email", value="ann@example.com",
                                   normalized="ann@example.com")  # fmt: skip
    client = Client(enforce_csrf_checks=True)  # no session, no CSRF token: the signature is the authentication
    with django_capture_on_commit_callbacks(execute=True):
        response = signed(client, source, event())
    assert response.status_code == 202
    assert response.json() == {"status": "accepted", "event_id": "im-1", "duplicate": False}
    raw = RawEvent.objects.get()
    assert (raw.provider_event_id, raw.event_type, raw.status) == ("im-1", "webhook", RawEvent.Status.PENDING)
    assert json.loads(bytes(raw.payload)) == event()
    assert queued == [source.pk]
    assert not Message.objects.exists()  # processing is the task's job, not the request's

    assert raw_events_process_task(source.pk) == 1
    message = Message.objects.get()
    assert message.contact == world.a1_shared and message.thread.topic == ""
    assert (message.channel, message.direction, message.author_address) == ("im", "inbound", "ann@example.com")
    assert message.body_text == "Is the offer still valid?" and message.meta["url"] == "https://im.example.com/c/9"
    assert message.sent_at.isoformat() == "2025-03-01T10:15:00+00:00"
    assert message.provider_thread_key.endswith(":conv-9") and message.channel_account == source
    raw.refresh_from_db()
    assert raw.status == RawEvent.Status.PROCESSED


def test_missing_signature_is_refused_and_nothing_is_stored(source, queued, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = post(Client(), json.dumps(event()).encode(), None)
    assert response.status_code == 403 and response.json()["error"]["code"] == "forbidden"
    assert not RawEvent.objects.exists() and queued == []


def test_signature_with_another_secret_is_refused(source, queued, django_capture_on_commit_callbacks) -> None:
    body = json.dumps(event()).encode()
    with django_capture_on_commit_callbacks(execute=True):
        response = post(Client(), body, sign("not-the-secret", body))
    assert response.status_code == 403
    assert not RawEvent.objects.exists() and queued == []


def test_signature_over_a_different_body_is_refused(source, queued, django_capture_on_commit_callbacks) -> None:
    original = json.dumps(event()).encode()
    tampered = json.dumps(event(text="Send me a refund")).encode()
    with django_capture_on_commit_callbacks(execute=True):
        response = post(Client(), tampered, sign(source.issued_secret, original))
    assert response.status_code == 403
    assert not RawEvent.objects.exists() and queued == []


def test_malformed_signature_header_is_refused(source) -> None:
    body = json.dumps(event()).encode()
    for header in ["", "sha256=", "sha1=abc", sign(source.issued_secret, body)[7:], "sha256=zz"]:
        assert post(Client(), body, header).status_code == 403
    assert not RawEvent.objects.exists()


def test_replayed_event_id_stores_nothing_new(world, source, queued, django_capture_on_commit_callbacks) -> None:
    client = Client()
    with django_capture_on_commit_callbacks(execute=True):
        first = signed(client, source, event())
    raw_events_process_task(source.pk)
    with django_capture_on_commit_callbacks(execute=True):
        again = signed(client, source, event(text="a retry may even differ"))
    assert first.status_code == 202 and again.status_code == 200
    assert again.json() == {"status": "accepted", "event_id": "im-1", "duplicate": True}
    assert queued == [source.pk]  # the replay enqueued nothing
    raw_events_process_task(source.pk)
    assert RawEvent.objects.count() == 1 and Message.objects.count() == 1


def test_same_event_id_from_two_sources_is_two_messages(world, source, queued) -> None:
    other = channel_account_create(actor=world.ma, kind="webhook", name="Blog", slug="blog", visibility="team")
    signed(Client(), source, event())
    signed(Client(), other, event(channel="blog_comment"), url="/api/v1/inbound/blog/")
    raw_events_process(account=source)
    raw_events_process(account=other)
    assert sorted(Message.objects.values_list("channel", flat=True)) == ["blog_comment", "im"]


@override_settings(INBOUND_WEBHOOK_MAX_BYTES=300)
def test_body_over_the_limit_is_413_and_nothing_is_stored(source, queued, django_capture_on_commit_callbacks):
    data = event(text="x" * 400)
    with django_capture_on_commit_callbacks(execute=True):
        response = signed(Client(), source, data)
    assert response.status_code == 413 and response.json()["error"]["code"] == "too_large"
    assert not RawEvent.objects.exists() and queued == []
    small = event(text="ok")
    assert len(json.dumps(small)) <= 300
    assert signed(Client(), source, small).status_code == 202


def test_body_read_is_bounded_whatever_the_declared_length() -> None:
    class Stub:
        stream = io.BytesIO(b"a" * 1000)

    assert read_limited_body(Stub(), 999) is None  # type: ignore[arg-type]
    Stub.stream = io.BytesIO(b"a" * 1000)
    assert read_limited_body(Stub(), 1000) == b"a" * 1000  # type: ignore[arg-type]


def test_invalid_json_is_400_and_nothing_is_stored(source, queued, django_capture_on_commit_callbacks) -> None:
    body = b'{"event_id": "x", '
    with django_capture_on_commit_callbacks(execute=True):
        response = post(Client(), body, sign(source.issued_secret, body))
    assert response.status_code == 400 and "body" in response.json()["error"]["fields"]
    assert not RawEvent.objects.exists() and queued == []


def test_missing_and_invalid_fields_are_400_with_field_errors(source, queued) -> None:
    response = signed(Client(), source, {"channel": "email", "direction": "sideways"})
    assert response.status_code == 400
    fields = response.json()["error"]["fields"]
    assert {"event_id", "from", "text", "channel", "direction"} <= set(fields)
    bad_address = signed(Client(), source, event(**{"from": {"kind": "email", "address": "not-an-address"}}))
    assert bad_address.status_code == 400 and "from.address" in bad_address.json()["error"]["fields"]
    outbound = signed(Client(), source, event(direction="outbound"))
    assert outbound.status_code == 400 and "to" in outbound.json()["error"]["fields"]
    assert signed(Client(), source, ["a list"]).status_code == 400
    assert not RawEvent.objects.exists() and queued == []


def test_unknown_or_paused_source_is_403(world, source, queued) -> None:
    assert signed(Client(), source, event(), url="/api/v1/inbound/nobody/").status_code == 403
    channel_account_pause(account=source, actor=world.ma)
    response = signed(Client(), source, event())
    assert response.status_code == 403 and response.json()["error"]["code"] == "paused"
    assert not RawEvent.objects.exists() and queued == []


def test_outbound_event_lands_in_the_recipients_thread(world, source, queued) -> None:
    ContactIdentity.objects.create(contact=world.a2_shared, kind="phone", value="+15551234567",
                                   normalized="+15551234567")  # fmt: skip
    data = event(event_id="vm-7", channel="voicemail", direction="outbound",
                 **{"from": {"kind": "other", "address": "agent-7"}},
                 to=[{"kind": "phone", "address": "+1 (555) 123-4567"}])  # fmt: skip
    assert signed(Client(), source, data).status_code == 202
    raw_events_process_task(source.pk)
    message = Message.objects.get()
    assert message.contact == world.a2_shared and message.direction == "outbound" and message.channel == "voicemail"
    assert message.recipients == [{"kind": "to", "address": "+15551234567", "name": ""}]


def test_unknown_sender_becomes_a_lead_of_the_source(world, source, queued) -> None:
    signed(Client(), source, event(**{"from": {"kind": "twitter", "address": "@NewFan", "name": "New Fan"}}))
    raw_events_process_task(source.pk)
    message = Message.objects.get()
    assert message.contact.first_name == "New" and message.contact.owner == world.ma
    assert message.author_address == "@newfan"


def test_an_event_the_normalizer_cannot_read_is_dead_lettered(source) -> None:
    raw = RawEvent.objects.create(channel_account=source, provider_event_id="broken", event_type="webhook",
                                  payload=b'{"event_id": "broken", "text": "no sender"}')  # fmt: skip
    result = raw_events_process(account=source)
    raw.refresh_from_db()
    assert result.dead == 1 and raw.status == RawEvent.Status.DEAD and "from" in raw.error
    assert not Message.objects.exists()


def test_webhook_is_documented_in_the_openapi_schema(client) -> None:
    schema = client.get("/api/schema/")
    assert schema.status_code == 200
    assert b"/api/v1/inbound/{source}/" in schema.content and b"X-Threadline-Signature" in schema.content
