"""The conversations API: visibility (404 across teams), private bodies as null, filters, keyset pages, actions."""

from __future__ import annotations

import pytest

from accounts.models import Visibility
from tests.threads.conversation_helpers import call_with, email_from, identity
from tests.threads.factories import ChannelAccountFactory
from threads.models import ChannelAccount, Message, Thread

pytestmark = pytest.mark.django_db


@pytest.fixture
def account(world) -> ChannelAccount:
    return ChannelAccountFactory(owner=world.a1, team=world.team_a, address="sales@ourco.example")


@pytest.fixture
def thread(world, account) -> Thread:
    identity(world.a1_shared, "ann@example.com")
    email_from(account, "ann@example.com", subject="Pricing question", body="How much?", minutes=1)
    call_with(world.a1_shared, minutes=2)
    return Thread.objects.get(contact=world.a1_shared, topic="")


def test_other_team_gets_404_on_threads_and_messages(api_client, world, thread) -> None:
    api_client.force_authenticate(world.b1)
    message = thread.messages.first()
    status = thread.status
    assert api_client.get("/api/v1/threads/").json()["results"] == []
    for url in (f"/api/v1/threads/{thread.pk}/", f"/api/v1/threads/{thread.pk}/messages/",
                f"/api/v1/messages/{message.pk}/"):  # fmt: skip
        response = api_client.get(url)
        assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"
    assert api_client.post(f"/api/v1/threads/{thread.pk}/close/").status_code == 404
    assert api_client.post(f"/api/v1/messages/{message.pk}/move/", {"topic": "x"}).status_code == 404
    assert Thread.objects.get(pk=thread.pk).status == status != "closed"


def test_list_filters_and_keyset_pages(api_client, world, thread, account) -> None:
    identity(world.a2_shared, "amy@example.com")
    email_from(account, "amy@example.com", subject="Amy here", minutes=3)
    api_client.force_authenticate(world.a1)
    data = api_client.get("/api/v1/threads/", {"page_size": 1}).json()
    assert [t["contact_name"] for t in data["results"]] == ["Amy Teamwide"] and data["next"]
    second = api_client.get(data["next"]).json()
    assert [t["contact_name"] for t in second["results"]] == ["Ann Shared"] and second["next"] is None
    assert second["results"][0]["is_unread"] is True and second["results"][0]["last_channel"] == "call"
    names = [t["contact_name"] for t in api_client.get("/api/v1/threads/", {"channel": "call"}).json()["results"]]
    assert names == ["Ann Shared"]
    waiting = api_client.get("/api/v1/threads/", {"waiting": "true"}).json()["results"]
    assert [t["contact_name"] for t in waiting] == ["Amy Teamwide"]
    bad = api_client.get("/api/v1/threads/", {"cursor": "tampered"})
    assert bad.status_code == 400 and "cursor" in bad.json()["error"]["fields"]
    assert api_client.get("/api/v1/threads/", {"status": "nope"}).status_code == 400
    assert api_client.get("/api/v1/threads/", {"page_size": "100000"}).status_code == 400


def test_private_mailbox_bodies_are_null_for_others(api_client, world, thread) -> None:
    private = ChannelAccountFactory(owner=world.a2, team=world.team_a, visibility=Visibility.PRIVATE)
    secret = email_from(private, "ann@example.com", subject="Personal", body="SECRET", minutes=5)
    api_client.force_authenticate(world.a1)
    data = api_client.get(f"/api/v1/messages/{secret.pk}/").json()
    assert data["subject"] == "Personal" and data["body_visible"] is False
    assert all(data[k] is None for k in ("body_text", "body_display", "body_html", "recipients", "attachments"))
    listed = api_client.get(f"/api/v1/threads/{thread.pk}/messages/").json()["results"]
    assert [m["body_text"] for m in listed if m["id"] == secret.pk] == [None]
    assert "SECRET" not in api_client.get(f"/api/v1/threads/{thread.pk}/messages/").content.decode()
    api_client.force_authenticate(world.a2)
    assert api_client.get(f"/api/v1/messages/{secret.pk}/").json()["body_text"] == "SECRET"


