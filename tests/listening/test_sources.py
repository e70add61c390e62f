"""Listening sources: RSS/Atom with conditional GET, malformed feeds, back-off; Twitter/X search through the
connector's post fetcher (queries built from the rules); the fetch lock and the due scan."""

from __future__ import annotations

import datetime as dt

import psycopg2
import pytest
import requests
import responses
from django.db import connection
from django.utils import timezone

from listening import tasks
from listening.models import ListeningSource, Mention, Post
from listening.services import source_create, source_fetch, source_update
from listening.sources.social import X_QUERY_MAX_CHARS, rule_x_queries
from tests.listening.factories import make_rule, make_source
from tests.threads.factories import ChannelAccountFactory
from threads.connectors import ChannelRateLimited, Party, PostPage, PublicPost

pytestmark = pytest.mark.django_db

FEED_URL = "https://blog.example.com/feed.xml"
RSS = b"""<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0" xmlns:georss="http://www.georss.org/georss"><channel>
<title>Example blog</title><link>https://blog.example.com/</link><language>en-us</language>
<item><title>Why we left Acme</title><link>https://blog.example.com/left-acme</link>
<guid isPermaLink="false">post-1</guid><pubDate>Mon, 23 Nov 2026 10:00:00 GMT</pubDate>
<author>jane@example.com (Jane Writer)</author>
<description><![CDATA[<p>Acme was <b>slow</b>.</p><p>We moved on.<script>alert(1)</script></p>]]></description>
<georss:point>52.52 13.40</georss:point></item>
<item><title>Gardening</title><link>https://blog.example.com/garden</link><guid>post-2</guid>
<description>Tomatoes.</description></item>
</channel></rss>"""
ATOM_COMMENTS = b"""<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom"><title>Comments</title><id>urn:c</id><updated>2026-11-23T10:00:00Z</updated>
<entry><id>urn:comment:9</id><title>Re: Why we left Acme</title><updated>2026-11-23T11:00:00Z</updated>
<author><name>Bob</name></author><content type="html">Acme lost me too</content></entry></feed>"""
BROKEN = RSS.replace(b"</channel></rss>", b"<item><title>Unclosed Acme item</title><guid>post-3</guid>")


@pytest.fixture
def feed(world):  # type: ignore[no-untyped-def]
    return make_source(world.a1, kind=ListeningSource.Kind.RSS, url=FEED_URL)


@responses.activate
def test_a_feed_is_stored_as_text_posts_and_matched(world, feed) -> None:
    rule = make_rule(world.a1, query="acme", alert_in_app=False, spike_alerts=False)
    responses.get(FEED_URL, body=RSS, content_type="application/rss+xml", headers={"ETag": '"v1"'})
    outcome, result = source_fetch(feed.pk)
    assert outcome == "ok" and result is not None and result.posts_created == 2
    post = Post.objects.get(external_id="post-1")
    assert post.text == "Acme was slow.\nWe moved on." and "script" not in post.text and "alert" not in post.text
    assert (post.title, post.channel, post.url, post.lang) == (
        "Why we left Acme",
        "blog",
        FEED_URL[:25] + "left-acme",
        "en",
    )
    assert post.author_kind == "email" and post.author_address == "jane@example.com"
    assert post.posted_at == dt.datetime(2026, 11, 23, 10, tzinfo=dt.UTC)
    assert (post.latitude, post.longitude) == (pytest.approx(52.52), pytest.approx(13.40))
    assert Mention.objects.get().rule == rule
    feed.refresh_from_db()
    assert feed.cursor == {"etag": '"v1"'} and feed.status == "active" and feed.last_error == ""
    assert feed.next_fetch_at > timezone.now() + dt.timedelta(seconds=feed.fetch_interval_s - 60)


@responses.activate
def test_an_unchanged_feed_costs_a_304(world, feed) -> None:
    ListeningSource.objects.filter(pk=feed.pk).update(
        cursor={"etag": '"v1"', "modified": "Mon, 23 Nov 2026 10:00:00 GMT"}
    )
    responses.get(FEED_URL, status=304)
    assert source_fetch(feed.pk)[0] == "ok"
    sent = responses.calls[0].request.headers
    assert sent["If-None-Match"] == '"v1"' and sent["If-Modified-Since"] == "Mon, 23 Nov 2026 10:00:00 GMT"
    assert not Post.objects.exists()
    feed.refresh_from_db()
    assert feed.cursor["etag"] == '"v1"'


@responses.activate
def test_a_refetch_stores_nothing_twice(world, feed) -> None:
    responses.get(FEED_URL, body=RSS, content_type="application/rss+xml")
    source_fetch(feed.pk)
    _, again = source_fetch(feed.pk, force=True)
    assert again is not None and (again.posts_created, again.posts_duplicate) == (0, 2)
    assert Post.objects.count() == 2


@responses.activate
def test_a_malformed_feed_keeps_its_good_entries_and_reports_the_problem(world, feed) -> None:
    responses.get(FEED_URL, body=BROKEN, content_type="application/rss+xml")
    outcome, result = source_fetch(feed.pk)
    assert outcome == "ok" and result is not None and result.posts_created >= 2
    feed.refresh_from_db()
    assert feed.status == "active" and "not well-formed" in feed.last_error


