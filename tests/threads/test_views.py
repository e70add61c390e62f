"""Inbox pages: inbox, thread view and its actions, reply, unmatched queue, attachments, channel account pages."""

from __future__ import annotations

import pytest
from django.urls import reverse

from accounts.models import Visibility
from tests.threads.conversation_helpers import call_with, email_from, identity, ingest
from tests.threads.factories import ChannelAccountFactory, inbound_email
from threads.connectors import AttachmentIn
from threads.models import ChannelAccount, Message, RawEvent, Thread, ThreadRead

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _media(settings, tmp_path) -> None:
    settings.MEDIA_ROOT = tmp_path


@pytest.fixture
def account(world) -> ChannelAccount:
    return ChannelAccountFactory(owner=world.a1, team=world.team_a, address="sales@ourco.example")


@pytest.fixture
def thread(world, account) -> Thread:
    identity(world.a1_shared, "ann@example.com")
    email_from(account, "ann@example.com", subject="Pricing question", body="How much is it?", minutes=1)
    call_with(world.a1_shared, minutes=2, notes="Called back about pricing")
    return Thread.objects.get(contact=world.a1_shared, topic="")


def login(client, user):  # type: ignore[no-untyped-def]
    client.force_login(user)
    return client


def test_pages_need_a_login(client, thread) -> None:
    for url in (reverse("threads:index"), reverse("threads:detail", args=[thread.pk]), reverse("threads:accounts")):
        response = client.get(url)
        assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_inbox_lists_visible_threads_in_bounded_queries(client, world, thread, django_assert_max_num_queries) -> None:
    identity(world.b1_shared, "bea@example.com")
    email_from(ChannelAccountFactory(owner=world.b1, team=world.team_b), "bea@example.com", subject="Team B stuff")
    login(client, world.a1)
    with django_assert_max_num_queries(12):
        response = client.get(reverse("threads:index"))
    assert response.status_code == 200
    html = response.content.decode()
    assert "Ann Shared" in html and "Called back about pricing" in html and "Phone call" in html
    assert "Team B stuff" not in html
    assert 'class="unread-dot"' in html
    assert client.get(reverse("threads:index"), {"channel": "call", "assignee": "me"}).status_code == 200
    assert client.get(reverse("threads:index"), {"cursor": "garbage"}).status_code == 302


def test_inbox_load_more_returns_the_next_rows(client, world, account) -> None:
    from tests.contacts.factories import ContactFactory

    for i in range(3):
        contact = ContactFactory(owner=world.a1, team=world.team_a, first_name=f"Person{i}")
        identity(contact, f"p{i}@example.com")
        email_from(account, f"p{i}@example.com", minutes=i)
    login(client, world.a1)
    from threads import views

    views.PAGE_SIZE, old = 2, views.PAGE_SIZE
    try:
        first = client.get(reverse("threads:index")).content.decode()
        assert "Person2" in first and "Person1" in first and "Person0" not in first and "Load more" in first
        cursor = first.split("cursor=")[1].split('"')[0]
        more = client.get(reverse("threads:index") + f"?cursor={cursor}", HTTP_HX_REQUEST="true").content.decode()
    finally:
        views.PAGE_SIZE = old
    assert "Person0" in more and "<html" not in more and "Load more" not in more


def test_thread_view_shows_every_channel_and_marks_read(client, world, thread) -> None:
    login(client, world.a2)
    response = client.get(reverse("threads:detail", args=[thread.pk]))
    assert response.status_code == 200
    html = response.content.decode()
    assert "Pricing question" in html and "How much is it?" in html and "Called back about pricing" in html
    assert "E-mail" in html and "Phone call" in html and "Re: Pricing question" in html
    assert ThreadRead.objects.filter(thread=thread, user=world.a2).exists()


def test_other_team_gets_404_everywhere(client, world, thread, account) -> None:
    login(client, world.b1)
    message = thread.messages.first()
    assert client.get(reverse("threads:detail", args=[thread.pk])).status_code == 404
    for name in ("threads:reply", "threads:assign", "threads:close", "threads:split", "threads:merge"):
        assert client.post(reverse(name, args=[thread.pk]), {"body_text": "x"}).status_code == 404
    assert client.post(reverse("threads:message_move", args=[message.pk]), {"topic": "x"}).status_code == 404
    assert client.get(reverse("threads:contact", args=[world.a1_shared.pk])).status_code == 404
    assert client.get(reverse("threads:account_detail", args=[account.pk])).status_code == 404
    assert client.post(reverse("threads:account_retry", args=[account.pk])).status_code == 404


