"""Listening pages: rules list, editor with its live dry-run preview, delete, mentions feed, charts and sources."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.urls import reverse
from django.utils import timezone

from accounts.models import Visibility
from listening.models import ListeningRule, ListeningSource, Mention, Post, SpikeAlert
from listening.views import mentions as mention_views
from listening.views.charts import nice_ceiling, sentiment_chart, sparkline, volume_chart
from listening.views.highlight import error_markup, highlight_segments
from tests.threads.conversation_helpers import email_from, identity
from tests.threads.factories import ChannelAccountFactory

pytestmark = pytest.mark.django_db

RULE_FORM = {
    "name": "Acme churn", "query": 'acme AND (leave OR "switch to")', "description": "People leaving Acme",
    "active": "on", "include_messages": "on", "include_posts": "on", "alert_in_app": "on",
    "alert_cooldown_minutes": "60", "activity_for": "", "activity_kind": "task", "activity_cooldown_minutes": "1440",
    "spike_alerts": "on", "spike_k": "3", "spike_min_count": "5", "visibility": "team",
}  # fmt: skip


def login(client, user):  # type: ignore[no-untyped-def]
    client.force_login(user)
    return client


def make_rule(owner, team, **fields) -> ListeningRule:  # type: ignore[no-untyped-def]
    fields.setdefault("name", "Acme")
    fields.setdefault("query", "acme")
    return ListeningRule.objects.create(owner=owner, team=team, **fields)


def make_source(owner, team, **fields) -> ListeningSource:  # type: ignore[no-untyped-def]
    fields.setdefault("name", "Industry blog")
    fields.setdefault("slug", f"src-{ListeningSource.objects.count() + 1}")
    fields.setdefault("kind", ListeningSource.Kind.RSS)
    fields.setdefault("url", "https://blog.example.com/feed.xml")
    return ListeningSource.objects.create(owner=owner, team=team, **fields)


def post_mention(rule: ListeningRule, source: ListeningSource, *, n: int, minutes_ago: int, **fields) -> Mention:  # type: ignore[no-untyped-def]
    at = timezone.now() - dt.timedelta(minutes=minutes_ago)
    text = fields.pop("text", f"Post {n} says acme is great")
    post = Post.objects.create(
        source=source, external_id=f"p{n}", channel="blog", url=f"https://blog.example.com/{n}",
        author_name=f"Writer {n}", text=text, posted_at=at,
    )  # fmt: skip
    start = text.lower().find("acme")
    return Mention.objects.create(
        rule=rule, post=post, channel="blog", snippet=text, highlights=[[start, start + 4]] if start >= 0 else [],
        matched_terms=["acme"], occurred_at=at, **fields,
    )  # fmt: skip


@pytest.fixture
def account(world):  # type: ignore[no-untyped-def]
    return ChannelAccountFactory(owner=world.a1, team=world.team_a, address="sales@ourco.example")


@pytest.fixture
def rules(world):  # type: ignore[no-untyped-def]
    return {
        "a1": make_rule(world.a1, world.team_a, name="Acme churn", query='acme AND (leave OR "switch to")'),
        "b1_private": make_rule(
            world.b1, world.team_b, name="Team B secret", query="globex", visibility=Visibility.PRIVATE
        ),
    }


# --- Helpers: highlighting and charts --------------------------------------------------------------------------


def test_highlight_segments_cut_text_at_the_spans_and_ignore_bad_ones() -> None:
    segments = highlight_segments("We love acme and ACME corp", [[8, 12], [17, 21], [30, 40], ["x", 1], [5, 3]])
    assert [(s.text, s.mark) for s in segments] == [
        ("We love ", False), ("acme", True), (" and ", False), ("ACME", True), (" corp", False),
    ]  # fmt: skip
    assert [(s.text, s.mark) for s in highlight_segments("abc", [[0, 2], [1, 3]])] == [("abc", True)]
    assert [(s.text, s.mark) for s in highlight_segments("", None)] == [("", False)]


def test_error_markup_marks_the_span_or_the_end_of_the_query() -> None:
    inside = error_markup("acme AND AND x", 9, 12)
    assert (inside.before, inside.bad, inside.after, inside.at_end, inside.position) == (
        "acme AND ", "AND", " x", False, 10,
    )  # fmt: skip
    at_end = error_markup("(acme AND", 9, None)
    assert at_end.bad == "" and at_end.at_end and at_end.position == 10


def test_volume_chart_draws_the_busiest_rules_with_zeros_filled() -> None:
    today = dt.date(2026, 11, 25)
    days = [today - dt.timedelta(days=2 - i) for i in range(3)]
    volume = [
        {"rule_id": 1, "rule": "Quiet", "series": [{"day": d, "count": 0} for d in days]},
        {"rule_id": 2, "rule": "Busy", "series": [{"day": days[0], "count": 3}, {"day": days[2], "count": 7}]},
        {"rule_id": 3, "rule": "Some", "series": [{"day": d.isoformat(), "count": 1} for d in days]},
    ]
    chart = volume_chart(volume, limit=1)
    assert [s.name for s in chart.series] == ["Busy"] and chart.hidden == 1
    assert [p.count for p in chart.series[0].points] == [3, 0, 7]
    assert chart.maximum == 10 and [t.label for t in chart.y_ticks] == ["0", "5", "10"]
    busy = chart.series[0].points
    assert busy[0].x < busy[1].x < busy[2].x and busy[2].y < busy[0].y < busy[1].y
    assert "Busy: 10" in chart.summary
    assert volume_chart([]).empty and nice_ceiling(0) == 1 and nice_ceiling(11) == 20 and nice_ceiling(50) == 50


def test_sentiment_chart_and_sparkline_add_up() -> None:
    chart = sentiment_chart({"negative": 1, "neutral": 1, "positive": 2}, width=400)
    assert [round(b.width) for b in chart.bars] == [100, 100, 200] and chart.bars[2].x == 200
    assert "positive 2 (50%)" in chart.summary
    assert sentiment_chart({}).total == 0
    spark = sparkline([{"day": dt.date(2026, 11, d), "count": c} for d, c in ((2, 4), (1, 0), (3, 2))])
    assert spark.total == 6 and spark.maximum == 4 and spark.points.split()[1].endswith(",2.0")


# --- Pages render for each role ---------------------------------------------------------------------------------


def test_pages_need_a_login(client, rules) -> None:
    for url in (reverse("listening:index"), reverse("listening:mentions"), reverse("listening:sources")):
        response = client.get(url)
        assert response.status_code == 302 and "/accounts/login/" in response["Location"]


@pytest.mark.parametrize("who", ["a1", "ma", "admin"])
def test_every_page_renders_for_rep_manager_and_admin(client, world, rules, who) -> None:
    source = make_source(world.a1, world.team_a)
    post_mention(rules["a1"], source, n=1, minutes_ago=30)
    login(client, getattr(world, who))
    pages = {
        "listening:index": "Listening", "listening:mentions": "Mentions", "listening:charts": "Listening charts",
        "listening:sources": "Listening sources", "listening:rule_new": "New listening rule",
        "listening:source_create": "New listening source",
    }  # fmt: skip
    for name, title in pages.items():
        response = client.get(reverse(name))
        assert response.status_code == 200, name
        assert f"<title>{title} · Threadline</title>" in response.content.decode(), name
    edit = client.get(reverse("listening:rule_edit", args=[rules["a1"].pk]))
    assert edit.status_code == 200 and "Acme churn" in edit.content.decode()
    assert client.get(reverse("listening:source_edit", args=[source.pk])).status_code == 200


def test_rules_list_shows_counts_sparklines_and_spikes_in_bounded_queries(
    client, world, rules, django_assert_max_num_queries
) -> None:
    source = make_source(world.a1, world.team_a)
    for n in range(3):
        post_mention(rules["a1"], source, n=n, minutes_ago=60 * 24 * n + 5)
    post_mention(rules["a1"], source, n=9, minutes_ago=60 * 24 * 10)  # older than 7 days
    for n in range(4):
        make_rule(world.a1, world.team_a, name=f"Extra {n}", query=f"extra{n}")
    SpikeAlert.objects.create(rule=rules["a1"], window_end=timezone.now(), count=12, mean=2.0, stddev=1.0, k=3.0)
    login(client, world.a1)
    with django_assert_max_num_queries(10):
        response = client.get(reverse("listening:index"))
    html = response.content.decode()
    row = html.split(f'id="rule-{rules["a1"].pk}"')[1].split("</tr>")[0]
    assert '<td class="numeric">3</td>' in row
    assert 'class="sparkline"' in row and "4 mentions in the last 30 days" in row
    assert "&quot;switch to&quot;" in row  # the query is shown, escaped, in monospace
    assert 'class="spike-strip"' in html and "12 mentions in 24 hours" in html
    assert "Team B secret" not in html


def test_rep_cannot_open_another_teams_private_rule(client, world, rules) -> None:
    login(client, world.a1)
    pk = rules["b1_private"].pk
    assert client.get(reverse("listening:rule_edit", args=[pk])).status_code == 404
    assert client.post(reverse("listening:rule_edit", args=[pk]), RULE_FORM).status_code == 404
    assert client.post(reverse("listening:rule_delete", args=[pk])).status_code == 404
    assert ListeningRule.objects.filter(pk=pk, name="Team B secret").exists()
    login(client, world.admin)
    assert client.get(reverse("listening:rule_edit", args=[pk])).status_code == 200


# --- The editor --------------------------------------------------------------------------------------------------


def test_create_a_rule_through_the_form(client, world) -> None:
    source = make_source(world.a1, world.team_a, name="Feed one")
    login(client, world.a1)
    data = {**RULE_FORM, "channels": ["email", "twitter"], "source_ids": [str(source.pk)], "tag": "churn-risk"}
    data.update({"activity_for": "contact_owner", "activity_kind": "call", "activity_title": "Call them"})
    response = client.post(reverse("listening:rule_new"), data)
    rule = ListeningRule.objects.get(name="Acme churn")
    assert response.status_code == 302 and response["Location"] == reverse("listening:rule_edit", args=[rule.pk])
    assert rule.owner == world.a1 and rule.team == world.team_a and rule.query == RULE_FORM["query"]
    assert sorted(rule.channels) == ["email", "twitter"] and list(rule.sources.all()) == [source]
    assert (rule.activity_for, rule.activity_kind, rule.activity_title, rule.tag) == (
        "contact_owner", "call", "Call them", "churn-risk",
    )  # fmt: skip
    page = client.get(response["Location"]).content.decode()
    assert "Rule “Acme churn” created." in page


def test_a_query_that_does_not_parse_is_a_form_error_and_saves_nothing(client, world) -> None:
    login(client, world.a1)
    response = client.post(reverse("listening:rule_new"), {**RULE_FORM, "query": "(acme AND"})
    assert response.status_code == 400
    errors = response.context["form"].errors["query"]
    assert errors and "character" in " ".join(errors)
    html = response.content.decode()
    assert 'class="field query-field field-invalid"' in html and 'aria-invalid="true"' in html
    assert "(acme AND</textarea>" in html  # what was typed is kept
    assert not ListeningRule.objects.exists()


def test_form_validation_names_the_fields(client, world) -> None:
    login(client, world.a1)
    bad = {**RULE_FORM, "name": "", "spike_k": "0", "alert_cooldown_minutes": "-1", "channels": ["carrier-pigeon"]}
    response = client.post(reverse("listening:rule_new"), bad)
    assert response.status_code == 400
    form = response.context["form"]
    assert set(form.errors) >= {"name", "spike_k", "alert_cooldown_minutes", "channels"}
    assert not ListeningRule.objects.exists()


def test_edit_a_rule_and_keep_its_team(client, world, rules) -> None:
    login(client, world.a1)
    rule = rules["a1"]
    response = client.post(
        reverse("listening:rule_edit", args=[rule.pk]),
        {**RULE_FORM, "name": "Acme churn v2", "query": "acme NEAR/5 cancel*", "team": str(world.team_a.pk)},
    )
    assert response.status_code == 302
    rule.refresh_from_db()
    assert (rule.name, rule.query, rule.team_id) == ("Acme churn v2", "acme NEAR/5 cancel*", world.team_a.pk)


def test_a_teammates_rule_is_shown_read_only(client, world) -> None:
    rule = make_rule(world.a2, world.team_a, name="Amy's rule", query="initech")
    login(client, world.b1)
    assert client.get(reverse("listening:rule_edit", args=[rule.pk])).status_code == 404
    login(client, world.a1)
    response = client.get(reverse("listening:rule_edit", args=[rule.pk]))
    html = response.content.decode()
    assert response.status_code == 200 and 'name="query"' in html and "disabled" in html
    assert "Save rule" not in html and "hx-vals" in html and "only its owner" in html
    response = client.post(reverse("listening:rule_edit", args=[rule.pk]), {**RULE_FORM, "name": "Hijacked"})
    assert response.status_code == 302
    assert client.post(reverse("listening:rule_delete", args=[rule.pk])).status_code == 302
    rule.refresh_from_db()
    assert rule.name == "Amy's rule"
    login(client, world.ma)  # the team's manager may change it
    assert "Save rule" in client.get(reverse("listening:rule_edit", args=[rule.pk])).content.decode()


def test_delete_asks_first_then_deletes(client, world, rules) -> None:
    login(client, world.a1)
    url = reverse("listening:rule_delete", args=[rules["a1"].pk])
    confirm = client.get(url)
    assert confirm.status_code == 200 and "Delete the rule" in confirm.content.decode()
    assert ListeningRule.objects.filter(pk=rules["a1"].pk).exists()
    response = client.post(url)
    assert response.status_code == 302 and response["Location"] == reverse("listening:index")
    assert not ListeningRule.objects.filter(pk=rules["a1"].pk).exists()


# --- The live dry run ----------------------------------------------------------------------------------------


def test_dry_run_shows_where_the_query_breaks(client, world) -> None:
    login(client, world.a1)
    response = client.post(
        reverse("listening:dry_run"), {"query": "(acme AND", "include_messages": "on"}, HTTP_HX_REQUEST="true"
    )
    assert response.status_code == 200
    html = response.content.decode()
    assert "<html" not in html and 'class="dry-run-error"' in html
    position = int(re.search(r"\(at character (\d+)\)", html).group(1))
    assert 1 <= position <= len("(acme AND") + 1
    marked = re.search(r'<code>(.*?)<mark class="query-error-span"[^>]*>(.*?)</mark>(.*?)</code>', html, re.S)
    assert marked is not None
    assert marked.group(1) == "(acme AND"[: position - 1]


def test_dry_run_lists_matching_messages_with_highlights_and_escapes_them(client, world, account) -> None:
    identity(world.a1_shared, "ann@example.com")
    email_from(account, "ann@example.com", subject="Renewal", body="Honestly we may leave Acme <b>soon</b>.")
    email_from(account, "ann@example.com", subject="Lunch", body="Lunch on Friday?", minutes=1)
    login(client, world.a1)
    response = client.post(
        reverse("listening:dry_run"),
        {"query": "acme AND leave", "include_messages": "on", "include_posts": "on"},
        HTTP_HX_REQUEST="true",
    )
    html = response.content.decode()
    assert response.status_code == 200 and 'class="dry-run-error"' not in html
    assert re.search(r"<strong>1</strong> of the last \d+ post", html)
    assert "<mark>Acme</mark>" in html and "<mark>leave</mark>" in html
    assert "&lt;b&gt;soon&lt;/b&gt;" in html and "<b>soon</b>" not in html
    assert "Lunch on Friday" not in html
    assert re.search(r'href="/inbox/\d+/#m\d+"', html)


def test_dry_run_sees_only_what_the_user_may_see(client, world, account) -> None:
    identity(world.b1_shared, "bea@example.com")
    email_from(
        ChannelAccountFactory(owner=world.b1, team=world.team_b), "bea@example.com", body="Team B talks about acme"
    )
    login(client, world.a1)
    html = client.post(reverse("listening:dry_run"), {"query": "acme", "include_messages": "on"}).content.decode()
    assert "Team B talks" not in html and "<strong>0</strong>" in html


def test_an_empty_query_asks_for_one(client, world) -> None:
    login(client, world.a1)
    html = client.post(reverse("listening:dry_run"), {"query": "   "}).content.decode()
    assert "Type a query" in html
    assert client.get(reverse("listening:dry_run")).status_code == 405


# --- Mentions feed ---------------------------------------------------------------------------------------------


def test_mentions_feed_pages_with_the_cursor(client, world, rules, monkeypatch) -> None:
    source = make_source(world.a1, world.team_a)
    for n in range(5):
        post_mention(rules["a1"], source, n=n, minutes_ago=10 * (n + 1))
    monkeypatch.setattr(mention_views, "PAGE_SIZE", 2)
    login(client, world.a1)
    seen: list[str] = []
    url = reverse("listening:mentions")
    first = client.get(url).content.decode()
    seen += re.findall(r'id="mention-(\d+)"', first)
    assert "Older mentions" in first and "<html" in first
    html = first
    while "cursor=" in html:
        cursor = re.search(r'hx-get="\?cursor=([^"]+)"', html).group(1)
        html = client.get(f"{url}?cursor={cursor}", HTTP_HX_REQUEST="true").content.decode()
        assert "<html" not in html
        seen += re.findall(r'id="mention-(\d+)"', html)
    expected = [str(m.pk) for m in Mention.objects.order_by("-occurred_at", "-id")]
    assert seen == expected
    response = client.get(f"{url}?cursor=not-a-cursor")
    assert response.status_code == 302


def test_mentions_feed_shows_rule_badges_author_and_links(client, world, rules, account) -> None:
    identity(world.a1_shared, "ann@example.com")
    message = email_from(account, "ann@example.com", body="We will leave Acme")
    Mention.objects.create(
        rule=rules["a1"], message=message, contact=world.a1_shared, channel="email", snippet="We will leave Acme",
        highlights=[[8, 13], [14, 18]], sentiment="negative", sentiment_score=-0.4, occurred_at=message.sent_at,
    )  # fmt: skip
    source = make_source(world.a1, world.team_a)
    post_mention(rules["a1"], source, n=1, minutes_ago=1, text="<script>alert(1)</script> acme rocks")
    login(client, world.a1)
    html = client.get(reverse("listening:mentions")).content.decode()
    assert "<mark>leave</mark> <mark>Acme</mark>" in html
    assert f'href="/inbox/{message.thread_id}/#m{message.pk}"' in html
    assert f'href="/contacts/{world.a1_shared.pk}/"' in html and "Ann Shared" in html
    assert "sentiment-negative" in html and ">E-mail<" in html and ">Blog<" in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "<script>alert(1)" not in html
    assert 'href="https://blog.example.com/1"' in html and "Writer 1" in html


def test_mentions_feed_filters(client, world, rules) -> None:
    source = make_source(world.a1, world.team_a)
    other = make_rule(world.a1, world.team_a, name="Other rule", query="initech")
    post_mention(rules["a1"], source, n=1, minutes_ago=5, sentiment="negative", text="acme is awful")
    post_mention(rules["a1"], source, n=2, minutes_ago=6, sentiment="positive", contact=world.a1_shared)
    post_mention(other, source, n=3, minutes_ago=7, text="acme and initech")
    post_mention(rules["a1"], source, n=4, minutes_ago=60 * 24 * 5, text="old acme news")
    login(client, world.a1)
    url = reverse("listening:mentions")

    def ids(**params) -> set[str]:  # type: ignore[no-untyped-def]
        response = client.get(url, params)
        assert response.status_code == 200
        return {
            Post.objects.get(mentions__pk=pk).external_id
            for pk in re.findall(r'id="mention-(\d+)"', response.content.decode())
        }

    assert ids() == {"p1", "p2", "p3", "p4"}
    assert ids(rule=other.pk) == {"p3"}
    assert ids(sentiment="negative") == {"p1"}
    assert ids(contact="known") == {"p2"}
    assert ids(contact="unknown") == {"p1", "p3", "p4"}
    assert ids(since=(timezone.localdate() - dt.timedelta(days=1)).isoformat()) == {"p1", "p2", "p3"}
    assert ids(until=(timezone.localdate() - dt.timedelta(days=3)).isoformat()) == {"p4"}
    assert ids(q="awful") == {"p1"}
    assert ids(channel="email") == set()
    bad = client.get(url, {"since": "2026-12-01", "until": "2026-11-01"})
    assert bad.status_code == 200 and "The end date is before the start date." in bad.content.decode()


def test_mentions_feed_in_bounded_queries(client, world, rules, account, django_assert_max_num_queries) -> None:
    source = make_source(world.a1, world.team_a)
    for n in range(10):
        post_mention(rules["a1"], source, n=n, minutes_ago=n + 1, contact=world.a1_shared if n % 2 else None)
    identity(world.a1_shared, "ann@example.com")
    for n in range(5):
        message = email_from(account, "ann@example.com", body=f"acme {n}", minutes=n)
        Mention.objects.create(
            rule=rules["a1"], message=message, contact=world.a1_shared, channel="email", snippet=f"acme {n}",
            highlights=[[0, 4]], occurred_at=message.sent_at,
        )  # fmt: skip
    login(client, world.a1)
    with django_assert_max_num_queries(12):
        response = client.get(reverse("listening:mentions"))
    assert len(re.findall(r'class="mention-item"', response.content.decode())) == 15


# --- Charts ------------------------------------------------------------------------------------------------------


def test_charts_render_as_accessible_svg(client, world, rules) -> None:
    source = make_source(world.a1, world.team_a)
    post_mention(rules["a1"], source, n=1, minutes_ago=5, sentiment="negative")
    post_mention(rules["a1"], source, n=2, minutes_ago=60 * 24 * 2, sentiment="positive")
    post_mention(rules["a1"], source, n=3, minutes_ago=60 * 24 * 2 + 1, sentiment="positive")
    login(client, world.a1)
    html = client.get(reverse("listening:charts")).content.decode()
    volume = html.split('id="volume-chart"')[1].split("</figure>")[0]
    assert '<svg class="volume-chart" role="img" aria-label="Mentions per day' in volume
    assert "Acme churn: 3" in volume and "<polyline" in volume and "<title>Acme churn: 2 on" in volume
    assert '<table class="visually-hidden">' in volume
    sentiment = html.split('id="sentiment-chart"')[1].split("</figure>")[0]
    assert 'role="img"' in sentiment and "negative 1 (33%)" in sentiment and "positive 2 (67%)" in sentiment
    assert client.get(reverse("listening:charts"), {"days": "7", "rule": rules["a1"].pk}).status_code == 200
    assert client.get(reverse("listening:charts"), {"days": "abc", "rule": "x"}).status_code == 200
    edit = client.get(reverse("listening:rule_edit", args=[rules["a1"].pk])).content.decode()
    assert 'id="rule-volume-chart"' in edit and 'id="rule-sentiment-chart"' in edit


# --- Sources -----------------------------------------------------------------------------------------------------


def test_create_an_rss_source(client, world) -> None:
    login(client, world.a1)
    form = {"name": "Acme blog", "kind": "rss", "url": "https://acme.example.com/feed", "fetch_interval_minutes": "30"}
    form.update({"status": "active", "visibility": "team", "team": str(world.team_a.pk)})
    response = client.post(reverse("listening:source_create"), form)
    assert response.status_code == 302 and response["Location"] == reverse("listening:sources")
    source = ListeningSource.objects.get(name="Acme blog")
    assert (source.kind, source.url, source.fetch_interval_s, source.owner) == (
        "rss", "https://acme.example.com/feed", 1800, world.a1,
    )  # fmt: skip
    listing = client.get(reverse("listening:sources")).content.decode()
    assert "Acme blog" in listing and "RSS/Atom feed" in listing


def test_an_rss_source_needs_its_address(client, world) -> None:
    login(client, world.a1)
    response = client.post(
        reverse("listening:source_create"),
        {"name": "No URL", "kind": "rss", "fetch_interval_minutes": "15", "status": "active", "visibility": "team"},
    )
    assert response.status_code == 400 and "Enter the address of the RSS or Atom feed." in response.content.decode()
    assert not ListeningSource.objects.exists()


def test_a_webhook_source_shows_its_secret_once(client, world) -> None:
    login(client, world.a1)
    response = client.post(
        reverse("listening:source_create"),
        {"name": "Forum", "kind": "webhook", "slug": "forum", "fetch_interval_minutes": "15", "status": "active",
         "visibility": "team"},
    )  # fmt: skip
    assert response.status_code == 200
    source = ListeningSource.objects.get(slug="forum")
    assert source.secret and source.secret in response.content.decode()
    for url in (reverse("listening:sources"), reverse("listening:source_edit", args=[source.pk])):
        assert source.secret not in client.get(url).content.decode()


def test_a_twitter_search_source_runs_through_a_connected_twitter_account(client, world) -> None:
    mailbox = ChannelAccountFactory(owner=world.a1, team=world.team_a)
    twitter = ChannelAccountFactory(owner=world.a1, team=world.team_a, kind="twitter", name="Our X", address="ourco")
    login(client, world.a1)
    base = {"name": "X search", "kind": "twitter_search", "search_query": "acme -is:retweet"}
    base.update({"fetch_interval_minutes": "15", "status": "active", "visibility": "team"})
    page = client.get(reverse("listening:source_create"), {"kind": "twitter_search"}).content.decode()
    assert "Our X" in page and mailbox.name not in page
    missing = client.post(reverse("listening:source_create"), base)
    assert missing.status_code == 400 and "Choose a connected Twitter/X account." in missing.content.decode()
    response = client.post(reverse("listening:source_create"), {**base, "channel_account": str(twitter.pk)})
    assert response.status_code == 302
    source = ListeningSource.objects.get(name="X search")
    assert source.channel_account == twitter and source.config.get("query") == "acme -is:retweet"


def test_edit_a_source_and_pause_it(client, world) -> None:
    source = make_source(world.a1, world.team_a, last_error="HTTP 500 from blog.example.com", status="failing")
    login(client, world.a1)
    page = client.get(reverse("listening:source_edit", args=[source.pk])).content.decode()
    assert "HTTP 500 from blog.example.com" in page
    response = client.post(
        reverse("listening:source_edit", args=[source.pk]),
        {"name": "Renamed", "kind": "rss", "url": "https://blog.example.com/atom", "fetch_interval_minutes": "60",
         "status": "paused", "visibility": "team", "team": str(world.team_a.pk)},
    )  # fmt: skip
    assert response.status_code == 302
    source.refresh_from_db()
    assert (source.name, source.url, source.status, source.fetch_interval_s) == (
        "Renamed", "https://blog.example.com/atom", "paused", 3600,
    )  # fmt: skip
    login(client, world.b1)
    assert client.get(reverse("listening:source_edit", args=[source.pk])).status_code == 404


def test_a_webhook_source_can_get_a_new_secret(client, world) -> None:
    source = make_source(world.a1, world.team_a, kind="webhook", url="", slug="forum", secret="old-secret")
    login(client, world.a1)
    page = client.get(reverse("listening:source_edit", args=[source.pk])).content.decode()
    assert "/api/v1/listening/sources/forum/posts/" in page and "old-secret" not in page
    response = client.post(reverse("listening:source_rotate_secret", args=[source.pk]))
    source.refresh_from_db()
    assert response.status_code == 200 and source.secret != "old-secret"
    assert source.secret in response.content.decode() and "X-Threadline-Signature" in response.content.decode()


def test_fetch_now_and_delete_a_source(client, world, rules, django_capture_on_commit_callbacks, monkeypatch) -> None:
    from listening.tasks import source_fetch_task

    queued: list[int] = []
    monkeypatch.setattr(source_fetch_task, "delay", lambda source_id, **kwargs: queued.append(source_id))
    source = make_source(world.a1, world.team_a)
    post_mention(rules["a1"], source, n=1, minutes_ago=5)
    login(client, world.a1)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("listening:source_fetch_now", args=[source.pk]))
    assert response.status_code == 302 and queued == [source.pk]
    hook = make_source(world.a1, world.team_a, kind="webhook", url="", slug="hook")
    client.post(reverse("listening:source_fetch_now", args=[hook.pk]))
    assert "nothing to fetch" in client.get(reverse("listening:sources")).content.decode()

    url = reverse("listening:source_delete", args=[source.pk])
    confirm = client.get(url).content.decode()
    assert "Its 1 stored post and the mentions" in confirm and ListeningSource.objects.filter(pk=source.pk).exists()
    assert client.post(url).status_code == 302
    assert not ListeningSource.objects.filter(pk=source.pk).exists() and not Mention.objects.exists()


def test_a_teammates_source_is_shown_read_only(client, world) -> None:
    source = make_source(world.a2, world.team_a, name="Amy's feed")
    login(client, world.a1)
    page = client.get(reverse("listening:source_edit", args=[source.pk])).content.decode()
    assert "only its owner" in page and "Save source" not in page and "disabled" in page
    data = {"name": "Mine now", "kind": "rss", "url": "https://x.example/feed", "fetch_interval_minutes": "15"}
    response = client.post(reverse("listening:source_edit", args=[source.pk]), {**data, "status": "active"})
    assert response.status_code == 302
    assert client.post(reverse("listening:source_delete", args=[source.pk])).status_code == 302
    source.refresh_from_db()
    assert source.name == "Amy's feed"