@responses.activate
def test_something_that_is_no_feed_fails_with_back_off(world, feed) -> None:
    responses.get(FEED_URL, body=b"<html><body><p>Hello</body>", content_type="text/html")
    assert source_fetch(feed.pk)[0] == "failing"
    feed.refresh_from_db()
    assert feed.status == "failing" and feed.consecutive_failures == 1 and feed.last_error
    first_wait = feed.next_fetch_at - timezone.now()
    assert dt.timedelta(seconds=50) < first_wait <= dt.timedelta(seconds=60)
    assert source_fetch(feed.pk)[0] == "not-due"  # backing off
    source_fetch(feed.pk, force=True)
    feed.refresh_from_db()
    assert feed.consecutive_failures == 2 and feed.next_fetch_at - timezone.now() > dt.timedelta(seconds=110)


@responses.activate
@pytest.mark.parametrize(
    ("kwargs", "outcome", "error"),
    [
        ({"status": 500}, "failing", "HTTP 500"),
        ({"status": 404}, "failing", "No feed at this address"),
        ({"status": 403}, "failing", "refused access"),
        ({"body": requests.ConnectTimeout("slow")}, "failing", "did not answer"),
        ({"body": requests.ConnectionError("refused")}, "failing", "could not be reached"),
    ],
)
def test_provider_trouble_becomes_source_state(world, feed, kwargs, outcome, error) -> None:
    responses.get(FEED_URL, **kwargs)
    assert source_fetch(feed.pk)[0] == outcome
    feed.refresh_from_db()
    assert error in feed.last_error and feed.status == "failing"


@responses.activate
def test_a_rate_limit_waits_for_the_time_the_server_named(world, feed) -> None:
    responses.get(FEED_URL, status=429, headers={"Retry-After": "600"})
    assert source_fetch(feed.pk)[0] == "rate_limited"
    feed.refresh_from_db()
    assert feed.status == "active" and feed.consecutive_failures == 0
    assert dt.timedelta(seconds=590) < feed.next_fetch_at - timezone.now() <= dt.timedelta(seconds=600)


@responses.activate
def test_an_oversized_feed_is_not_read(world, feed, settings) -> None:
    settings.LISTENING_FEED_MAX_BYTES = 100
    responses.get(FEED_URL, body=RSS, content_type="application/rss+xml")
    assert source_fetch(feed.pk)[0] == "failing"
    feed.refresh_from_db()
    assert "larger than 100 bytes" in feed.last_error and not Post.objects.exists()


@responses.activate
def test_a_comments_feed_stores_blog_comments(world) -> None:
    source = make_source(world.a1, kind="rss", url=FEED_URL, config={"channel": "blog_comment"})
    responses.get(FEED_URL, body=ATOM_COMMENTS, content_type="application/atom+xml")
    source_fetch(source.pk)
    post = Post.objects.get()
    assert (post.channel, post.external_id, post.author_name, post.text) == (
        "blog_comment",
        "urn:comment:9",
        "Bob",
        "Acme lost me too",
    )


def test_paused_sources_and_webhooks_are_not_fetched(world, feed) -> None:
    ListeningSource.objects.filter(pk=feed.pk).update(status="paused")
    assert source_fetch(feed.pk)[0] == "skipped"
    hook = make_source(world.a1)
    assert source_fetch(hook.pk)[0] == "skipped"


def test_a_source_held_by_another_worker_is_left_alone(world, feed) -> None:
    settings = connection.settings_dict
    other = psycopg2.connect(
        dbname=settings["NAME"], user=settings["USER"], password=settings["PASSWORD"], host=settings["HOST"],
        port=settings["PORT"],
    )  # fmt: skip
    try:
        other.cursor().execute("SELECT pg_advisory_lock(7302, %s)", [feed.pk])
        assert source_fetch(feed.pk)[0] == "locked"
    finally:
        other.close()


def test_the_due_scan_claims_each_due_source_once(world, feed, monkeypatch) -> None:
    queued: list[tuple[int, bool]] = []
    monkeypatch.setattr(tasks.source_fetch_task, "delay", lambda pk, force=False: queued.append((pk, force)))
    make_source(world.a1)  # a webhook: pushed, never fetched
    later = make_source(world.a1, kind="rss", url=FEED_URL, next_fetch_at=timezone.now() + dt.timedelta(hours=1))
    assert tasks.sources_fetch_due_task() == 1 and queued == [(feed.pk, True)]
    assert tasks.sources_fetch_due_task() == 0  # claimed: the next beat does not enqueue it again
    assert later.pk not in [pk for pk, _ in queued]


def test_creating_a_feed_queues_its_first_fetch(world, monkeypatch, django_capture_on_commit_callbacks) -> None:
    queued: list[int] = []
    monkeypatch.setattr(tasks.source_fetch_task, "delay", queued.append)
    with django_capture_on_commit_callbacks(execute=True):
        source = source_create(actor=world.a1, data={"name": "Blog", "kind": "rss", "url": FEED_URL})
    assert queued == [source.pk] and source.slug == "blog" and source.secret == ""


