"""Operators' admin: account health without credentials, dead letters with a retry action, threads and messages."""

from __future__ import annotations

import json

import pytest
from django.db import transaction

from accounts.models import Visibility
from contacts.models import ContactIdentity
from tests.threads.factories import ChannelAccountFactory, inbound_email
from threads.connectors import AttachmentIn
from threads.models import ChannelAccount, Message, RawEvent, Thread
from threads.services.pipeline import ingest_batch
from threads.tasks import raw_events_process_task

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_user(world):  # type: ignore[no-untyped-def]
    world.admin.is_staff = True
    world.admin.is_superuser = True
    world.admin.save()
    return world.admin


@pytest.fixture
def account(world) -> ChannelAccount:
    account = ChannelAccountFactory(
        owner=world.ma, team=world.team_a, visibility=Visibility.TEAM, name="Support",
        credentials=json.dumps({"username": "support", "password": "hunter2-very-secret"}),
        last_error="IMAP LOGIN failed", reported_count=200, stored_count=150,
    )  # fmt: skip
    return account


def test_changelists_and_change_pages_render_without_credentials(world, client, admin_user, account) -> None:
    ContactIdentity.objects.create(contact=world.a1_shared, kind="email", value="ann@example.com",
                                   normalized="ann@example.com")  # fmt: skip
    message = inbound_email("ann@example.com", subject="Quote please")
    message.attachments = [AttachmentIn(name="big.pdf", content_type="application/pdf", data=None, size=10**9,
                                        omitted="Too large")]  # fmt: skip
    with transaction.atomic():
        ingest_batch(account=account, messages=[message])
    stored = Message.objects.get()
    raw = RawEvent.objects.create(channel_account=account, provider_event_id="e1", event_type="email",
                                  payload=b"\xff\xfe<b>binary</b>" + b"x" * 5000, status="dead",
                                  error="NormalizeError: no From header")  # fmt: skip
    client.force_login(admin_user)
    pages = [
        "/admin/threads/channelaccount/", f"/admin/threads/channelaccount/{account.pk}/change/",
        "/admin/threads/rawevent/", "/admin/threads/rawevent/?status__exact=dead",
        f"/admin/threads/rawevent/{raw.pk}/change/",
        "/admin/threads/thread/", f"/admin/threads/thread/{stored.thread_id}/change/",
        "/admin/threads/message/", "/admin/threads/message/?q=quote", f"/admin/threads/message/{stored.pk}/change/",
    ]  # fmt: skip
    html = {}
    for url in pages:
        response = client.get(url)
        assert response.status_code == 200, url
        html[url] = response.content.decode()
    account_page = html[f"/admin/threads/channelaccount/{account.pk}/change/"]
    assert "hunter2-very-secret" not in account_page and "credentials" not in account_page.lower()
    assert "75.0% (150/200)" in html["/admin/threads/channelaccount/"]
    assert "IMAP LOGIN failed" in html["/admin/threads/channelaccount/"]
    assert "NormalizeError: no From header" in html["/admin/threads/rawevent/?status__exact=dead"]
    event_page = html[f"/admin/threads/rawevent/{raw.pk}/change/"]
    assert "5015 bytes (first 2048 shown)" in event_page and "&lt;b&gt;binary&lt;/b&gt;" in event_page
    assert "Quote please" in html["/admin/threads/message/?q=quote"]
    assert "big.pdf" in html[f"/admin/threads/message/{stored.pk}/change/"]
    assert Thread.objects.count() == 1


def test_raw_events_cannot_be_added_edited_or_deleted(client, admin_user, account) -> None:
    raw = RawEvent.objects.create(channel_account=account, provider_event_id="e1", event_type="email", payload=b"x")
    client.force_login(admin_user)
    assert client.get("/admin/threads/rawevent/add/").status_code == 403
    client.post(f"/admin/threads/rawevent/{raw.pk}/change/", {"provider_event_id": "changed"})
    assert client.post(f"/admin/threads/rawevent/{raw.pk}/delete/", {"post": "yes"}).status_code == 403
    raw.refresh_from_db()
    assert raw.provider_event_id == "e1"


def test_retry_action_requeues_only_dead_letters(
    client, admin_user, account, monkeypatch, django_capture_on_commit_callbacks
) -> None:
    sent: list[int] = []
    monkeypatch.setattr(raw_events_process_task, "delay", sent.append)
    dead = RawEvent.objects.create(channel_account=account, provider_event_id="d", event_type="email",
                                   payload=b"x", status="dead", error="boom")  # fmt: skip
    done = RawEvent.objects.create(channel_account=account, provider_event_id="p", event_type="email",
                                   payload=b"x", status="processed")  # fmt: skip
    client.force_login(admin_user)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            "/admin/threads/rawevent/",
            {"action": "retry_dead_letters", "_selected_action": [dead.pk, done.pk]},
            follow=True,
        )
    assert response.status_code == 200
    assert "1 dead letter(s) queued again; 1 were not dead letters" in response.content.decode()
    dead.refresh_from_db()
    done.refresh_from_db()
    assert (dead.status, dead.error) == ("pending", "") and done.status == "processed"
    assert sent == [account.pk]


def test_resume_action_clears_failures(client, admin_user, account) -> None:
    ChannelAccount.objects.filter(pk=account.pk).update(status="failing", consecutive_failures=3)
    client.force_login(admin_user)
    client.post("/admin/threads/channelaccount/", {"action": "resume_accounts", "_selected_action": [account.pk]})
    account.refresh_from_db()
    assert (account.status, account.consecutive_failures, account.last_error) == ("active", 0, "")
