"""Twitter/X connector against recorded X API v2 exchanges (``responses`` intercepts tweepy's requests).

Pulling mentions, our own tweets and DMs page by page with a cursor that moves only with stored messages; rate
limits per endpoint; refused, expired and renewed tokens; outages; replies and DMs sent and seen again; renamed
authors; deleted tweets; text that must survive intact; and recent search for listening.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import responses
from django.utils import timezone

from accounts.models import Notification
from contacts.models import ContactIdentity
from crm.errors import DomainError
from tests.threads import twitter_fixtures as fx
from tests.threads.factories import ChannelAccountFactory
from threads import connectors
from threads.connectors import ChannelRateLimited, ConnectorError, Party, RawEventIn, post_fetcher_for, twitter
from threads.models import ChannelAccount, Message, RawEvent, Thread
from threads.selectors import latest_inbound
from threads.services import raw_events_process, raw_events_replay, raw_events_store
from threads.services.channel_accounts import channel_account_test
from threads.services.send import message_deliver, message_send
from threads.tasks import channel_sync

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _real_connector(monkeypatch: pytest.MonkeyPatch) -> None:
    """test_tasks.py registers a stand-in "twitter" poller when it is imported; these tests need the real one."""
    monkeypatch.setitem(connectors._POLLERS, "twitter", twitter.poll_account)
    monkeypatch.setitem(connectors._SENDERS, "twitter", twitter.send_twitter)
    monkeypatch.setitem(connectors._PREPARERS, "twitter", twitter.prepare_twitter)
    monkeypatch.setitem(connectors._CONNECTION_TESTS, "twitter", twitter.connection_test)


@pytest.fixture
def x_api() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield rsps


@pytest.fixture
def x_account(world) -> ChannelAccount:  # type: ignore[no-untyped-def]
    return ChannelAccountFactory(
        kind="twitter", name="Our X", owner=world.ma, team=world.team_a, address=f"@{fx.OUR_HANDLE}",
        config={"user_id": fx.OUR_ID, "username": fx.OUR_HANDLE},
        credentials=json.dumps({"access_token": "tok-1"}),
    )  # fmt: skip


def serve(rsps: responses.RequestsMock, url: str, *bodies: dict[str, Any]) -> None:
    """``bodies`` in order, then an empty page for every later call."""
    for body in (*bodies, fx.EMPTY):
        rsps.get(url, json=body)


def quiet(rsps: responses.RequestsMock, *urls: str) -> None:
    for url in urls:
        rsps.get(url, json=fx.EMPTY)


def queries(rsps: responses.RequestsMock, url: str, method: str = "GET") -> list[dict[str, str]]:
    return [
        {k: v[0] for k, v in parse_qs(urlsplit(c.request.url).query).items()}
        for c in rsps.calls
        if c.request.url.split("?")[0] == url and c.request.method == method
    ]


def stored(account: ChannelAccount) -> dict[str, Message]:
    return {m.external_id: m for m in Message.objects.filter(channel_account=account)}


def set_cursor(account: ChannelAccount, cursor: dict[str, Any]) -> None:
    ChannelAccount.objects.filter(pk=account.pk).update(cursor=cursor)


def ann_is_known(world) -> ContactIdentity:  # type: ignore[no-untyped-def]
    return ContactIdentity.objects.create(
        contact=world.a1_shared, kind="twitter", value=fx.ANN_HANDLE, normalized=fx.ANN_ID, handle=fx.ANN_HANDLE
    )


# --- Pulling -----------------------------------------------------------------------------------------------------


def test_first_sync_stores_every_page_with_its_author_and_moves_the_cursor_last(world, x_account, x_api) -> None:
    serve(x_api, fx.MENTIONS_URL, fx.MENTIONS_PAGE_1, fx.MENTIONS_PAGE_2)
    serve(x_api, fx.TIMELINE_URL, fx.TIMELINE_PAGE)
    serve(x_api, fx.DM_EVENTS_URL, fx.DM_PAGE_1, fx.DM_PAGE_2)

    assert channel_sync(x_account.pk) == "ok"

    first, second = queries(x_api, fx.MENTIONS_URL)
    assert "since_id" not in first and "pagination_token" not in first and first["max_results"] == "100"
    assert set(first["expansions"].split(",")) >= {"author_id", "referenced_tweets.id", "in_reply_to_user_id"}
    assert set(first["tweet.fields"].split(",")) >= {"conversation_id", "created_at", "lang", "geo", "entities"}
    assert first["user.fields"] == "username,name" and "geo" in first["place.fields"]
    assert second["pagination_token"] == fx.NEXT_TOKEN
    (dm_first, dm_second) = queries(x_api, fx.DM_EVENTS_URL)
    assert dm_second["pagination_token"] == fx.DM_NEXT_TOKEN and "sender_id" in dm_first["expansions"]
    x_account.refresh_from_db()
    assert x_account.cursor == {
        "mentions": {"since_id": fx.T3}, "own_tweets": {"since_id": fx.OUR_T}, "dms": {"newest_id": fx.D3}
    }  # fmt: skip

    messages = stored(x_account)
    assert set(messages) == {fx.T1, fx.T2, fx.T3, fx.OUR_T, fx.D1, fx.D2, fx.D3}  # our broadcast is nobody's
    t1 = messages[fx.T1]
    assert (t1.channel, t1.direction, t1.author_address, t1.author_name) == (
        "twitter",
        "inbound",
        fx.ANN_ID,
        "Ann Smith",
    )
    assert t1.sent_at == dt.datetime(2026, 11, 20, 9, 0, tzinfo=dt.UTC)
    assert t1.provider_thread_key == f"twitter:conv:{fx.T1}" and t1.body_text == "@ThreadlineHQ my order #4410 is late"
    assert t1.meta["url"] == f"https://x.com/AnnSmith/status/{fx.T1}" and t1.meta["public"] is True
    assert t1.meta["lang"] == "en" and t1.meta["geo"]["place"] == "Manhattan, NY"
    assert t1.meta["geo"]["latitude"] == pytest.approx(40.780709) and t1.meta["geo"]["longitude"] == pytest.approx(
        -73.9685415
    )
    # Ann became a lead with her numeric id and handle; her tweets and our reply are one conversation in her thread.
    ann = ContactIdentity.objects.get(kind="twitter", normalized=fx.ANN_ID)
    assert ann.handle == "AnnSmith" and ann.contact.first_name == "Ann"
    assert {messages[k].thread_id for k in (fx.T1, fx.OUR_T, fx.T2)} == {messages[fx.T1].thread_id}
    assert Thread.objects.get(pk=t1.thread_id).contact_id == ann.contact_id
    ours = messages[fx.OUR_T]
    assert ours.direction == "outbound" and ours.recipients == [
        {"kind": "to", "address": fx.ANN_ID, "name": "Ann Smith"}
    ]
    assert messages[fx.T2].meta["in_reply_to"] == fx.OUR_T
    # DMs: one conversation with Noa, ours outbound, in her thread.
    noa = ContactIdentity.objects.get(kind="twitter", normalized=fx.NOA_ID)
    d2 = messages[fx.D2]
    assert d2.direction == "outbound" and d2.contact_id == noa.contact_id
    assert {messages[k].provider_thread_key for k in (fx.D1, fx.D2, fx.D3)} == {f"twitter:dm:{fx.NOA_CONVERSATION}"}
    assert messages[fx.D1].meta["public"] is False and messages[fx.D1].thread_id == d2.thread_id
    # Raw events first: the tweet as X sent it, with only its own includes.
    raw = RawEvent.objects.get(channel_account=x_account, provider_event_id=fx.T1)
    assert raw.event_type == "twitter.tweet" and raw.status == "processed" and raw.meta == {"source": "mentions"}
    assert json.loads(bytes(raw.payload)) == {
        "data": fx.TWEET_T1, "includes": {"users": [fx.ANN, fx.OUR], "places": [fx.MANHATTAN]}
    }  # fmt: skip
    assert RawEvent.objects.get(channel_account=x_account, provider_event_id=fx.OUR_BROADCAST).status == "ignored"
    assert RawEvent.objects.get(channel_account=x_account, provider_event_id=f"dm:{fx.D1}").event_type == "twitter.dm"


def test_next_poll_asks_since_the_newest_stored_tweet_and_follows_a_renamed_author(world, x_account, x_api) -> None:
    identity = ann_is_known(world)
    set_cursor(x_account, {"mentions": {"since_id": fx.T3}, "own_tweets": {"since_id": fx.OUR_T}})
    serve(x_api, fx.MENTIONS_URL, fx.MENTIONS_SINCE_T3)
    quiet(x_api, fx.TIMELINE_URL, fx.DM_EVENTS_URL)

    assert channel_sync(x_account.pk) == "ok"
    assert channel_sync(x_account.pk) == "ok"

    first, again = queries(x_api, fx.MENTIONS_URL)
    assert first["since_id"] == fx.T3 and again["since_id"] == fx.T4
    assert queries(x_api, fx.TIMELINE_URL)[0]["since_id"] == fx.OUR_T
    message = Message.objects.get(channel_account=x_account, external_id=fx.T4)
    # Same person, same identity, new handle: the numeric id is the key.
    assert message.contact_id == world.a1_shared.pk and message.author_name == "Ann Smith-Builder"
    identity.refresh_from_db()
    assert identity.handle == "AnnBuilds" and ContactIdentity.objects.filter(kind="twitter").count() == 1
    assert message.meta["url"] == f"https://x.com/AnnBuilds/status/{fx.T4}"


def test_identity_typed_as_a_handle_is_upgraded_to_the_numeric_id(world, x_account, x_api) -> None:
    ContactIdentity.objects.create(contact=world.a2_shared, kind="twitter", value="@AnnSmith", normalized="@annsmith")
    serve(x_api, fx.MENTIONS_URL, fx.MENTIONS_PAGE_2)
    quiet(x_api, fx.TIMELINE_URL, fx.DM_EVENTS_URL)
    assert channel_sync(x_account.pk) == "ok"
    assert Message.objects.get(external_id=fx.T1).contact_id == world.a2_shared.pk
    identity = ContactIdentity.objects.get(contact=world.a2_shared, kind="twitter")
    assert (identity.normalized, identity.handle) == (fx.ANN_ID, "AnnSmith")


def test_poll_cut_off_mid_pagination_resumes_below_the_stored_page_and_loses_nothing(world, x_account, x_api) -> None:
    x_api.get(fx.MENTIONS_URL, json=fx.MENTIONS_PAGE_1)
    x_api.get(fx.MENTIONS_URL, status=503, json=fx.SERVICE_UNAVAILABLE)
    quiet(x_api, fx.TIMELINE_URL, fx.DM_EVENTS_URL)
    assert channel_sync(x_account.pk) == "failing"
    x_account.refresh_from_db()
    # The first page is stored and says so; since_id has not moved past the page that was never read.
    assert x_account.cursor == {"mentions": {"pending": {"newest_id": fx.T3, "until_id": fx.T2}}}
    assert set(stored(x_account)) == {fx.T3, fx.T2}

    x_api.reset()
    serve(x_api, fx.MENTIONS_URL, fx.MENTIONS_PAGE_2)
    quiet(x_api, fx.TIMELINE_URL, fx.DM_EVENTS_URL)
    assert channel_sync(x_account.pk) == "ok"
    resumed, fresh = queries(x_api, fx.MENTIONS_URL)
    assert resumed["until_id"] == fx.T2 and "since_id" not in resumed and "pagination_token" not in resumed
    assert fresh["since_id"] == fx.T3 and "until_id" not in fresh  # then what arrived meanwhile
    x_account.refresh_from_db()
    assert x_account.cursor["mentions"] == {"since_id": fx.T3} and x_account.status == "active"
    assert sorted(stored(x_account)) == sorted([fx.T1, fx.T2, fx.T3])


def test_page_budget_leaves_the_rest_for_the_next_poll(world, x_account, x_api) -> None:
    ChannelAccount.objects.filter(pk=x_account.pk).update(config={**x_account.config, "max_pages": 1})
    serve(x_api, fx.MENTIONS_URL, fx.MENTIONS_PAGE_1, fx.MENTIONS_PAGE_2)
    quiet(x_api, fx.TIMELINE_URL, fx.DM_EVENTS_URL)
    assert channel_sync(x_account.pk) == "ok"
    x_account.refresh_from_db()
    assert x_account.cursor["mentions"] == {"pending": {"newest_id": fx.T3, "until_id": fx.T2}}
    assert channel_sync(x_account.pk) == "ok"
    x_account.refresh_from_db()
    assert x_account.cursor["mentions"] == {"since_id": fx.T3}
    assert sorted(stored(x_account)) == sorted([fx.T1, fx.T2, fx.T3])


def test_dm_pages_stop_at_the_newest_stored_event(world, x_account, x_api) -> None:
    set_cursor(x_account, {"dms": {"newest_id": fx.D3}})
    x_api.get(fx.DM_EVENTS_URL, json=fx.DM_PAGE_AFTER)
    x_api.get(fx.DM_EVENTS_URL, json=fx.DM_PAGE_2)  # a second page exists, and must not be fetched
    quiet(x_api, fx.MENTIONS_URL, fx.TIMELINE_URL)

    assert channel_sync(x_account.pk) == "ok"

    (call,) = queries(x_api, fx.DM_EVENTS_URL)
    assert call["event_types"] == "MessageCreate" and "pagination_token" not in call
    assert set(call["dm_event.fields"].split(",")) >= {"dm_conversation_id", "sender_id", "created_at", "text"}
    assert set(stored(x_account)) == {fx.D4}  # D3 and D2 were stored before; nothing below them is read again
    assert not RawEvent.objects.filter(provider_event_id__in=[f"dm:{fx.D3}", f"dm:{fx.D2}"]).exists()
    x_account.refresh_from_db()
    assert x_account.cursor["dms"] == {"newest_id": fx.D4}
    d4 = stored(x_account)[fx.D4]
    assert (d4.direction, d4.author_address, d4.body_text) == ("inbound", fx.NOA_ID, "One more question about sizes 👟")


def test_pulls_can_be_turned_off_per_stream(world, x_account, x_api) -> None:
    config = {**x_account.config, "pull_own_tweets": False, "pull_dms": False}
    ChannelAccount.objects.filter(pk=x_account.pk).update(config=config)
    quiet(x_api, fx.MENTIONS_URL)
    assert channel_sync(x_account.pk) == "ok"
    assert [c.request.url.split("?")[0] for c in x_api.calls] == [fx.MENTIONS_URL]


def test_first_poll_without_our_id_asks_who_we_are_once(world, x_account, x_api) -> None:
    ChannelAccount.objects.filter(pk=x_account.pk).update(config={}, address="")
    x_api.get(fx.ME_URL, json=fx.ME)
    quiet(x_api, fx.MENTIONS_URL, fx.TIMELINE_URL, fx.DM_EVENTS_URL)
    assert channel_sync(x_account.pk) == "ok"
    assert channel_sync(x_account.pk) == "ok"
    assert len(queries(x_api, fx.ME_URL)) == 1
    x_account.refresh_from_db()
    assert x_account.config == {"user_id": fx.OUR_ID, "username": fx.OUR_HANDLE}
    assert x_account.address == "@ThreadlineHQ"


def test_oauth1_keys_sign_every_request(world, x_account, x_api) -> None:
    keys = {"consumer_key": "ck", "consumer_secret": "cs", "access_token": "at", "access_token_secret": "ats"}
    ChannelAccount.objects.filter(pk=x_account.pk).update(credentials=json.dumps(keys))
    quiet(x_api, fx.MENTIONS_URL, fx.TIMELINE_URL, fx.DM_EVENTS_URL)
    assert channel_sync(x_account.pk) == "ok"
    header = x_api.calls[0].request.headers["Authorization"]
    assert header.startswith("OAuth ") and 'oauth_consumer_key="ck"' in header and 'oauth_token="at"' in header


def test_incomplete_oauth1_keys_need_reauthentication(world, x_account, x_api) -> None:
    ChannelAccount.objects.filter(pk=x_account.pk).update(credentials=json.dumps({"consumer_key": "ck"}))
    assert channel_sync(x_account.pk) == "needs_reauth"
    x_account.refresh_from_db()
    assert "missing consumer_secret, access_token, access_token_secret" in x_account.last_error
    assert not x_api.calls


# --- Provider trouble ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("reset_in", "expected"), [(600, 600), (7200, 3540), (None, 900)])
def test_rate_limit_records_the_endpoint_and_waits_for_its_reset_bounded_never_sleeping(
    world, x_account, x_api, settings, monkeypatch, reset_in, expected
) -> None:  # fmt: skip
    settings.CELERY_VISIBILITY_TIMEOUT = 3600  # a requeue countdown must stay below it (3600 - 60)

    def no_sleep(seconds: float) -> None:
        raise AssertionError(f"slept {seconds} s in a worker")

    monkeypatch.setattr(time, "sleep", no_sleep)
    x_api.get(fx.MENTIONS_URL, status=429, json=fx.TOO_MANY_REQUESTS, headers=fx.rate_limit_headers(reset_in=reset_in))
    quiet(x_api, fx.TIMELINE_URL, fx.DM_EVENTS_URL)
    before = timezone.now()

    # Only mentions are limited: the other streams were read, so the account keeps its normal poll interval.
    assert channel_sync(x_account.pk) == "partly_rate_limited"

    x_account.refresh_from_db()
    until = dt.datetime.fromisoformat(x_account.throttle["mentions"])
    assert expected - 5 <= (until - before).total_seconds() <= expected + 5
    next_in = (x_account.next_sync_at - before).total_seconds()
    assert settings.THREADS_POLL_INTERVAL - 5 <= next_in <= settings.THREADS_POLL_INTERVAL + 5
    assert x_account.status == "active" and "rate limit on mentions" in x_account.last_error
    assert twitter.XSession(x_account).client.wait_on_rate_limit is False
    # The other endpoints were still read.
    assert len(queries(x_api, fx.TIMELINE_URL)) == 1 and len(queries(x_api, fx.DM_EVENTS_URL)) == 1
    # While the window lasts, polls leave mentions alone and read the rest.
    assert channel_sync(x_account.pk) == "ok"
    assert len(queries(x_api, fx.MENTIONS_URL)) == 1 and len(queries(x_api, fx.TIMELINE_URL)) == 2


def test_rate_limit_on_direct_messages_does_not_hold_back_mentions(world, x_account, x_api) -> None:
    serve(x_api, fx.MENTIONS_URL, fx.MENTIONS_PAGE_2)
    quiet(x_api, fx.TIMELINE_URL)
    x_api.get(fx.DM_EVENTS_URL, status=429, json=fx.TOO_MANY_REQUESTS, headers=fx.rate_limit_headers(reset_in=300))
    assert channel_sync(x_account.pk) == "partly_rate_limited"
    x_account.refresh_from_db()
    assert set(x_account.throttle) == {"dm_events"}
    assert set(stored(x_account)) == {fx.T1} and x_account.cursor["mentions"] == {"since_id": fx.T1}


def test_expired_token_without_renewal_needs_reauth_and_polling_stops(world, x_account, x_api) -> None:
    x_api.get(fx.MENTIONS_URL, status=401, json=fx.UNAUTHORIZED, headers=fx.rate_limit_headers(reset_in=900))
    assert channel_sync(x_account.pk) == "needs_reauth"
    x_account.refresh_from_db()
    assert x_account.status == "needs_reauth" and x_account.next_sync_at is None
    assert "X refused the credentials of Our X (401 Unauthorized)" in x_account.last_error
    assert Notification.objects.filter(user=world.ma, message__contains="needs re-authentication").count() == 1
    calls = len(x_api.calls)
    assert channel_sync(x_account.pk) == "skipped"
    assert len(x_api.calls) == calls


def test_expired_token_is_renewed_once_stored_and_the_call_repeated(world, x_account, x_api, settings) -> None:
    settings.TWITTER_CLIENT_ID, settings.TWITTER_CLIENT_SECRET = "client-1", ""
    creds = {"access_token": "old-token", "refresh_token": "old-refresh", "expires_at": int(time.time()) + 3600}
    ChannelAccount.objects.filter(pk=x_account.pk).update(credentials=json.dumps(creds))
    x_api.get(fx.MENTIONS_URL, status=401, json=fx.UNAUTHORIZED)
    quiet(x_api, fx.MENTIONS_URL, fx.TIMELINE_URL, fx.DM_EVENTS_URL)
    x_api.post(fx.TOKEN_URL, json=fx.TOKEN_REFRESHED)

    assert channel_sync(x_account.pk) == "ok"

    (token_call,) = [c for c in x_api.calls if c.request.url == fx.TOKEN_URL]
    assert parse_qs(token_call.request.body) == {
        "grant_type": ["refresh_token"], "refresh_token": ["old-refresh"], "client_id": ["client-1"]
    }  # fmt: skip
    auth = [c.request.headers["Authorization"] for c in x_api.calls if c.request.url != fx.TOKEN_URL]
    assert auth == ["Bearer old-token", "Bearer new-access-token", "Bearer new-access-token", "Bearer new-access-token"]
    x_account.refresh_from_db()
    saved = json.loads(x_account.credentials)
    assert (saved["access_token"], saved["refresh_token"]) == ("new-access-token", "new-refresh-token")
    assert saved["expires_at"] > time.time() + 7000


def test_token_about_to_expire_is_renewed_before_the_call(world, x_account, x_api, settings) -> None:
    settings.TWITTER_CLIENT_ID = "client-1"
    creds = {"access_token": "old-token", "refresh_token": "old-refresh", "expires_at": int(time.time()) + 10}
    ChannelAccount.objects.filter(pk=x_account.pk).update(credentials=json.dumps(creds))
    x_api.post(fx.TOKEN_URL, json=fx.TOKEN_REFRESHED)
    quiet(x_api, fx.MENTIONS_URL, fx.TIMELINE_URL, fx.DM_EVENTS_URL)
    assert channel_sync(x_account.pk) == "ok"
    assert x_api.calls[0].request.url == fx.TOKEN_URL
    assert {c.request.headers.get("Authorization") for c in x_api.calls[1:]} == {"Bearer new-access-token"}


def test_token_another_worker_renewed_meanwhile_is_used_without_spending_the_refresh_token(
    world, x_account, x_api, settings
) -> None:  # fmt: skip
    settings.TWITTER_CLIENT_ID = "client-1"
    creds = {"access_token": "old-token", "refresh_token": "old-refresh"}
    ChannelAccount.objects.filter(pk=x_account.pk).update(credentials=json.dumps(creds))
    x_account.refresh_from_db()
    session = twitter.XSession(x_account)
    # Another worker renewed the pair after this session read the credentials; the old refresh token is spent.
    renewed = {"access_token": "renewed-token", "refresh_token": "next-refresh", "expires_at": int(time.time()) + 7000}
    ChannelAccount.objects.filter(pk=x_account.pk).update(credentials=json.dumps(renewed))
    x_api.get(fx.MENTIONS_URL, status=401, json=fx.UNAUTHORIZED)
    x_api.get(fx.MENTIONS_URL, json=fx.EMPTY)
    assert session.call("mentions", "get_users_mentions", fx.OUR_ID) == fx.EMPTY
    assert [c.request.headers["Authorization"] for c in x_api.calls] == ["Bearer old-token", "Bearer renewed-token"]
    x_account.refresh_from_db()
    assert json.loads(x_account.credentials) == renewed


def test_refused_renewal_needs_reauth(world, x_account, x_api, settings) -> None:
    settings.TWITTER_CLIENT_ID = "client-1"
    creds = {"access_token": "old-token", "refresh_token": "revoked"}
    ChannelAccount.objects.filter(pk=x_account.pk).update(credentials=json.dumps(creds))
    x_api.get(fx.MENTIONS_URL, status=401, json=fx.UNAUTHORIZED)
    x_api.post(fx.TOKEN_URL, status=400, json=fx.TOKEN_REFUSED)
    assert channel_sync(x_account.pk) == "needs_reauth"
    x_account.refresh_from_db()
    assert "Value passed for the token was invalid" in x_account.last_error
    assert json.loads(x_account.credentials)["refresh_token"] == "revoked"


def test_server_error_marks_the_account_failing_and_backs_off(world, x_account, x_api) -> None:
    x_api.get(fx.MENTIONS_URL, status=503, json=fx.SERVICE_UNAVAILABLE)
    waits = []
    for _ in range(2):
        before = timezone.now()
        assert channel_sync(x_account.pk) == "failing"
        x_account.refresh_from_db()
        waits.append(round((x_account.next_sync_at - before).total_seconds()))
    assert waits == [60, 120] and x_account.consecutive_failures == 2
    assert "X is having trouble (503 Service Unavailable)" in x_account.last_error
    assert x_account.status == "failing" and not Message.objects.exists()


def test_unreachable_x_is_an_outage_not_an_auth_problem(world, x_account, x_api) -> None:
    x_api.get(fx.MENTIONS_URL, body=requests.ConnectionError("Connection refused"))
    assert channel_sync(x_account.pk) == "failing"
    x_account.refresh_from_db()
    assert "Cannot reach X (ConnectionError: Connection refused)" in x_account.last_error


def test_missing_dm_permission_says_which_scope(world, x_account, x_api) -> None:
    quiet(x_api, fx.MENTIONS_URL, fx.TIMELINE_URL)
    forbidden = {"title": "Forbidden", "type": "about:blank", "status": 403, "detail": "Forbidden"}
    x_api.get(fx.DM_EVENTS_URL, status=403, json=forbidden)
    assert channel_sync(x_account.pk) == "needs_reauth"
    x_account.refresh_from_db()
    assert "dm.read" in x_account.last_error and "403 Forbidden" in x_account.last_error


# --- Sending -------------------------------------------------------------------------------------------------------


def _ann_wrote(world, x_account, x_api) -> Thread:  # type: ignore[no-untyped-def]
    ann_is_known(world)
    serve(x_api, fx.MENTIONS_URL, fx.MENTIONS_PAGE_2)
    quiet(x_api, fx.TIMELINE_URL, fx.DM_EVENTS_URL)
    assert channel_sync(x_account.pk) == "ok"
    x_api.reset()
    return Thread.objects.get(contact=world.a1_shared, topic="")


def _reply(world, x_account, thread: Thread, text: str, **kwargs: Any) -> Message:  # type: ignore[no-untyped-def]
    return message_send(
        actor=world.ma, thread=thread, account=x_account, to=[Party("twitter", fx.ANN_ID, "", "to")],
        body_text=text, reply_to=latest_inbound(thread=thread, channel="twitter"), **kwargs,
    )  # fmt: skip


def _pulled_reply(text: str) -> dict[str, Any]:
    tweet = {
        **fx.TWEET_OUR_T, "id": fx.OUR_REPLY, "edit_history_tweet_ids": [fx.OUR_REPLY],
        "created_at": "2026-11-21T09:00:00.000Z", "text": f"@{fx.ANN_HANDLE} {text}",
    }  # fmt: skip
    return {"data": [tweet], "includes": {"users": [fx.OUR, fx.ANN]},
            "meta": {"result_count": 1, "newest_id": fx.OUR_REPLY, "oldest_id": fx.OUR_REPLY}}  # fmt: skip


def test_reply_sent_and_seen_again_in_the_next_pull_is_one_message(world, x_account, x_api) -> None:
    thread = _ann_wrote(world, x_account, x_api)
    message = _reply(world, x_account, thread, "Glad it arrived, Ann!")
    assert message.external_id.startswith("pending:") and message.delivery == "queued"
    assert message.meta["draft"]["mode"] == "reply" and message.meta["draft"]["in_reply_to"] == fx.T1
    assert message.provider_thread_key == f"twitter:conv:{fx.T1}"

    x_api.post(fx.CREATE_TWEET_URL, status=201, json=fx.CREATE_TWEET)
    assert message_deliver(message_id=message.pk) == "sent"
    assert json.loads(x_api.calls[-1].request.body) == {
        "text": "Glad it arrived, Ann!", "reply": {"in_reply_to_tweet_id": fx.T1}
    }  # fmt: skip
    message.refresh_from_db()
    assert (message.external_id, message.global_key) == (fx.OUR_REPLY, f"twitter:{fx.OUR_REPLY}")
    assert message.meta["url"] == f"https://x.com/ThreadlineHQ/status/{fx.OUR_REPLY}"

    x_api.reset()
    serve(x_api, fx.TIMELINE_URL, _pulled_reply("Glad it arrived, Ann!"))
    quiet(x_api, fx.MENTIONS_URL, fx.DM_EVENTS_URL)
    assert channel_sync(x_account.pk) == "ok"
    assert RawEvent.objects.get(provider_event_id=fx.OUR_REPLY).status == "processed"
    assert Message.objects.filter(external_id=fx.OUR_REPLY).count() == 1
    assert sorted(stored(x_account)) == sorted([fx.T1, fx.OUR_REPLY])
    assert stored(x_account)[fx.OUR_REPLY].delivery == "sent"


def test_rep_may_answer_a_public_tweet_by_direct_message(world, x_account, x_api) -> None:
    thread = _ann_wrote(world, x_account, x_api)
    message = _reply(world, x_account, thread, "Let's take this private: what is your order number?", mode="dm")
    draft = message.meta["draft"]
    assert draft["mode"] == "dm" and draft["participant_id"] == fx.ANN_ID
    assert message.provider_thread_key.startswith("twitter:dm:")


def test_reply_pulled_before_its_delivery_commits_is_not_stored_twice(world, x_account, x_api) -> None:
    thread = _ann_wrote(world, x_account, x_api)
    message = _reply(world, x_account, thread, "Glad it arrived, Ann! https://shop.example/track/4410")
    # The pull reads the tweet (its link already shortened by X) while the delivery has not committed yet.
    serve(x_api, fx.TIMELINE_URL, _pulled_reply("Glad it arrived, Ann! https://t.co/Zx81Lk20Qa"))
    quiet(x_api, fx.MENTIONS_URL, fx.DM_EVENTS_URL)
    assert channel_sync(x_account.pk) == "ok"
    assert RawEvent.objects.get(provider_event_id=fx.OUR_REPLY).status == "ignored"
    x_api.post(fx.CREATE_TWEET_URL, status=201, json=fx.CREATE_TWEET)
    assert message_deliver(message_id=message.pk) == "sent"
    assert raw_events_replay(account=x_account).created == []
    assert sorted(stored(x_account)) == sorted([fx.T1, fx.OUR_REPLY])


def test_dm_answer_goes_to_the_conversation_and_its_pulled_copy_is_the_same_message(world, x_account, x_api) -> None:
    serve(x_api, fx.DM_EVENTS_URL, fx.DM_PAGE_1, fx.DM_PAGE_2)
    quiet(x_api, fx.MENTIONS_URL, fx.TIMELINE_URL)
    assert channel_sync(x_account.pk) == "ok"
    noa = ContactIdentity.objects.get(kind="twitter", normalized=fx.NOA_ID).contact
    thread = Thread.objects.get(contact=noa, topic="")
    message = message_send(
        actor=world.ma, thread=thread, account=x_account, to=[Party("twitter", fx.NOA_ID, "", "to")],
        body_text="Sizes run small: take one up.", reply_to=latest_inbound(thread=thread, channel="twitter"),
    )  # fmt: skip
    draft = message.meta["draft"]
    assert (draft["mode"], draft["dm_conversation_id"]) == ("dm", fx.NOA_CONVERSATION)
    assert message.provider_thread_key == f"twitter:dm:{fx.NOA_CONVERSATION}"

    x_api.reset()
    x_api.post(fx.dm_conversation_url(fx.NOA_CONVERSATION), status=201, json=fx.CREATE_DM)
    assert message_deliver(message_id=message.pk) == "sent"
    assert json.loads(x_api.calls[-1].request.body) == {"text": "Sizes run small: take one up."}
    event_id = fx.CREATE_DM["data"]["dm_event_id"]
    message.refresh_from_db()
    assert message.external_id == event_id and message.meta["dm_conversation_id"] == fx.NOA_CONVERSATION

    ours = fx.dm(event_id, fx.OUR_ID, "Sizes run small: take one up.", "2026-11-21T09:00:00.000Z")
    x_api.reset()
    x_api.get(fx.DM_EVENTS_URL, json={"data": [ours, fx.DM_3], "includes": {"users": [fx.OUR, fx.NOA]},
                                      "meta": {"result_count": 2, "next_token": fx.DM_NEXT_TOKEN}})  # fmt: skip
    quiet(x_api, fx.MENTIONS_URL, fx.TIMELINE_URL)
    assert channel_sync(x_account.pk) == "ok"
    assert Message.objects.filter(external_id=event_id).count() == 1
    assert Message.objects.filter(channel_account=x_account).count() == 4


def test_first_message_to_someone_on_x_is_a_dm_to_their_id(world, x_account, x_api) -> None:
    ann_is_known(world)
    thread = Thread.objects.create(contact=world.a1_shared)
    message = message_send(
        actor=world.ma, thread=thread, account=x_account, to=[Party("twitter", fx.ANN_ID, "", "to")],
        body_text="Hi Ann, your order shipped.",
    )  # fmt: skip
    assert message.meta["draft"]["participant_id"] == fx.ANN_ID
    assert message.provider_thread_key == f"twitter:dm:{fx.ANN_ID}-{fx.OUR_ID}"
    x_api.post(fx.dm_with_url(fx.ANN_ID), status=201, json=fx.CREATE_DM)
    assert message_deliver(message_id=message.pk) == "sent"
    assert x_api.calls[-1].request.url == fx.dm_with_url(fx.ANN_ID)


def test_reply_longer_than_x_allows_is_refused_before_anything_is_stored(world, x_account, x_api) -> None:
    thread = _ann_wrote(world, x_account, x_api)
    count = Message.objects.count()
    for too_long in ("日" * 141, "a" * 257 + " https://shop.example/a/very/long/tracking/link/4410"):
        with pytest.raises(DomainError) as refused:
            _reply(world, x_account, thread, too_long)
        assert refused.value.fields == {"body_text": ["Too long for X."]}
        assert "at most 280 characters" in refused.value.message
    assert Message.objects.count() == count
    assert _reply(world, x_account, thread, "日" * 140).delivery == "queued"  # CJK counts double: 280 exactly
    assert twitter.tweet_weight("👨‍👩‍👧 🇩🇪 👋🏽") == 8


def test_attachments_are_refused_with_a_clear_error(world, x_account, x_api) -> None:
    from threads.connectors import AttachmentIn

    thread = _ann_wrote(world, x_account, x_api)
    with pytest.raises(DomainError, match="Attachments cannot be sent to X"):
        _reply(
            world, x_account, thread, "See attached", attachments=[AttachmentIn("a.pdf", "application/pdf", b"x", 1)]
        )


def test_reply_with_an_expired_token_fails_and_flags_the_account(world, x_account, x_api) -> None:
    thread = _ann_wrote(world, x_account, x_api)
    message = _reply(world, x_account, thread, "Thanks!")
    x_api.post(fx.CREATE_TWEET_URL, status=401, json=fx.UNAUTHORIZED)
    assert message_deliver(message_id=message.pk) == "failed"
    x_account.refresh_from_db()
    assert x_account.status == "needs_reauth"
    message.refresh_from_db()
    assert "X refused the credentials" in message.meta["error"]


def test_reply_x_refuses_fails_that_message_at_once_not_the_account(world, x_account, x_api) -> None:
    thread = _ann_wrote(world, x_account, x_api)
    message = _reply(world, x_account, thread, "Thanks!")
    x_api.post(fx.CREATE_TWEET_URL, status=403, json=fx.DUPLICATE_CONTENT)
    assert message_deliver(message_id=message.pk) == "failed"  # retrying duplicate content cannot help
    message.refresh_from_db()
    x_account.refresh_from_db()
    assert message.delivery == "failed" and "duplicate content" in message.meta["error"]
    assert x_account.status == "active" and len(x_api.calls) >= 1


# --- What X sends, read defensively ----------------------------------------------------------------------------


def _ingest_raw(account: ChannelAccount, *events: RawEventIn) -> None:
    raw_events_store(account=account, events=list(events))
    raw_events_process(account=account)


def _event(doc: Any, event_id: str, kind: str = "twitter.tweet") -> RawEventIn:
    payload = doc if isinstance(doc, bytes) else json.dumps(doc, ensure_ascii=False).encode()
    return RawEventIn(event_id, kind, payload)


def test_deleted_tweet_is_marked_and_its_text_kept(world, x_account, x_api) -> None:
    _ann_wrote(world, x_account, x_api)
    _ingest_raw(x_account, _event(fx.DELETE_T1, f"delete:{fx.T1}", "twitter.tweet_delete"))
    message = Message.objects.get(external_id=fx.T1)
    assert message.deleted_at is not None and message.body_text == "@ThreadlineHQ my order #4410 is late"
    assert Message.objects.filter(external_id=fx.T1).count() == 1


def test_mention_answering_a_deleted_tweet_marks_that_tweet_deleted(world, x_account, x_api) -> None:
    serve(x_api, fx.MENTIONS_URL, fx.MENTIONS_PAGE_1)
    quiet(x_api, fx.TIMELINE_URL, fx.DM_EVENTS_URL)
    assert channel_sync(x_account.pk) == "ok"
    x_api.reset()
    serve(x_api, fx.MENTIONS_URL, fx.MENTIONS_WITH_DELETED_PARENT)
    quiet(x_api, fx.TIMELINE_URL, fx.DM_EVENTS_URL)
    assert channel_sync(x_account.pk) == "ok"
    t3 = Message.objects.get(external_id=fx.T3)
    assert t3.deleted_at is not None and "الطلب رقم 4411" in t3.body_text
    assert Message.objects.get(external_id=fx.T5).deleted_at is None
    assert RawEvent.objects.get(provider_event_id=f"delete:{fx.T3}").event_type == "twitter.tweet_delete"


def test_deletion_seen_before_the_tweet_leaves_a_tombstone_the_tweet_cannot_undelete(world, x_account) -> None:
    _ingest_raw(x_account, _event(fx.DELETE_T1, f"delete:{fx.T1}", "twitter.tweet_delete"))
    tombstone = Message.objects.get(external_id=fx.T1)
    assert tombstone.deleted_at is not None and tombstone.contact_id is None
    assert not ContactIdentity.objects.filter(kind="twitter").exists()  # a deletion alone creates no lead
    assert tombstone.sent_at == dt.datetime(2026, 11, 20, 9, 0, tzinfo=dt.UTC)  # read from the snowflake id
    _ingest_raw(x_account, _event({"data": fx.TWEET_T1, "includes": {"users": [fx.ANN]}}, fx.T1))
    assert Message.objects.filter(external_id=fx.T1).count() == 1
    assert Message.objects.get(external_id=fx.T1).deleted_at is not None


def test_emoji_and_right_to_left_text_survive_intact(world, x_account, x_api) -> None:
    serve(x_api, fx.MENTIONS_URL, fx.MENTIONS_PAGE_1)
    quiet(x_api, fx.TIMELINE_URL)
    serve(x_api, fx.DM_EVENTS_URL, fx.DM_PAGE_2)
    assert channel_sync(x_account.pk) == "ok"
    messages = stored(x_account)
    assert messages[fx.T3].body_text == "@ThreadlineHQ مرحبا! الطلب رقم 4411 لم يصل بعد 📦😕👨‍👩‍👧"
    assert messages[fx.T3].author_name == "عمر خالد" and messages[fx.T3].meta["lang"] == "ar"
    assert messages[fx.D1].body_text == "שלום, אפשר לקבל קבלה? 🙏" and messages[fx.D1].author_name == "נועה לוי"
    # X escapes &, < and > in tweet text; the message holds what Ann typed.
    assert messages[fx.T2].body_text == "@ThreadlineHQ any update? Tracking & invoice please <3"
    lead = ContactIdentity.objects.get(normalized=fx.OMAR_ID).contact
    assert (lead.first_name, lead.last_name) == ("عمر", "خالد")


def test_unknown_fields_are_ignored_and_missing_optional_ones_tolerated(world, x_account) -> None:
    bare = {
        "data": {"id": fx.T4, "author_id": fx.ANN_ID, "text": "hello", "edit_controls": {"edits_remaining": 5},
                 "some_future_field": {"nested": [1, 2, 3]}, "lang": "und"},
        "unexpected_top_level": True,
    }  # fmt: skip
    dm_bare = {"data": {"id": fx.D4, "sender_id": fx.NOA_ID, "text": "hi"}}
    _ingest_raw(x_account, _event(bare, fx.T4), _event(dm_bare, f"dm:{fx.D4}", "twitter.dm"))
    tweet, dm = Message.objects.get(external_id=fx.T4), Message.objects.get(external_id=fx.D4)
    assert tweet.sent_at == dt.datetime(2026, 11, 21, 8, 0, tzinfo=dt.UTC)  # no created_at: the id's own time
    assert tweet.provider_thread_key == f"twitter:conv:{fx.T4}" and "lang" not in tweet.meta
    assert tweet.author_name == "" and tweet.meta["url"] == f"https://x.com/i/web/status/{fx.T4}"
    assert dm.direction == "inbound" and dm.provider_thread_key == "" and dm.body_text == "hi"
    assert set(RawEvent.objects.values_list("status", flat=True)) == {"processed"}


def test_unreadable_events_are_dead_lettered_and_the_rest_lands(world, x_account) -> None:
    _ingest_raw(
        x_account,
        _event(b"{not json", "bad-1"),
        _event({"data": {"text": "no id"}}, "bad-2"),
        _event({"data": {"id": fx.T1, "text": "no author"}}, "bad-3"),
        _event({"data": {"delete": {}}}, "bad-4", "twitter.tweet_delete"),
        _event({"data": {"id": fx.T2, "author_id": fx.ANN_ID, "text": "fine"}}, fx.T2),
    )  # fmt: skip
    dead = dict(RawEvent.objects.filter(status="dead").values_list("provider_event_id", "error"))
    assert set(dead) == {"bad-1", "bad-2", "bad-3", "bad-4"}
    assert "not JSON" in dead["bad-1"] and "The tweet id is not an X id" in dead["bad-2"]
    assert "The author of tweet" in dead["bad-3"] and "data.delete.tweet" in dead["bad-4"]
    assert list(Message.objects.values_list("external_id", flat=True)) == [fx.T2]


def test_retweets_and_our_broadcasts_are_kept_raw_but_not_conversations(world, x_account) -> None:
    retweet = {"id": fx.T5, "author_id": fx.OMAR_ID, "text": "RT @AnnSmith: my order #4410 is late",
               "referenced_tweets": [{"type": "retweeted", "id": fx.T1}]}  # fmt: skip
    _ingest_raw(
        x_account, _event({"data": retweet}, fx.T5),
        _event({"data": fx.TWEET_OUR_BROADCAST, "includes": {"users": [fx.OUR]}}, fx.OUR_BROADCAST),
    )  # fmt: skip
    assert set(RawEvent.objects.values_list("status", flat=True)) == {"ignored"}
    assert not Message.objects.exists()


# --- Connection test and listening -----------------------------------------------------------------------------


def test_connection_test_names_the_account_and_remembers_its_id(world, x_account, x_api) -> None:
    ChannelAccount.objects.filter(pk=x_account.pk).update(config={}, address="", status="needs_reauth")
    x_api.get(fx.ME_URL, json=fx.ME)
    x_account.refresh_from_db()
    assert channel_account_test(account=x_account, actor=world.ma) == f"Connected as @ThreadlineHQ (id {fx.OUR_ID})."
    x_account.refresh_from_db()
    assert x_account.config == {"user_id": fx.OUR_ID, "username": fx.OUR_HANDLE} and x_account.status == "active"
    assert x_account.address == "@ThreadlineHQ"
    assert queries(x_api, fx.ME_URL)[0]["user.fields"] == "username,name"


def test_connection_test_with_a_refused_token_is_a_clear_error(world, x_account, x_api) -> None:
    x_api.get(fx.ME_URL, status=401, json=fx.UNAUTHORIZED)
    with pytest.raises(DomainError, match="X refused the credentials"):
        channel_account_test(account=x_account, actor=world.ma)
    x_account.refresh_from_db()
    assert x_account.status == "needs_reauth"


def test_search_returns_public_posts_with_place_language_and_a_resumable_cursor(world, x_account, x_api) -> None:
    fetch = post_fetcher_for("twitter_search")
    assert fetch is twitter.fetch_search
    page_1, page_2 = fx.search_pages(timezone.now())
    x_api.get(fx.SEARCH_URL, json=page_1)
    x_api.get(fx.SEARCH_URL, json=page_2)
    config = {"query": "threadline -is:retweet", "max_pages": 1}

    first = fetch(x_account, config, {})
    assert first.more is True
    assert first.cursor == {"pending": {"newest_id": page_1["meta"]["newest_id"],
                                        "until_id": page_1["meta"]["oldest_id"]}}  # fmt: skip
    zed, omar = first.posts
    assert (zed.channel, zed.external_id, zed.lang) == ("twitter", page_1["data"][0]["id"], "en")
    assert zed.text == "Threadline keeps every customer chat in one place. Impressed & switching."
    assert zed.author == Party("twitter", fx.ZED_ID, "Zed Reviews", "from", "zed_reviews")
    assert (zed.latitude, zed.longitude) == (52.52, 13.405) and zed.place == ""
    assert zed.url == f"https://x.com/zed_reviews/status/{zed.external_id}"
    assert zed.meta["author_followers"] == 48211 and zed.meta["metrics"]["like_count"] == 31
    assert zed.posted_at == dt.datetime.fromisoformat(page_1["data"][0]["created_at"])
    assert omar.text == "هل جرب أحد threadline؟" and omar.latitude is None

    second = fetch(x_account, config, first.cursor)
    assert second.more is False and second.cursor == {"since_id": page_1["meta"]["newest_id"]}
    (ann,) = second.posts
    assert ann.place == "Manhattan, NY" and ann.lang == "" and ann.meta["country_code"] == "US"
    assert ann.latitude == pytest.approx(40.780709)
    q1, q2 = queries(x_api, fx.SEARCH_URL)
    assert q1["query"] == "threadline -is:retweet" and q1["max_results"] == "100" and "since_id" not in q1
    assert "public_metrics" in q1["tweet.fields"] and "geo.place_id" in q1["expansions"]
    assert q2["until_id"] == page_1["meta"]["oldest_id"]


def test_search_since_a_cursor_and_a_stale_cursor_restarts_within_seven_days(world, x_account, x_api) -> None:
    recent = fx.snowflake(timezone.now() - dt.timedelta(hours=5))
    stale = fx.snowflake(timezone.now() - dt.timedelta(days=8))
    x_api.get(fx.SEARCH_URL, json=fx.EMPTY)
    page = twitter.fetch_search(x_account, {"query": "threadline"}, {"since_id": recent})
    assert page.posts == [] and page.cursor == {"since_id": recent} and page.more is False
    twitter.fetch_search(x_account, {"query": "threadline"}, {"since_id": stale})
    first, second = queries(x_api, fx.SEARCH_URL)
    assert first["since_id"] == recent and "since_id" not in second


def test_search_rate_limit_keeps_the_pages_already_read(world, x_account, x_api) -> None:
    page_1, _ = fx.search_pages(timezone.now())
    x_api.get(fx.SEARCH_URL, json=page_1)
    x_api.get(fx.SEARCH_URL, status=429, json=fx.TOO_MANY_REQUESTS, headers=fx.rate_limit_headers(reset_in=120))
    page = twitter.fetch_search(x_account, {"query": "threadline"}, {})
    assert len(page.posts) == 2 and page.more is True and "pending" in page.cursor
    with pytest.raises(ChannelRateLimited) as limited:
        twitter.fetch_search(x_account, {"query": "threadline"}, page.cursor)
    assert limited.value.endpoint == "search" and 100 <= limited.value.retry_after <= 121


def test_search_without_a_query_is_a_clear_error(world, x_account) -> None:
    with pytest.raises(ConnectorError, match="needs a query"):
        twitter.fetch_search(x_account, {"query": "  "}, {})
