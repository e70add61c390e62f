"""The Facebook pages connector against recorded Graph API exchanges: pulling Messenger conversations and post
comments (first and incremental sync, pagination, interrupted passes), provider trouble (expired token, rate limits
with and without usage headers, outages), appsecret_proof on every call, replies through Messenger and as comment
replies that are stored once when they come back, deletions, text that is not ASCII, and unreadable input."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
from collections.abc import Iterator

import pytest
import requests
import responses
from django.db import transaction
from django.utils import timezone

from accounts.models import Notification
from contacts.models import ContactIdentity
from crm.errors import DomainError
from tests.threads.facebook_fixtures import (
    ANN,
    ANN_PSID,
    APP_RATE_LIMIT,
    APP_SECRET,
    BOB,
    BOB_ID,
    CUSTOM_RATE_LIMIT,
    DAVID,
    DAVID_PSID,
    EXPIRED_TOKEN,
    PAGE_ID,
    PAGE_NAME,
    PAGE_RATE_LIMIT,
    TEMPORARILY_DOWN,
    VERSION,
    FakeGraph,
    ago,
    buc_usage,
    comment,
    comment_change,
    conversation,
    echo_messaging,
    fb_time,
    feed_entry,
    graph_error,
    inbound_messaging,
    listing,
    message,
    messaging_entry,
    ms,
    next_after,
    page_account,
    post,
)
from threads.connectors import (
    AttachmentIn,
    ChannelAuthError,
    ChannelRateLimited,
    ChannelUnavailable,
    ConnectorError,
    OutgoingDraft,
    Party,
    RawEventIn,
    post_fetcher_for,
)
from threads.connectors import facebook as fb
from threads.models import ChannelAccount, Message, RawEvent, Thread
from threads.selectors import latest_inbound
from threads.services.channel_accounts import channel_account_test
from threads.services.pipeline import ingest_fetched, raw_events_process, raw_events_replay, raw_events_store
from threads.services.send import message_deliver, message_send
from threads.tasks import channel_sync, channel_sync_task

pytestmark = pytest.mark.django_db

CONV_A, CONV_D = "t_10161226524390361", "t_10161226524390362"
POST_ID = f"{PAGE_ID}_2203948571"
BOB_COMMENT = "2203948571_900113"
ANN_KEY = f"facebook:psid:{PAGE_ID}:{ANN_PSID}"
POST_KEY = f"facebook:post:{POST_ID}"


@pytest.fixture
def graph(settings) -> Iterator[FakeGraph]:  # type: ignore[no-untyped-def]
    settings.FACEBOOK_GRAPH_VERSION = VERSION
    settings.FACEBOOK_APP_SECRET = APP_SECRET
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        fake = FakeGraph(mock)
        yield fake
        fake.assert_every_call_proved()


@pytest.fixture
def account(world) -> ChannelAccount:  # type: ignore[no-untyped-def]
    return page_account(world)


@pytest.fixture
def requeued(monkeypatch) -> list[tuple]:  # type: ignore[no-untyped-def]
    """A rate-limited sync re-queues itself; record that instead of talking to the broker."""
    calls: list[tuple] = []
    monkeypatch.setattr(channel_sync_task, "apply_async", lambda *a, **k: calls.append((a, k)))
    return calls


def no_posts(graph: FakeGraph) -> None:
    graph.get(f"{PAGE_ID}/posts", listing(f"{PAGE_ID}/posts", []))


def no_conversations(graph: FakeGraph) -> None:
    graph.get(f"{PAGE_ID}/conversations", listing(f"{PAGE_ID}/conversations", []))


def webhook_in(account: ChannelAccount, *entries: dict) -> None:  # type: ignore[type-arg]
    """Store and process webhook events the way the webhook view and its task do."""
    events = [e for entry in entries for e in fb.webhook_events(entry)]
    ingest_fetched(account=account, events=events, cursor=None)


def first_sync(graph: FakeGraph) -> dict[str, dict]:  # type: ignore[type-arg]
    """Two conversations over two pages (Ann's messages over two pages too) and a post with a comment and our reply."""
    conv_a = conversation(CONV_A, ago(minutes=30), ANN_PSID, ANN)
    conv_d = conversation(CONV_D, ago(hours=1), DAVID_PSID, DAVID)
    first = listing(f"{PAGE_ID}/conversations", [conv_a], params={"fields": fb.CONVERSATION_FIELDS}, last=False)
    graph.get(f"{PAGE_ID}/conversations", first, fields=fb.CONVERSATION_FIELDS)
    graph.get(f"{PAGE_ID}/conversations", listing(f"{PAGE_ID}/conversations", [conv_d]), after=next_after(first))
    ann1 = message("m_ann1", ago(minutes=40), text="Do you ship to Norway? 🇳🇴", sender=(ANN_PSID, ANN),
                   to=(PAGE_ID, PAGE_NAME))  # fmt: skip
    page1 = message("m_page1", ago(minutes=30), text="We do, in 3-5 days.", sender=(PAGE_ID, PAGE_NAME),
                    to=(ANN_PSID, ANN))  # fmt: skip
    newest = listing(f"{CONV_A}/messages", [page1], params={"fields": fb.MESSAGE_FIELDS}, last=False)
    graph.get(f"{CONV_A}/messages", newest, fields=fb.MESSAGE_FIELDS)
    graph.get(f"{CONV_A}/messages", listing(f"{CONV_A}/messages", [ann1]), after=next_after(newest))
    david = message("m_david1", ago(hours=1), text="שלום! יש לכם אופניים חשמליים? 🚲", sender=(DAVID_PSID, DAVID),
                    to=(PAGE_ID, PAGE_NAME))  # fmt: skip
    graph.get(f"{CONV_D}/messages", listing(f"{CONV_D}/messages", [david]))
    bob = comment(BOB_COMMENT, ago(hours=2), text="Is the red one still in stock?", author=(BOB_ID, BOB))
    reply = comment("2203948571_900114", ago(hours=1), text="Yes, in every size!", author=(PAGE_ID, PAGE_NAME),
                    parent=bob)  # fmt: skip
    graph.get(f"{PAGE_ID}/posts", listing(f"{PAGE_ID}/posts", [post(POST_ID, ago(days=2), updated=ago(hours=1),
                                                                    comments=2)]))  # fmt: skip
    graph.get(f"{POST_ID}/comments", listing(f"{POST_ID}/comments", [bob, reply]), filter="stream",
              fields=fb.COMMENT_FIELDS)  # fmt: skip
    return {"conv_a": conv_a, "conv_d": conv_d, "ann1": ann1, "page1": page1, "bob": bob, "reply": reply}


# --- Pulling ---------------------------------------------------------------------------------------------------


def test_first_sync_stores_conversations_and_comments_in_the_contacts_threads(world, graph, account) -> None:
    seen = first_sync(graph)
    assert channel_sync(account.pk) == "ok"

    ann_in, ann_out = Message.objects.get(external_id="m_ann1"), Message.objects.get(external_id="m_page1")
    assert (ann_in.direction, ann_out.direction) == ("inbound", "outbound")
    assert ann_in.contact == ann_out.contact and ann_in.thread == ann_out.thread
    assert ann_in.provider_thread_key == ann_out.provider_thread_key == ANN_KEY
    assert (ann_in.author_address, ann_in.author_name) == (ANN_PSID, ANN)
    assert ann_out.author_address == PAGE_ID and ann_out.recipients == [{"kind": "to", "address": ANN_PSID,
                                                                         "name": ANN}]  # fmt: skip
    assert ann_in.global_key == "facebook:m_ann1" and ann_in.body_text == "Do you ship to Norway? 🇳🇴"
    identity = ContactIdentity.objects.get(kind="facebook", normalized=ANN_PSID)
    assert identity.contact == ann_in.contact and identity.contact.lifecycle_stage == "lead"
    assert (identity.contact.first_name, identity.contact.last_name) == ("Ann", "Lindqvist")
    assert ann_in.contact.owner == world.ma  # leads belong to whoever owns the page account

    david = Message.objects.get(external_id="m_david1")
    assert david.body_text == "שלום! יש לכם אופניים חשמליים? 🚲" and david.contact.first_name == "דוד"

    bob, reply = Message.objects.get(external_id=BOB_COMMENT), Message.objects.get(external_id="2203948571_900114")
    assert (bob.direction, bob.author_address, bob.provider_thread_key) == ("inbound", BOB_ID, POST_KEY)
    assert (reply.direction, reply.thread, reply.contact) == ("outbound", bob.thread, bob.contact)
    assert reply.meta["parent_comment_id"] == BOB_COMMENT and bob.meta["permalink_url"].startswith("https://")
    assert Message.objects.count() == 5
    assert set(RawEvent.objects.values_list("status", flat=True)) == {"processed"}

    account.refresh_from_db()
    assert account.cursor["messenger"] == {
        "watermark": fb.parse_time(seen["conv_a"]["updated_time"]).isoformat(),
        "read": {CONV_A: seen["conv_a"]["updated_time"], CONV_D: seen["conv_d"]["updated_time"]},
    }
    assert account.cursor["comments"]["posts"][POST_ID]["count"] == 2
    assert account.status == "active" and account.last_error == ""


def test_pagination_follows_paging_next_on_graph_only(graph, account) -> None:
    first_sync(graph)
    channel_sync(account.pk)
    paths = graph.paths()
    assert paths.count(f"/{VERSION}/{PAGE_ID}/conversations") == 2
    assert paths.count(f"/{VERSION}/{CONV_A}/messages") == 2
    second = graph.calls[paths.index(f"/{VERSION}/{CONV_A}/messages") + 1].request
    assert "after=" in second.url  # the cursor of the page before, with our own token and proof


def test_incremental_sync_reads_only_conversations_and_posts_that_changed(graph, account) -> None:
    seen = first_sync(graph)
    assert channel_sync(account.pk) == "ok"
    ChannelAccount.objects.filter(pk=account.pk).update(next_sync_at=None)
    stored = ChannelAccount.objects.get(pk=account.pk).cursor["comments"]["posts"][POST_ID]
    graph.mock.reset()
    # Ann wrote again; David's conversation is older than the watermark and the post is as it was.
    conv_a = conversation(CONV_A, ago(minutes=2), ANN_PSID, ANN)
    graph.get(f"{PAGE_ID}/conversations", listing(f"{PAGE_ID}/conversations", [conv_a, seen["conv_d"]]))
    ann2 = message("m_ann2", ago(minutes=2), text="Great, ordering now.", sender=(ANN_PSID, ANN),
                   to=(PAGE_ID, PAGE_NAME))  # fmt: skip
    graph.get(f"{CONV_A}/messages", listing(f"{CONV_A}/messages", [ann2, seen["page1"], seen["ann1"]]))
    unchanged = post(POST_ID, ago(days=2), comments=stored["count"]) | {"updated_time": stored["updated"]}
    graph.get(f"{PAGE_ID}/posts", listing(f"{PAGE_ID}/posts", [unchanged]))

    assert channel_sync(account.pk) == "ok"
    assert f"/{VERSION}/{CONV_D}/messages" not in graph.paths()
    assert f"/{VERSION}/{POST_ID}/comments" not in graph.paths()
    assert Message.objects.count() == 6
    new = Message.objects.get(external_id="m_ann2")
    assert new.thread == Message.objects.get(external_id="m_ann1").thread and new.thread.awaiting_reply
    account.refresh_from_db()
    assert account.cursor["messenger"]["watermark"] == fb.parse_time(conv_a["updated_time"]).isoformat()


def test_rate_limit_mid_pass_keeps_what_was_read_and_resumes_without_skipping(graph, account, requeued) -> None:
    conv_a = conversation(CONV_A, ago(minutes=30), ANN_PSID, ANN)
    conv_d = conversation(CONV_D, ago(hours=1), DAVID_PSID, DAVID)
    graph.get(f"{PAGE_ID}/conversations", listing(f"{PAGE_ID}/conversations", [conv_a, conv_d]))
    ann1 = message("m_ann1", ago(minutes=30), text="Hi!", sender=(ANN_PSID, ANN), to=(PAGE_ID, PAGE_NAME))
    graph.get(f"{CONV_A}/messages", listing(f"{CONV_A}/messages", [ann1]))
    graph.get(f"{CONV_D}/messages", PAGE_RATE_LIMIT, status=400, headers=buc_usage(7))

    before = timezone.now()
    assert channel_sync(account.pk) == "rate_limited"
    account.refresh_from_db()
    assert Message.objects.filter(external_id="m_ann1").exists()  # committed before the limit hit
    assert "watermark" not in account.cursor["messenger"]  # the pass is not finished: nothing may be skipped
    assert account.cursor["messenger"]["read"] == {CONV_A: conv_a["updated_time"]}
    assert account.cursor["messenger"]["pass_high"] == fb.parse_time(conv_a["updated_time"]).isoformat()
    wait = (account.next_sync_at - before).total_seconds()
    assert 415 <= wait <= 425  # 7 minutes, from X-Business-Use-Case-Usage
    assert "facebook:messages" in account.throttle and "Page request limit" in account.last_error
    assert requeued and requeued[0][1]["countdown"] == 420

    graph.mock.reset()
    graph.get(f"{PAGE_ID}/conversations", listing(f"{PAGE_ID}/conversations", [conv_a, conv_d]))
    david = message("m_david1", ago(hours=1), text="?", sender=(DAVID_PSID, DAVID), to=(PAGE_ID, PAGE_NAME))
    graph.get(f"{CONV_D}/messages", listing(f"{CONV_D}/messages", [david]))
    no_posts(graph)
    ChannelAccount.objects.filter(pk=account.pk).update(next_sync_at=None)
    assert channel_sync(account.pk) == "ok"
    assert f"/{VERSION}/{CONV_A}/messages" not in graph.paths()  # done in the interrupted pass, unchanged since
    assert Message.objects.filter(external_id="m_david1").exists()
    account.refresh_from_db()
    assert account.cursor["messenger"] == {
        "watermark": fb.parse_time(conv_a["updated_time"]).isoformat(),
        "read": {CONV_A: conv_a["updated_time"], CONV_D: conv_d["updated_time"]},
    }


def test_conversation_that_moved_up_during_a_pass_is_read_back_to_where_it_was_left(graph, account) -> None:
    # Pass 1 pages through the list while David writes: his conversation jumps above the cursor and is never listed.
    conv_a = conversation(CONV_A, ago(minutes=30), ANN_PSID, ANN)
    graph.get(f"{PAGE_ID}/conversations", listing(f"{PAGE_ID}/conversations", [conv_a]))
    graph.get(f"{CONV_A}/messages", listing(f"{CONV_A}/messages", [
        message("m_ann1", ago(minutes=30), text="Hi", sender=(ANN_PSID, ANN), to=(PAGE_ID, PAGE_NAME))]))  # fmt: skip
    no_posts(graph)
    assert channel_sync(account.pk) == "ok"

    graph.mock.reset()
    conv_d = conversation(CONV_D, ago(minutes=5), DAVID_PSID, DAVID)
    graph.get(f"{PAGE_ID}/conversations", listing(f"{PAGE_ID}/conversations", [conv_d, conv_a]))
    newest = listing(f"{CONV_D}/messages", [
        message("m_d3", ago(minutes=5), text="Still there?", sender=(DAVID_PSID, DAVID), to=(PAGE_ID, PAGE_NAME)),
        message("m_d2", ago(minutes=45), text="Anyone?", sender=(DAVID_PSID, DAVID), to=(PAGE_ID, PAGE_NAME)),
    ], last=False)  # fmt: skip
    graph.get(f"{CONV_D}/messages", newest)
    older = message("m_d1", ago(hours=2), text="Hello?", sender=(DAVID_PSID, DAVID), to=(PAGE_ID, PAGE_NAME))
    graph.get(f"{CONV_D}/messages", listing(f"{CONV_D}/messages", [older]), after=next_after(newest))
    no_posts(graph)
    ChannelAccount.objects.filter(pk=account.pk).update(next_sync_at=None)
    assert channel_sync(account.pk) == "ok"
    # Written before the watermark (page 2, behind one already older than it), in a conversation no pass had read:
    # not lost.
    assert set(Message.objects.values_list("external_id", flat=True)) == {"m_ann1", "m_d1", "m_d2", "m_d3"}
    assert f"/{VERSION}/{CONV_A}/messages" not in graph.paths()  # unchanged since it was read


@pytest.mark.parametrize(
    ("status", "body", "headers", "expected_wait"),
    [
        (400, PAGE_RATE_LIMIT, buc_usage(7), 420),  # page limit; the usage header says how long
        (400, APP_RATE_LIMIT, {}, fb.DEFAULT_RATE_LIMIT_WAIT),  # no header: the default
        (400, CUSTOM_RATE_LIMIT, {"X-App-Usage": '{"call_count":100,"total_time":20,"total_cputime":15}'},
         fb.DEFAULT_RATE_LIMIT_WAIT),  # X-App-Usage has no time estimate
        (429, graph_error("(#80001) There have been too many calls to this Page account.", code=80001),
         buc_usage(0), fb.DEFAULT_RATE_LIMIT_WAIT),  # "0 minutes" while refusing is no estimate
        (429, {}, {"X-Page-Usage": '{"call_count":101,"estimated_time_to_regain_access":3}'}, 180),
    ],
)  # fmt: skip
def test_rate_limits_wait_as_long_as_meta_says(graph, account, status, body, headers, expected_wait) -> None:
    graph.get(f"{PAGE_ID}/conversations", body, status=status, headers=headers)
    with pytest.raises(ChannelRateLimited) as caught:
        fb.poll_page(account)
    assert caught.value.retry_after == expected_wait
    assert caught.value.endpoint == "facebook:conversations"


def test_expired_token_needs_reauth_and_polling_stops(world, graph, account) -> None:
    graph.get(f"{PAGE_ID}/conversations", EXPIRED_TOKEN, status=400)
    assert channel_sync(account.pk) == "needs_reauth"
    account.refresh_from_db()
    assert account.status == "needs_reauth" and "Connect the page again" in account.last_error
    assert "code 190" in account.last_error and "subcode 463" in account.last_error
    assert Notification.objects.filter(user=world.ma, message__contains="needs re-authentication").exists()
    calls = len(graph.calls)
    assert channel_sync(account.pk) == "skipped"
    assert len(graph.calls) == calls  # no further call with a dead token


def test_outages_fail_the_sync_and_back_off(graph, account, settings) -> None:
    settings.THREADS_SYNC_BACKOFF_MAX = 3600
    graph.get(f"{PAGE_ID}/conversations", TEMPORARILY_DOWN, status=500)
    before = timezone.now()
    assert channel_sync(account.pk) == "failing"
    account.refresh_from_db()
    assert (account.status, account.consecutive_failures) == ("failing", 1)
    assert 55 <= (account.next_sync_at - before).total_seconds() <= 65
    assert "unavailable" in account.last_error

    graph.mock.reset()
    graph.get(f"{PAGE_ID}/conversations", "<html><body>Service Unavailable</body></html>", status=503,
              content_type="text/html")  # fmt: skip
    before = timezone.now()
    assert channel_sync(account.pk) == "failing"
    account.refresh_from_db()
    assert account.consecutive_failures == 2 and 115 <= (account.next_sync_at - before).total_seconds() <= 125


@pytest.mark.parametrize(
    "exc", [requests.ConnectionError("Connection refused"), requests.Timeout("Read timed out. (read timeout=30)")]
)
def test_unreachable_graph_is_unavailable(graph, account, exc) -> None:
    graph.fail(f"{PAGE_ID}/conversations", exc)
    with pytest.raises(ChannelUnavailable, match="Cannot reach"):
        fb.poll_page(account)


def test_other_graph_errors_are_reported_as_they_are(graph, account) -> None:
    unsupported = graph_error("(#100) Unsupported get request.", code=100, type_="GraphMethodException", subcode=33)
    graph.get(f"{PAGE_ID}/conversations", unsupported, status=400)
    with pytest.raises(ConnectorError, match="Unsupported get request") as caught:
        fb.poll_page(account)
    assert type(caught.value) is ConnectorError


# --- appsecret_proof -------------------------------------------------------------------------------------------


def test_every_call_carries_the_proof_of_the_pages_own_app(world, settings) -> None:
    settings.FACEBOOK_GRAPH_VERSION = VERSION
    settings.FACEBOOK_APP_SECRET = APP_SECRET
    other = page_account(world, credentials={"page_access_token": "EAAother", "app_secret": "second-app"})
    proof = hmac.new(b"second-app", b"EAAother", hashlib.sha256).hexdigest()
    with responses.RequestsMock() as mock:
        fake = FakeGraph(mock, token="EAAother", proof=proof)
        no_conversations(fake)
        no_posts(fake)
        fb.poll_page(other)
        assert len(fake.calls) == 2
        fake.assert_every_call_proved()


def test_no_app_secret_means_no_call(world, settings) -> None:
    settings.FACEBOOK_APP_SECRET = ""
    with responses.RequestsMock() as mock, pytest.raises(ConnectorError, match="FACEBOOK_APP_SECRET"):
        fb.poll_page(page_account(world))
    assert not mock.calls


def test_missing_token_needs_reauth(world, graph) -> None:
    account = page_account(world, credentials={})
    assert channel_sync(account.pk) == "needs_reauth"
    assert not graph.calls


def test_paging_links_to_other_hosts_are_not_followed(graph, account) -> None:
    fetch = post_fetcher_for("facebook_page")
    assert fetch is not None
    with pytest.raises(ConnectorError, match="unexpected place"):
        fetch(account, {}, {"since": 1, "resume": "https://graph.facebook.com.evil.example/v21.0/x?after=1"})
    assert not graph.calls


# --- Sending ---------------------------------------------------------------------------------------------------


def _ann_wrote(account: ChannelAccount) -> Message:
    webhook_in(account, messaging_entry(inbound_messaging("m_ask1", "Can I still change my order? 🙏")))
    return Message.objects.get(external_id="m_ask1")


def _reply(world, thread: Thread, account: ChannelAccount, to: Party, text: str) -> Message:  # type: ignore[no-untyped-def]
    with transaction.atomic():
        return message_send(
            actor=world.ma, thread=thread, account=account, to=[to], body_text=text,
            reply_to=latest_inbound(thread=thread, channel="facebook"),
        )  # fmt: skip


def test_messenger_reply_is_sent_and_stored_once_when_it_comes_back(world, graph, account) -> None:
    asked = _ann_wrote(account)
    reply = _reply(world, asked.thread, account, Party("facebook", ANN_PSID, ANN), "Yes, until it ships 📦")
    placeholder = reply.external_id
    assert placeholder.startswith("pending:") and reply.delivery == "queued"
    assert reply.provider_thread_key == ANN_KEY and reply.meta["draft"]["fb_target"] == "messenger"

    graph.post(f"{PAGE_ID}/messages", {"recipient_id": ANN_PSID, "message_id": "m_sent1"}, messaging_type="RESPONSE")
    assert message_deliver(message_id=reply.pk) == "sent"
    sent = graph.sent()
    assert json.loads(sent["recipient"]) == {"id": ANN_PSID}
    assert json.loads(sent["message"]) == {"text": "Yes, until it ships 📦", "metadata": placeholder}
    reply.refresh_from_db()
    assert (reply.external_id, reply.global_key, reply.delivery) == ("m_sent1", "facebook:m_sent1", "sent")
    assert reply.meta["fb_kind"] == "message"

    # Meta echoes our own message to the webhook …
    webhook_in(account, messaging_entry(echo_messaging("m_sent1", "Yes, until it ships 📦", metadata=placeholder)))
    # … and the next pull lists it in the conversation.
    graph.get(f"{PAGE_ID}/conversations", listing(f"{PAGE_ID}/conversations", [
        conversation(CONV_A, ago(seconds=30), ANN_PSID, ANN)]))  # fmt: skip
    graph.get(f"{CONV_A}/messages", listing(f"{CONV_A}/messages", [
        message("m_sent1", ago(seconds=30), text="Yes, until it ships 📦", sender=(PAGE_ID, PAGE_NAME),
                to=(ANN_PSID, ANN)),
        message("m_ask1", ago(minutes=1), text="Can I still change my order? 🙏", sender=(ANN_PSID, ANN),
                to=(PAGE_ID, PAGE_NAME)),
    ]))  # fmt: skip
    no_posts(graph)
    assert channel_sync(account.pk) == "ok"
    assert list(Message.objects.order_by("sent_at").values_list("external_id", flat=True)) == ["m_ask1", "m_sent1"]
    assert RawEvent.objects.filter(status="dead").count() == 0


def test_echo_read_while_the_reply_is_still_being_delivered_is_not_a_second_message(world, graph, account) -> None:
    asked = _ann_wrote(account)
    reply = _reply(world, asked.thread, account, Party("facebook", ANN_PSID, ANN), "On it!")
    # The echo is processed before message_deliver has committed Facebook's id.
    webhook_in(account, messaging_entry(echo_messaging("m_sent2", "On it!", metadata=reply.external_id)))
    assert RawEvent.objects.get(provider_event_id="m_sent2").status == "ignored"
    assert Message.objects.count() == 2

    graph.post(f"{PAGE_ID}/messages", {"recipient_id": ANN_PSID, "message_id": "m_sent2"})
    message_deliver(message_id=reply.pk)
    raw_events_replay(account=account)  # a later replay of everything stored still adds nothing
    assert Message.objects.count() == 2 and Message.objects.get(pk=reply.pk).external_id == "m_sent2"


def test_comment_reply_is_posted_under_the_comment_and_stored_once(world, graph, account) -> None:
    webhook_in(account, feed_entry(comment_change(BOB_COMMENT, POST_ID, text="Is the red one still in stock?")))
    bob = Message.objects.get(external_id=BOB_COMMENT)
    assert (bob.provider_thread_key, bob.meta["fb_kind"]) == (POST_KEY, "comment")
    reply = _reply(world, bob.thread, account, Party("facebook", BOB_ID, BOB), "It is! 🚲")
    assert reply.meta["draft"]["fb_target"] == "comment" and reply.meta["draft"]["comment_id"] == BOB_COMMENT
    assert reply.provider_thread_key == POST_KEY

    graph.post(f"{BOB_COMMENT}/comments", {"id": "2203948571_900200"}, message="It is! 🚲")
    assert message_deliver(message_id=reply.pk) == "sent"
    reply.refresh_from_db()
    assert (reply.external_id, reply.global_key) == ("2203948571_900200", "facebook:2203948571_900200")

    # The feed webhook reports the page's comment, and the next pull lists it under Bob's.
    webhook_in(account, feed_entry(comment_change("2203948571_900200", POST_ID, text="It is! 🚲",
                                                  author=(PAGE_ID, PAGE_NAME), parent_id=BOB_COMMENT)))  # fmt: skip
    no_conversations(graph)
    bob_item = comment(BOB_COMMENT, ago(minutes=1), text="Is the red one still in stock?", author=(BOB_ID, BOB))
    mine = comment("2203948571_900200", ago(seconds=20), text="It is! 🚲", author=(PAGE_ID, PAGE_NAME),
                   parent=bob_item)  # fmt: skip
    graph.get(f"{PAGE_ID}/posts", listing(f"{PAGE_ID}/posts", [post(POST_ID, ago(days=1), comments=2)]))
    graph.get(f"{POST_ID}/comments", listing(f"{POST_ID}/comments", [bob_item, mine]))
    assert channel_sync(account.pk) == "ok"
    assert Message.objects.count() == 2
    assert Message.objects.get(pk=reply.pk).thread == bob.thread


def test_page_comment_reported_while_our_reply_is_being_delivered_is_not_a_second_message(
    world, graph, account
) -> None:
    webhook_in(account, feed_entry(comment_change(BOB_COMMENT, POST_ID, text="Do you deliver?")))
    bob = Message.objects.get(external_id=BOB_COMMENT)
    reply = _reply(world, bob.thread, account, Party("facebook", BOB_ID, BOB), "We do.")
    webhook_in(account, feed_entry(comment_change("2203948571_900201", POST_ID, text="We do.",
                                                  author=(PAGE_ID, PAGE_NAME), parent_id=BOB_COMMENT)))  # fmt: skip
    assert RawEvent.objects.get(provider_event_id="2203948571_900201").status == "ignored"
    graph.post(f"{BOB_COMMENT}/comments", {"id": "2203948571_900201"})
    message_deliver(message_id=reply.pk)
    raw_events_replay(account=account)
    assert Message.objects.count() == 2 and Message.objects.get(pk=reply.pk).external_id == "2203948571_900201"


def test_answer_to_a_reply_joins_the_top_level_comment(world, account) -> None:
    webhook_in(account, feed_entry(
        comment_change(BOB_COMMENT, POST_ID, text="Top"),
        comment_change("2203948571_900300", POST_ID, text="Reply from Bob", parent_id=BOB_COMMENT),
    ))  # fmt: skip
    answered = Message.objects.get(external_id="2203948571_900300")
    draft = fb.prepare_facebook(account, OutgoingDraft(to=[Party("facebook", BOB_ID)], body_text="Thanks"),
                                answered.thread, answered)  # fmt: skip
    assert draft.meta["comment_id"] == BOB_COMMENT  # Facebook nests one level deep


def test_replies_facebook_would_refuse_are_refused_before_they_are_stored(world, account) -> None:
    asked = _ann_wrote(account)
    to = Party("facebook", ANN_PSID, ANN)
    with pytest.raises(DomainError, match="at most 2000"):
        _reply(world, asked.thread, account, to, "x" * 2001)
    with pytest.raises(DomainError, match="Attachments"):
        fb.prepare_facebook(account, OutgoingDraft(to=[to], body_text="see", attachments=[
            AttachmentIn("a.pdf", "application/pdf", b"%PDF", 4)]), asked.thread, None)  # fmt: skip
    with pytest.raises(DomainError, match="Facebook id"):
        fb.prepare_facebook(account, OutgoingDraft(to=[Party("facebook", "@ann")], body_text="hi"), asked.thread,
                            None)  # fmt: skip
    assert Message.objects.count() == 1


def test_send_errors_map_like_polling_errors(graph, account) -> None:
    draft = OutgoingDraft(to=[], body_text="hi", external_id="pending:x", meta={"fb_target": "messenger",
                                                                                "psid": ANN_PSID})  # fmt: skip
    graph.post(f"{PAGE_ID}/messages", EXPIRED_TOKEN, status=400)
    with pytest.raises(ChannelAuthError):
        fb.send_facebook(account, draft)
    graph.mock.reset()
    graph.post(f"{PAGE_ID}/messages", APP_RATE_LIMIT, status=400)
    with pytest.raises(ChannelRateLimited):
        fb.send_facebook(account, draft)
    graph.mock.reset()
    graph.post(f"{PAGE_ID}/messages", TEMPORARILY_DOWN, status=500)
    with pytest.raises(ChannelUnavailable):
        fb.send_facebook(account, draft)


def test_reply_facebook_refuses_for_good_fails_at_once(world, graph, account) -> None:
    asked = _ann_wrote(account)
    reply = _reply(world, asked.thread, account, Party("facebook", ANN_PSID, ANN), "Late answer")
    outside = graph_error("(#10) This message is sent outside of allowed window.", code=10, subcode=2018278)
    graph.post(f"{PAGE_ID}/messages", outside, status=400)
    assert message_deliver(message_id=reply.pk) == "failed"  # not retried: it would be refused again
    reply.refresh_from_db()
    assert "outside of allowed window" in reply.meta["error"]
    assert ChannelAccount.objects.get(pk=account.pk).status == "active"  # the page itself is fine


# --- Deletions, text, tolerance, unreadable input --------------------------------------------------------------


def test_removed_comment_is_marked_not_dropped(account) -> None:
    webhook_in(account, feed_entry(comment_change(BOB_COMMENT, POST_ID, text="This shop is a scam")))
    webhook_in(account, feed_entry(comment_change(BOB_COMMENT, POST_ID, verb="remove")))
    kept = Message.objects.get(external_id=BOB_COMMENT)
    assert kept.deleted_at is not None and kept.body_text == "This shop is a scam"
    assert RawEvent.objects.get(provider_event_id=f"{BOB_COMMENT}:remove").status == "processed"


def test_removal_seen_before_the_comment_leaves_a_tombstone(account) -> None:
    webhook_in(account, feed_entry(comment_change(BOB_COMMENT, POST_ID, verb="remove")))
    webhook_in(account, feed_entry(comment_change(BOB_COMMENT, POST_ID, text="late copy")))
    assert Message.objects.get(external_id=BOB_COMMENT).deleted_at is not None


def test_comment_no_longer_returned_by_a_pull_is_marked_deleted(graph, account) -> None:
    bob = comment(BOB_COMMENT, ago(hours=2), text="First!", author=(BOB_ID, BOB))
    no_conversations(graph)
    graph.get(f"{PAGE_ID}/posts", listing(f"{PAGE_ID}/posts", [post(POST_ID, ago(days=1), comments=1)]))
    graph.get(f"{POST_ID}/comments", listing(f"{POST_ID}/comments", [bob]))
    assert channel_sync(account.pk) == "ok"
    Message.objects.filter(external_id=BOB_COMMENT).update(created_at=timezone.now() - dt.timedelta(hours=1))

    graph.mock.reset()
    no_conversations(graph)
    graph.get(f"{PAGE_ID}/posts", listing(f"{PAGE_ID}/posts", [post(POST_ID, ago(days=1), comments=0)]))
    graph.get(f"{POST_ID}/comments", listing(f"{POST_ID}/comments", []))
    ChannelAccount.objects.filter(pk=account.pk).update(next_sync_at=None)
    assert channel_sync(account.pk) == "ok"
    gone = Message.objects.get(external_id=BOB_COMMENT)
    assert gone.deleted_at is not None and gone.body_text == "First!"
    assert RawEvent.objects.filter(provider_event_id=f"{BOB_COMMENT}:remove").exists()


def test_emoji_and_right_to_left_text_arrive_intact(account) -> None:
    text = "שלום 👋🏽 مرحبا — ça va? 👨‍👩‍👧"
    webhook_in(account, messaging_entry(inbound_messaging("m_rtl", text, psid=DAVID_PSID)))
    stored = Message.objects.get(external_id="m_rtl")
    assert stored.body_text == stored.body_display == text


def test_unknown_and_missing_optional_fields_are_tolerated(graph, account) -> None:
    image = {"id": "1550873095843", "mime_type": "image/jpeg", "name": "image-1550873095843.jpg", "size": 84211,
             "image_data": {"width": 1280, "height": 960, "max_width": 1280, "max_height": 960,
                            "url": "https://scontent.xx.fbcdn.net/v/t1.15752-9/photo.jpg?oh=ab",
                            "render_as_sticker": False,
                            "preview_url": "https://scontent.xx.fbcdn.net/v/t1.15752-9/p.jpg"},
             "brand_new_field": {"x": 1}}  # fmt: skip
    only_picture = message("m_pic", ago(minutes=3), text=None, sender=(ANN_PSID, ANN), to=(PAGE_ID, PAGE_NAME),
                           attachments={"data": [image], "paging": {"cursors": {"before": "a", "after": "b"}}},
                           tags={"data": [{"name": "inbox"}]}, sticker=None)  # fmt: skip
    no_to = message("m_noto", ago(minutes=2), text="hello", sender=(ANN_PSID, ANN), to=(PAGE_ID, PAGE_NAME))
    del no_to["to"]
    graph.get(f"{PAGE_ID}/conversations", listing(f"{PAGE_ID}/conversations", [
        conversation(CONV_A, ago(minutes=2), ANN_PSID, ANN) | {"unread_count": 1, "new_thing": True}]))  # fmt: skip
    graph.get(f"{CONV_A}/messages", listing(f"{CONV_A}/messages", [no_to, only_picture]))
    anonymous = comment(BOB_COMMENT, ago(hours=1), text="no author shown", author=None, like_count=3)
    graph.get(f"{PAGE_ID}/posts", listing(f"{PAGE_ID}/posts", [post(POST_ID, ago(days=1), comments=1)]))
    graph.get(f"{POST_ID}/comments", listing(f"{POST_ID}/comments", [anonymous]))
    assert channel_sync(account.pk) == "ok"

    picture = Message.objects.get(external_id="m_pic")
    assert picture.body_text == "" and picture.meta["attachments"][0]["url"].startswith("https://scontent")
    attachment = picture.attachments.get()
    assert (attachment.name, attachment.content_type, attachment.size) == ("image-1550873095843.jpg", "image/jpeg",
                                                                           84211)  # fmt: skip
    assert not attachment.file and "Kept on Facebook" in attachment.omitted
    assert Message.objects.get(external_id="m_noto").author_address == ANN_PSID
    assert Message.objects.get(external_id=BOB_COMMENT).contact is None  # no author: held, not lost
    assert not RawEvent.objects.filter(status="dead").exists()

    sticker_event = inbound_messaging(
        "m_sticker", None, nlp={"entities": {}}, quick_reply={"payload": "SIZE_M"},
        attachments=[{"type": "image", "payload": {"url": "https://scontent.xx/s.png", "sticker_id": 369239263222822}}],
    )  # fmt: skip
    reaction = {"sender": {"id": ANN_PSID}, "recipient": {"id": PAGE_ID}, "timestamp": ms(ago(seconds=1)),
                "reaction": {"mid": "m_pic", "action": "react", "emoji": "❤️"}}  # fmt: skip
    webhook_in(account, messaging_entry(sticker_event, reaction))
    assert not any(b'"reaction"' in bytes(r.payload) for r in RawEvent.objects.all())  # nothing a person wrote
    sticker = Message.objects.get(external_id="m_sticker")
    assert sticker.meta["attachments"][0]["sticker_id"] == "369239263222822"
    assert sticker.meta["quick_reply"] == "SIZE_M"


@pytest.mark.parametrize(
    ("event_type", "payload", "error"),
    [
        ("facebook.message", b"<html>not json</html>", "not JSON"),
        ("facebook.message", b'["a list"]', "not a JSON object"),
        ("facebook.message", json.dumps({"source": "graph", "page_id": PAGE_ID, "message": {
            "id": "m_x", "from": {"id": ANN_PSID}, "message": "no time"}}).encode(), "has no time"),
        ("facebook.message", json.dumps({"source": "graph", "page_id": PAGE_ID, "message": {
            "id": "m_y", "created_time": "yesterday", "from": {"id": ANN_PSID}}}).encode(), "unreadable time"),
        ("facebook.message", json.dumps({"source": "telepathy", "page_id": PAGE_ID}).encode(), "unknown source"),
        ("facebook.comment", json.dumps({"source": "graph", "page_id": PAGE_ID, "comment": {
            "created_time": "2026-01-01T00:00:00+0000"}}).encode(), "without an id"),
    ],
)  # fmt: skip
def test_unreadable_events_are_dead_lettered_with_their_reason(account, event_type, payload, error) -> None:
    raw_events_store(account=account, events=[RawEventIn("bad-1", event_type, payload)])
    result = raw_events_process(account=account)
    assert result.dead == 1 and not Message.objects.exists()
    dead = RawEvent.objects.get(provider_event_id="bad-1")
    assert dead.status == "dead" and error in dead.error


# --- Connection test and listening source ----------------------------------------------------------------------


def test_connection_test_names_the_page(world, graph, account) -> None:
    graph.get(PAGE_ID, {"name": PAGE_NAME, "id": PAGE_ID}, fields="id,name")
    assert channel_account_test(account=account, actor=world.ma) == f"Connected to page {PAGE_NAME} (id {PAGE_ID})"


def test_connection_test_with_an_expired_token_flags_the_account(world, graph, account) -> None:
    graph.get(PAGE_ID, EXPIRED_TOKEN, status=400)
    with pytest.raises(DomainError, match="Connect the page again"):
        channel_account_test(account=account, actor=world.ma)
    account.refresh_from_db()
    assert account.status == "needs_reauth"


def _feed_item(post_id: str, when: dt.datetime, text: str, **extra: object) -> dict[str, object]:
    return {"id": post_id, "message": text, "created_time": fb_time(when),
            "from": {"name": "Velo News", "id": "20531316728"},
            "permalink_url": f"https://www.facebook.com/20531316728/posts/{post_id.split('_')[1]}",
            **extra}  # fmt: skip


def test_page_feed_listening_source_pages_through_and_resumes(graph, account, monkeypatch) -> None:
    monkeypatch.setattr(fb, "FEED_PAGES_PER_FETCH", 1)
    fetch = post_fetcher_for("facebook_page")
    assert fetch is not None
    newest = _feed_item("20531316728_1003", ago(hours=1), "Acme Bikes recalls the X2 frame 🚨", place={
        "name": "Oslo, Norway", "location": {"city": "Oslo", "country": "Norway", "latitude": 59.9133,
                                             "longitude": 10.7389}, "id": "108212625870265"},
        comments={"data": [{"id": "1003_77", "message": "Mine cracked too", "created_time": fb_time(ago(minutes=30)),
                            "from": {"name": "Kari", "id": "5000000001"}}]})  # fmt: skip
    older = _feed_item("20531316728_1002", ago(hours=5), "Spring ride this Sunday")
    first = listing("20531316728/feed", [newest], params={"fields": fb.FEED_FIELDS}, last=False)
    graph.get("20531316728/feed", first, fields=f"{fb.FEED_FIELDS},{fb.FEED_COMMENT_FIELDS}")
    graph.get("20531316728/feed", listing("20531316728/feed", [older]), after=next_after(first))

    page = fetch(account, {"page_id": "20531316728", "include_comments": True}, {})
    assert page.more is True and "resume" in page.cursor
    recall, kari = page.posts
    assert (recall.external_id, recall.channel, recall.text) == ("20531316728_1003", "facebook",
                                                                 "Acme Bikes recalls the X2 frame 🚨")  # fmt: skip
    assert (recall.place, recall.latitude, recall.longitude) == ("Oslo, Norway", 59.9133, 10.7389)
    assert recall.author == Party("facebook", "20531316728", "Velo News", "from")
    assert recall.url.startswith("https://www.facebook.com/") and kari.meta == {
        "page_id": "20531316728", "kind": "comment", "post_id": "20531316728_1003"}  # fmt: skip

    rest = fetch(account, {"page_id": "20531316728", "include_comments": True}, page.cursor)
    assert [p.external_id for p in rest.posts] == ["20531316728_1002"] and rest.more is False
    assert rest.cursor == {"since": int(fb.parse_time(newest["created_time"]).timestamp())}

    graph.mock.reset()
    graph.get("20531316728/feed", listing("20531316728/feed", [newest, older]), since=str(rest.cursor["since"]))
    again = fetch(account, {"page_id": "20531316728"}, rest.cursor)
    assert [p.external_id for p in again.posts] == ["20531316728_1003"]  # the boundary post only; listening dedupes
    assert again.more is False


def test_graph_version_comes_from_settings_not_the_sdk(graph, account, settings) -> None:
    settings.FACEBOOK_GRAPH_VERSION = "21.0"  # without the "v": still a valid URL prefix
    graph.get(PAGE_ID, {"name": PAGE_NAME, "id": PAGE_ID})
    assert fb.connection_test(account).startswith("Connected")
    assert graph.paths() == [f"/{VERSION}/{PAGE_ID}"]