def test_private_mailbox_message_renders_no_body_or_attachments_for_others(client, world, thread) -> None:
    private = ChannelAccountFactory(owner=world.a2, team=world.team_a, visibility=Visibility.PRIVATE)
    message = inbound_email("ann@example.com", subject="Personal note", body="SECRET-BODY-TEXT")
    message.body_html = "<p>SECRET-HTML</p>"
    message.attachments = [AttachmentIn("secret-plan.pdf", "application/pdf", b"%PDF-1.4 secret", 15)]
    (mid,) = ingest(private, [message])
    attachment = Message.objects.get(pk=mid).attachments.get()
    url = reverse("threads:detail", args=[thread.pk])
    html = login(client, world.a1).get(url).content.decode()
    assert "Personal note" in html and "Private mailbox" in html
    assert "SECRET-BODY-TEXT" not in html and "SECRET-HTML" not in html and "secret-plan.pdf" not in html
    assert client.get(reverse("threads:attachment", args=[attachment.pk])).status_code == 404
    html = login(client, world.a2).get(url).content.decode()
    assert "SECRET-BODY-TEXT" in html and "SECRET-HTML" in html and "secret-plan.pdf" in html
    response = client.get(reverse("threads:attachment", args=[attachment.pk]))
    assert response.status_code == 200 and b"".join(response.streaming_content) == b"%PDF-1.4 secret"
    assert response["Content-Disposition"].startswith("attachment")


def test_full_message_shows_the_sanitized_html(client, world, thread, account) -> None:
    email_from(account, "ann@example.com", body="Short", full="Short\n\n> quoted history",
               html='<p>Rich <b>text</b></p><script>alert("x")</script>', minutes=3)  # fmt: skip
    html = login(client, world.a1).get(reverse("threads:detail", args=[thread.pk])).content.decode()
    assert "Show full message" in html and "<p>Rich <b>text</b></p>" in html and 'alert("x")' not in html


def test_reply_is_stored_queued_in_the_thread(client, world, thread, account) -> None:
    login(client, world.a1)
    inbound = thread.messages.get(channel="email")
    response = client.post(
        reverse("threads:reply", args=[thread.pk]),
        {"account": account.pk, "to": "email:ann@example.com", "subject": "Re: Pricing question",
         "body_text": "It is 10 euros.", "cc": "boss@example.com"},
    )  # fmt: skip
    assert response.status_code == 302
    sent = Message.objects.get(thread=thread, direction="outbound", channel="email")
    assert response["Location"].endswith(f"#m{sent.pk}")
    assert (sent.delivery, sent.body_text, sent.created_by) == ("queued", "It is 10 euros.", world.a1)
    assert sent.meta["reply_to_message"] == inbound.pk
    assert {r["address"] for r in sent.recipients} == {"ann@example.com", "boss@example.com"}
    html = client.get(reverse("threads:detail", args=[thread.pk])).content.decode()
    assert "It is 10 euros." in html and "Queued" in html


def test_bad_reply_is_a_form_error_and_stores_nothing(client, world, thread, account) -> None:
    login(client, world.a1)
    url = reverse("threads:reply", args=[thread.pk])
    response = client.post(url, {"account": account.pk, "to": "email:ann@example.com", "body_text": "  "})
    assert response.status_code == 400 and "This field is required" in response.content.decode()
    response = client.post(
        url, {"account": account.pk, "to": "email:ann@example.com", "body_text": "Hi", "cc": "not an address"}
    )
    assert response.status_code == 400 and "not a valid e-mail address" in response.content.decode()
    response = client.post(url, {"account": account.pk, "to": "email:mallory@example.com", "body_text": "Hi"})
    assert response.status_code == 400
    assert not Message.objects.filter(direction="outbound", channel="email").exists()


def test_assign_close_reopen_plain_and_htmx(client, world, thread) -> None:
    login(client, world.a1)
    response = client.post(reverse("threads:assign", args=[thread.pk]), {"assignee": world.a2.pk})
    assert response.status_code == 302 and Thread.objects.get(pk=thread.pk).assignee == world.a2
    response = client.post(reverse("threads:close", args=[thread.pk]), HTTP_HX_REQUEST="true")
    html = response.content.decode()
    assert response.status_code == 200 and 'id="thread-state"' in html and "Reopen" in html and "<html" not in html
    assert Thread.objects.get(pk=thread.pk).status == "closed"
    client.post(reverse("threads:reopen", args=[thread.pk]))
    assert Thread.objects.get(pk=thread.pk).status == "open"
    response = client.post(reverse("threads:assign", args=[thread.pk]), {"assignee": world.b1.pk}, follow=True)
    assert Thread.objects.get(pk=thread.pk).assignee == world.a2


