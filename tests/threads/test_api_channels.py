"""REST API for channel accounts, raw events (dead letters) and manually logged touches."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from django.db import connection
from django.test import Client
from django.utils import timezone

from accounts.models import Visibility
from tests.threads.factories import ChannelAccountFactory
from threads.connectors.webhook import sign
from threads.models import ChannelAccount, Message, RawEvent
from threads.tasks import channel_sync_task, raw_events_process_task

pytestmark = pytest.mark.django_db

EMAIL = {
    "kind": "email", "name": "My mailbox", "address": "A1@OurCo.example", "visibility": "private",
    "config": {"imap_host": "imap.ourco.example", "smtp_host": "smtp.ourco.example"},
    "credentials": {"username": "a1", "password": "s3cret-pass"},
}  # fmt: skip


@pytest.fixture
def team_account(world) -> ChannelAccount:
    return ChannelAccountFactory(owner=world.ma, team=world.team_a, visibility=Visibility.TEAM, name="Support")


def test_rep_connects_a_private_mailbox_and_never_sees_its_credentials_again(world, api_client) -> None:
    api_client.force_authenticate(world.a1)
    response = api_client.post("/api/v1/channel-accounts/", EMAIL, format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert "credentials" not in body and body["secret"] is None and "s3cret-pass" not in json.dumps(body)
    assert body["address"] == "a1@ourco.example" and body["owner"] == world.a1.pk
    assert body["config"] == {"imap_host": "imap.ourco.example", "imap_port": 993, "smtp_host": "smtp.ourco.example",
                              "smtp_port": 587}  # fmt: skip
    account = ChannelAccount.objects.get(pk=body["id"])
    assert json.loads(account.credentials) == {"username": "a1", "password": "s3cret-pass"}
    with connection.cursor() as cursor:
        cursor.execute("SELECT credentials FROM threads_channelaccount WHERE id = %s", [account.pk])
        assert "s3cret-pass" not in cursor.fetchone()[0]  # encrypted at rest
    detail = api_client.get(f"/api/v1/channel-accounts/{account.pk}/").json()
    assert "credentials" not in detail and "secret" not in detail


def test_incomplete_mailbox_settings_are_400_with_the_fields_to_fix(world, api_client) -> None:
    api_client.force_authenticate(world.a1)
    data = {**EMAIL, "address": "nope", "config": {"imap_port": "x"}, "credentials": {"username": "a1"}}
    response = api_client.post("/api/v1/channel-accounts/", data, format="json")
    assert response.status_code == 400
    fields = response.json()["error"]["fields"]
    assert {"address", "config.imap_host", "config.smtp_host", "config.imap_port", "credentials.password"} <= set(
        fields
    )
    assert not ChannelAccount.objects.exists()


def test_only_managers_and_admins_connect_team_accounts(world, api_client) -> None:
    api_client.force_authenticate(world.a1)
    response = api_client.post("/api/v1/channel-accounts/", {**EMAIL, "visibility": "team"}, format="json")
    assert response.status_code == 400 and response.json()["error"]["code"] == "team_account_not_allowed"
    api_client.force_authenticate(world.ma)
    response = api_client.post("/api/v1/channel-accounts/", {**EMAIL, "visibility": "team"}, format="json")
    assert response.status_code == 201 and response.json()["team"] == world.team_a.pk
    other_team = api_client.post(
        "/api/v1/channel-accounts/", {**EMAIL, "visibility": "team", "team": world.team_b.pk}, format="json"
    )
    assert other_team.status_code == 400 and "team" in other_team.json()["error"]["fields"]


def test_webhook_source_secret_is_shown_once_and_rotation_replaces_it(world, api_client) -> None:
    api_client.force_authenticate(world.ma)
    response = api_client.post(
        "/api/v1/channel-accounts/", {"kind": "webhook", "name": "Skype", "slug": "skype", "visibility": "team"},
        format="json",
    )  # fmt: skip
    assert response.status_code == 201
    pk, secret = response.json()["id"], response.json()["secret"]
    assert len(secret) >= 40
    assert "secret" not in api_client.get(f"/api/v1/channel-accounts/{pk}/").json()
    body = json.dumps({"event_id": "s1", "from": {"kind": "skype", "address": "ann.live"}, "text": "hi"}).encode()

    def deliver(key: str) -> int:
        return Client().post("/api/v1/inbound/skype/", body, content_type="application/json",
                             HTTP_X_THREADLINE_SIGNATURE=sign(key, body)).status_code  # fmt: skip

    rotated = api_client.post(f"/api/v1/channel-accounts/{pk}/rotate-secret/")
    assert rotated.status_code == 200
    new_secret = rotated.json()["secret"]
    assert new_secret != secret
    assert deliver(secret) == 403 and deliver(new_secret) == 202


def test_webhook_slug_must_be_valid_and_free(world, api_client) -> None:
    api_client.force_authenticate(world.ma)
    data = {"kind": "webhook", "name": "Blog", "visibility": "team"}
    bad = api_client.post("/api/v1/channel-accounts/", {**data, "slug": "Bad Slug!"}, format="json")
    assert bad.status_code == 400 and "slug" in bad.json()["error"]["fields"]
    missing = api_client.post("/api/v1/channel-accounts/", data, format="json")
    assert missing.status_code == 400 and missing.json()["error"]["code"] == "invalid_slug"
    assert api_client.post("/api/v1/channel-accounts/", {**data, "slug": "blog"}, format="json").status_code == 201
    taken = api_client.post("/api/v1/channel-accounts/", {**data, "slug": "blog"}, format="json")
    assert taken.status_code == 400 and taken.json()["error"]["code"] == "slug_taken"


def test_rep_of_another_team_cannot_see_the_account(world, api_client, team_account) -> None:
    api_client.force_authenticate(world.b1)
    assert api_client.get(f"/api/v1/channel-accounts/{team_account.pk}/").status_code == 404
    assert api_client.post(f"/api/v1/channel-accounts/{team_account.pk}/pause/").status_code == 404
    assert api_client.get("/api/v1/channel-accounts/").json()["results"] == []
    team_account.refresh_from_db()
    assert team_account.status == ChannelAccount.Status.ACTIVE


def test_private_mailbox_is_its_owners_alone(world, api_client) -> None:
    private = ChannelAccountFactory(owner=world.a1, team=world.team_a, visibility=Visibility.PRIVATE)
    api_client.force_authenticate(world.a2)
    assert api_client.get(f"/api/v1/channel-accounts/{private.pk}/").status_code == 404


def test_teammate_sees_a_team_account_but_only_the_owner_changes_it(world, api_client, team_account) -> None:
    api_client.force_authenticate(world.a1)
    assert api_client.get(f"/api/v1/channel-accounts/{team_account.pk}/").status_code == 200
    response = api_client.patch(f"/api/v1/channel-accounts/{team_account.pk}/", {"name": "Mine"}, format="json")
    assert response.status_code == 403 and response.json()["error"]["code"] == "not_account_owner"
    api_client.force_authenticate(world.ma)
    response = api_client.patch(
        f"/api/v1/channel-accounts/{team_account.pk}/",
        {"name": "Support desk", "config": {"imap_host": "imap.x", "smtp_host": "smtp.x"},
         "credentials": {"username": "support", "password": "old"}},
        format="json",
    )  # fmt: skip
    assert response.status_code == 200 and response.json()["name"] == "Support desk"
    response = api_client.patch(
        f"/api/v1/channel-accounts/{team_account.pk}/", {"credentials": {"password": "new"}}, format="json"
    )
    assert response.status_code == 200
    team_account.refresh_from_db()
    assert json.loads(team_account.credentials) == {"username": "support", "password": "new"}


def test_pause_then_resume_clears_the_failure_state(world, api_client, team_account) -> None:
    ChannelAccount.objects.filter(pk=team_account.pk).update(
        status=ChannelAccount.Status.NEEDS_REAUTH, consecutive_failures=4, last_error="LOGIN failed",
        next_sync_at=timezone.now() + dt.timedelta(hours=1),
    )  # fmt: skip
    api_client.force_authenticate(world.ma)
    paused = api_client.post(f"/api/v1/channel-accounts/{team_account.pk}/pause/")
    assert paused.status_code == 200 and paused.json()["status"] == "paused"
    resumed = api_client.post(f"/api/v1/channel-accounts/{team_account.pk}/resume/").json()
    assert (resumed["status"], resumed["consecutive_failures"], resumed["last_error"], resumed["next_sync_at"]) == (
        "active", 0, "", None,
    )  # fmt: skip


def test_sync_now_enqueues_a_poll(world, api_client, team_account, monkeypatch, django_capture_on_commit_callbacks):
    sent: list[int] = []
    monkeypatch.setattr(channel_sync_task, "delay", sent.append)
    api_client.force_authenticate(world.a1)
    with django_capture_on_commit_callbacks(execute=True):
        response = api_client.post(f"/api/v1/channel-accounts/{team_account.pk}/sync/")
    assert response.status_code == 202 and sent == [team_account.pk]
    ChannelAccount.objects.filter(pk=team_account.pk).update(status=ChannelAccount.Status.PAUSED)
    with django_capture_on_commit_callbacks(execute=True):
        response = api_client.post(f"/api/v1/channel-accounts/{team_account.pk}/sync/")
    assert response.status_code == 400 and sent == [team_account.pk]


def _raw(account: ChannelAccount, event_id: str, status: str = "dead") -> RawEvent:
    return RawEvent.objects.create(
        channel_account=account, provider_event_id=event_id, event_type="webhook", status=status,
        payload=b'{"secret": "payload"}', error="NormalizeError: bad" if status == "dead" else "",
    )  # fmt: skip


def test_dead_letters_list_without_payloads_and_only_for_visible_accounts(
    world, api_client, team_account, django_assert_max_num_queries
) -> None:
    for i in range(5):
        _raw(team_account, f"d{i}")
    _raw(team_account, "ok", status="processed")
    other = ChannelAccountFactory(owner=world.b1, team=world.team_b)
    _raw(other, "theirs")
    api_client.force_authenticate(world.a1)
    with django_assert_max_num_queries(6):
        response = api_client.get("/api/v1/raw-events/?status=dead")
    rows = response.json()["results"]
    assert len(rows) == 5 and {r["status"] for r in rows} == {"dead"}
    assert all("payload" not in r and "payload_preview" not in r for r in rows)
    assert rows[0]["error"] == "NormalizeError: bad"
    assert api_client.get("/api/v1/raw-events/?status=zombie").status_code == 400
    theirs = RawEvent.objects.get(provider_event_id="theirs")
    assert api_client.get(f"/api/v1/raw-events/{theirs.pk}/").status_code == 404
    detail = api_client.get(f"/api/v1/raw-events/{rows[0]['id']}/").json()
    assert detail["payload_preview"] == '{"secret": "payload"}' and detail["size"] == 21


def test_retrying_a_dead_letter_requeues_it(
    world, api_client, team_account, monkeypatch, django_capture_on_commit_callbacks
) -> None:
    sent: list[int] = []
    monkeypatch.setattr(raw_events_process_task, "delay", sent.append)
    dead = _raw(team_account, "d1")
    done = _raw(team_account, "p1", status="processed")
    api_client.force_authenticate(world.b1)
    assert api_client.post(f"/api/v1/raw-events/{dead.pk}/retry/").status_code == 404
    api_client.force_authenticate(world.a1)
    with django_capture_on_commit_callbacks(execute=True):
        response = api_client.post(f"/api/v1/raw-events/{dead.pk}/retry/")
    assert response.status_code == 200 and response.json() == {"retried": 1}
    dead.refresh_from_db()
    assert dead.status == RawEvent.Status.PENDING and dead.error == "" and sent == [team_account.pk]
    assert api_client.post(f"/api/v1/raw-events/{done.pk}/retry/").status_code == 400


def test_manual_message_endpoint_logs_a_touch(world, api_client) -> None:
    api_client.force_authenticate(world.a1)
    response = api_client.post(
        "/api/v1/manual-messages/",
        {"contact": world.a1_shared.pk, "channel": "call", "subject": "Intro", "body": "Good chat",
         "duration_minutes": 20, "outcome": "reached"},
        format="json",
    )  # fmt: skip
    assert response.status_code == 201
    message = Message.objects.get(pk=response.json()["id"])
    assert message.contact == world.a1_shared and message.created_by == world.a1 and message.direction == "outbound"
    assert response.json()["meta"]["duration_minutes"] == 20


def test_manual_message_on_an_invisible_contact_or_in_the_future_is_refused(world, api_client) -> None:
    api_client.force_authenticate(world.b1)
    hidden = api_client.post("/api/v1/manual-messages/", {"contact": world.a1_shared.pk, "channel": "call"})
    assert hidden.status_code == 400 and "contact" in hidden.json()["error"]["fields"]
    api_client.force_authenticate(world.a1)
    future = (timezone.now() + dt.timedelta(days=3)).isoformat()
    late = api_client.post(
        "/api/v1/manual-messages/", {"contact": world.a1_shared.pk, "channel": "call", "sent_at": future}
    )
    assert late.status_code == 400 and "sent_at" in late.json()["error"]["fields"]
    wrong = api_client.post("/api/v1/manual-messages/", {"contact": world.a1_shared.pk, "channel": "email"})
    assert wrong.status_code == 400 and "channel" in wrong.json()["error"]["fields"]
    assert not Message.objects.exists()


def test_channel_account_list_has_a_query_budget(world, api_client, django_assert_max_num_queries) -> None:
    for _ in range(8):
        ChannelAccountFactory(owner=world.ma, team=world.team_a)
    api_client.force_authenticate(world.a1)
    with django_assert_max_num_queries(5):
        response = api_client.get("/api/v1/channel-accounts/")
    assert len(response.json()["results"]) == 8