def test_messages_page_back_in_time(api_client, world, thread) -> None:
    api_client.force_authenticate(world.a1)
    first = api_client.get(f"/api/v1/threads/{thread.pk}/messages/", {"page_size": 1}).json()
    assert [m["channel"] for m in first["results"]] == ["call"] and "before=" in first["next"]
    older = api_client.get(first["next"]).json()
    assert [m["channel"] for m in older["results"]] == ["email"] and older["next"] is None


def test_thread_actions(api_client, world, thread) -> None:
    api_client.force_authenticate(world.a1)
    url = f"/api/v1/threads/{thread.pk}/"
    assert api_client.post(url + "assign/", {"assignee": world.a2.pk}, format="json").json()["assignee"] == world.a2.pk
    response = api_client.post(url + "assign/", {"assignee": world.b1.pk}, format="json")
    assert response.status_code == 400 and response.json()["error"]["code"] == "assignee_cannot_see"
    assert api_client.post(url + "assign/", {"assignee": None}, format="json").json()["assignee"] is None
    assert api_client.post(url + "close/").json()["status"] == "closed"
    assert api_client.post(url + "reopen/").json()["status"] == "open"
    assert api_client.post(url + "read/").json()["is_unread"] is False
    call = thread.messages.get(channel="call")
    split = api_client.post(url + "split/", {"message_ids": [call.pk], "topic": "Calls"}, format="json")
    assert split.status_code == 201 and split.json()["topic"] == "Calls" and split.json()["message_count"] == 1
    moved = api_client.post(
        f"/api/v1/messages/{thread.messages.get().pk}/move/", {"topic": "Calls"}, format="json"
    ).json()
    assert moved["thread"]["topic"] == "Calls" and moved["thread"]["message_count"] == 2
    merged = api_client.post(f"/api/v1/threads/{split.json()['id']}/merge/", {"target": thread.pk}, format="json")
    assert merged.json()["id"] == thread.pk and merged.json()["message_count"] == 2
    other = Thread.objects.create(contact=world.a2_shared, topic="Elsewhere")
    response = api_client.post(url + "merge/", {"target": other.pk}, format="json")
    assert response.status_code == 400 and response.json()["error"]["code"] == "different_contacts"


def test_reply_queues_an_outbound_message(api_client, world, thread, account) -> None:
    api_client.force_authenticate(world.a1)
    url = f"/api/v1/threads/{thread.pk}/reply/"
    payload = {"account": account.pk, "to": [{"address": "Ann@Example.com"}], "body_text": "Ten euros."}
    response = api_client.post(url, payload, format="json")
    assert response.status_code == 201, response.json()
    data = response.json()
    assert (data["direction"], data["delivery"], data["thread"], data["body_text"]) == (
        "outbound", "queued", thread.pk, "Ten euros.",
    )  # fmt: skip
    sent = Message.objects.get(pk=data["id"])
    assert sent.meta["reply_to_message"] == thread.messages.get(channel="email", direction="inbound").pk
    assert sent.recipients[0]["address"] == "ann@example.com"
    bad = api_client.post(url, {**payload, "to": [{"address": "not-an-address"}]}, format="json")
    assert bad.status_code == 400 and "to" in bad.json()["error"]["fields"]
    empty = api_client.post(url, {**payload, "body_text": " "}, format="json")
    assert empty.status_code == 400 and empty.json()["error"]["code"] == "empty_message"
    b_account = ChannelAccountFactory(owner=world.b1, team=world.team_b)
    hidden = api_client.post(url, {**payload, "account": b_account.pk}, format="json")
    assert hidden.status_code == 400 and "account" in hidden.json()["error"]["fields"]
    assert Message.objects.filter(direction="outbound", channel="email").count() == 1


def test_schema_documents_the_endpoints(api_client, world) -> None:
    api_client.force_authenticate(world.admin)
    response = api_client.get("/api/schema/", {"format": "json"})
    assert response.status_code == 200
    paths = response.json()["paths"]
    assert "/api/v1/threads/{id}/reply/" in paths and "/api/v1/messages/{id}/move/" in paths