def test_split_move_and_merge_from_the_page(client, world, thread) -> None:
    login(client, world.a1)
    email, call = thread.messages.order_by("sent_at")
    response = client.post(reverse("threads:split", args=[thread.pk]), {"topic": "Pricing", "message_ids": [call.pk]})
    topic = Thread.objects.get(contact=world.a1_shared, topic="Pricing")
    assert response["Location"] == reverse("threads:detail", args=[topic.pk])
    assert list(topic.messages.values_list("pk", flat=True)) == [call.pk]
    response = client.post(reverse("threads:message_move", args=[email.pk]), {"topic": "Pricing"})
    assert Message.objects.get(pk=email.pk).thread == topic
    response = client.post(reverse("threads:merge", args=[topic.pk]), {"target": thread.pk})
    assert response["Location"] == reverse("threads:detail", args=[thread.pk])
    assert not Thread.objects.filter(pk=topic.pk).exists() and thread.messages.count() == 2
    response = client.post(reverse("threads:split", args=[thread.pk]), {"topic": "", "message_ids": []}, follow=True)
    assert "Tick the messages" in response.content.decode()


def test_contact_conversation_redirects_to_the_main_thread(client, world) -> None:
    login(client, world.a2)
    response = client.get(reverse("threads:contact", args=[world.a2_private.pk]))
    main = Thread.objects.get(contact=world.a2_private, topic="")
    assert response["Location"] == reverse("threads:detail", args=[main.pk])
    assert client.get(response["Location"]).status_code == 200


def test_unmatched_queue_page_and_matching(client, world) -> None:
    held = ChannelAccountFactory(
        owner=world.a1, team=world.team_a, unknown_policy=ChannelAccount.UnknownPolicy.UNMATCHED
    )
    message = email_from(held, "stranger@example.org", subject="Who is this")
    login(client, world.a1)
    assert "Who is this" in client.get(reverse("threads:unmatched")).content.decode()
    url = reverse("threads:unmatched_assign", args=[message.pk])
    response = client.post(url, {"contact": "nobody-matches-this"}, follow=True)
    assert "No contact matches" in response.content.decode()
    response = client.post(url, {"contact": f"#{world.a2_shared.pk}"})
    message.refresh_from_db()
    assert message.contact == world.a2_shared
    assert response["Location"] == reverse("threads:detail", args=[message.thread_id])
    assert "Who is this" not in client.get(reverse("threads:unmatched")).content.decode()


def test_channel_account_page_shows_dead_letters_and_retries_them(client, world, account) -> None:
    dead = RawEvent.objects.create(
        channel_account=account, provider_event_id="<broken@x>", event_type="email", payload=b"garbage",
        status=RawEvent.Status.DEAD, error="NormalizeError: no From header", attempts=1,
    )  # fmt: skip
    ChannelAccount.objects.filter(pk=account.pk).update(
        reported_count=200, stored_count=150, last_error="IMAP login failed", consecutive_failures=3
    )
    login(client, world.a2)
    assert account.name in client.get(reverse("threads:accounts")).content.decode()
    html = client.get(reverse("threads:account_detail", args=[account.pk])).content.decode()
    assert "no From header" in html and "IMAP login failed" in html and "150 stored of 200 reported (75%)" in html
    assert "Retry" in html and "Sync now" in html and "Pause" not in html  # a2 is not the owner
    response = client.post(reverse("threads:account_retry", args=[account.pk]), {"event": [dead.pk]})
    assert response.status_code == 302
    dead.refresh_from_db()
    assert dead.status == RawEvent.Status.PENDING and dead.error == ""


def test_owner_pauses_resumes_and_syncs(client, world, account) -> None:
    login(client, world.a1)
    client.post(reverse("threads:account_pause", args=[account.pk]))
    assert ChannelAccount.objects.get(pk=account.pk).status == "paused"
    response = client.post(reverse("threads:account_sync", args=[account.pk]), follow=True)
    assert "resume it first" in response.content.decode()
    client.post(reverse("threads:account_resume", args=[account.pk]))
    assert ChannelAccount.objects.get(pk=account.pk).status == "active"
    response = client.post(reverse("threads:account_sync", args=[account.pk]), follow=True)
    assert "will sync in a moment" in response.content.decode()
    login(client, world.a2)
    response = client.post(reverse("threads:account_pause", args=[account.pk]), follow=True)
    assert "Only the owner" in response.content.decode()
    assert ChannelAccount.objects.get(pk=account.pk).status == "active"


def test_thread_view_query_count_does_not_grow_with_messages(client, world, thread, account) -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    login(client, world.a1)
    url = reverse("threads:detail", args=[thread.pk])
    with CaptureQueriesContext(connection) as few:
        assert client.get(url).status_code == 200
    for i in range(10):
        email_from(account, "ann@example.com", subject=f"More {i}", minutes=10 + i)
        call_with(world.a1_shared, minutes=30 + i)
    with CaptureQueriesContext(connection) as many:
        assert client.get(url).status_code == 200
    assert len(many) == len(few) <= 25