def test_a_source_keeps_its_kind_and_only_editors_change_it(world, feed) -> None:
    from crm.errors import DomainError

    with pytest.raises(DomainError):
        source_update(actor=world.a1, source=feed, data={"kind": "webhook"})
    from listening.services.sharing import NotEditor

    with pytest.raises(NotEditor):
        source_update(actor=world.a2, source=feed, data={"name": "Mine now"})
    updated = source_update(actor=world.ma, source=feed, data={"name": "Renamed", "status": "paused"})
    assert (updated.name, updated.status) == ("Renamed", "paused")


# --- Through a social account ---------------------------------------------------------------------------------


class FakeSearch:
    """Stands in for the Twitter connector's post fetcher: records what it was asked, returns canned pages."""

    def __init__(self) -> None:
        self.calls: list[tuple[dict, dict]] = []

    def __call__(self, account, config, cursor):  # type: ignore[no-untyped-def]
        self.calls.append((dict(config), dict(cursor)))
        n = len(self.calls)
        post = PublicPost(
            external_id=f"tw{n}", channel="twitter", text=f"acme tweet {n}", posted_at=timezone.now(),
            author=Party("twitter", "@someone", "Someone", "from", "someone"),
        )  # fmt: skip
        return PostPage(posts=[post], cursor={"since_id": f"{n}00"})


@pytest.fixture
def fake_search(monkeypatch) -> FakeSearch:
    import threads.connectors as connectors

    fake = FakeSearch()
    monkeypatch.setitem(connectors._POST_FETCHERS, "twitter_search", fake)
    return fake


@pytest.fixture
def search(world):  # type: ignore[no-untyped-def]
    account = ChannelAccountFactory(owner=world.a1, team=world.team_a, kind="twitter", address="@ourco")
    return make_source(world.a1, kind="twitter_search", channel_account=account)


def test_a_search_source_asks_for_what_its_rules_look_for(world, search, fake_search) -> None:
    make_rule(world.a1, query='acme OR "acme corp"', alert_in_app=False, spike_alerts=False)
    make_rule(world.a1, query="globex AND NOT jobs", alert_in_app=False, spike_alerts=False)
    make_rule(world.a1, query="initech", channels=["email"], alert_in_app=False, spike_alerts=False)
    make_rule(world.b1, query="umbrella", alert_in_app=False, spike_alerts=False)  # cannot read this source
    outcome, result = source_fetch(search.pk)
    assert outcome == "ok" and result is not None and len(result.mentions) == 1
    ((config, cursor),) = fake_search.calls
    query = config["query"]
    assert "acme" in query and "globex" in query and " OR " in query
    assert "initech" not in query and "umbrella" not in query and cursor == {}
    source_fetch(search.pk, force=True)
    assert fake_search.calls[1][1] == {"since_id": "100"}  # each query continues from its own cursor


def test_many_rules_are_split_into_queries_within_xs_limit(world, search) -> None:
    for i in range(60):
        make_rule(world.a1, query=f'"brandname{i:03d} product" OR brandalias{i:03d}', alert_in_app=False)
    queries, warnings = rule_x_queries(search)
    assert len(queries) > 1 and warnings == []
    assert all(len(q) <= X_QUERY_MAX_CHARS for q in queries)
    joined = " ".join(queries)
    assert all(f"brandalias{i:03d}" in joined for i in range(60))


def test_the_sources_own_search_wins(world, search, fake_search) -> None:
    ListeningSource.objects.filter(pk=search.pk).update(config={"query": "from:acme"})
    make_rule(world.a1, query="acme")
    source_fetch(search.pk)
    assert fake_search.calls[0][0]["query"] == "from:acme"


def test_a_search_rate_limit_and_a_missing_connector(world, search, monkeypatch) -> None:
    import threads.connectors as connectors

    make_rule(world.a1, query="acme")

    def limited(account, config, cursor):  # type: ignore[no-untyped-def]
        raise ChannelRateLimited("X says wait", retry_after=120)

    monkeypatch.setitem(connectors._POST_FETCHERS, "twitter_search", limited)
    assert source_fetch(search.pk)[0] == "rate_limited"
    # The account's poller and other searches wait for the same reset.
    search.channel_account.refresh_from_db()
    assert "search" in search.channel_account.throttle
    monkeypatch.delitem(connectors._POST_FETCHERS, "twitter_search")
    assert source_fetch(search.pk, force=True)[0] == "failing"
    search.refresh_from_db()
    assert "No connector" in search.last_error


def test_a_search_through_an_account_that_needs_re_auth_fails(world, search, fake_search) -> None:
    search.channel_account.status = "needs_reauth"
    search.channel_account.save()
    assert source_fetch(search.pk)[0] == "failing"
    search.refresh_from_db()
    assert "re-authentication" in search.last_error and fake_search.calls == []
