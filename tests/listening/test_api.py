"""REST API of listening: rules (CRUD, dry run), mentions, sources (secret once), spikes."""

from __future__ import annotations

import pytest
from django.utils import timezone

from contacts.models import ContactIdentity
from listening.models import ListeningRule, ListeningSource, RuleSetVersion, SpikeAlert
from listening.services import mentions_evaluate_messages
from tests.listening.factories import ingest_email, ingest_posts, make_rule, make_source, public_post
from tests.threads.factories import ChannelAccountFactory

pytestmark = pytest.mark.django_db

RULES = "/api/v1/listening/rules/"
MENTIONS = "/api/v1/listening/mentions/"
SOURCES = "/api/v1/listening/sources/"


def as_user(api_client, user):  # type: ignore[no-untyped-def]
    api_client.force_authenticate(user)
    return api_client


def test_rules_crud(api_client, world) -> None:
    client = as_user(api_client, world.a1)
    source = make_source(world.a1)
    created = client.post(
        RULES,
        {"name": "Acme churn", "query": "acme NEAR/4 cancel*", "channels": ["twitter", "email"],
         "source_ids": [source.pk], "alert_cooldown_minutes": 30, "tag": "churn-risk"},
        format="json",
    )  # fmt: skip
    assert created.status_code == 201, created.content
    data = created.json()
    assert data["owner"] == world.a1.pk and data["source_ids"] == [source.pk] and data["can_edit"] is True
    assert data["team"] == world.team_a.pk and data["mention_count_7d"] == 0
    rule_url = f"{RULES}{data['id']}/"
    patched = client.patch(rule_url, {"active": False}, format="json")
    assert patched.status_code == 200 and patched.json()["active"] is False
    assert patched.json()["query"] == "acme NEAR/4 cancel*"  # untouched by a partial update
    assert [r["id"] for r in client.get(RULES).json()] == [data["id"]]
    assert client.delete(rule_url).status_code == 204
    assert not ListeningRule.objects.exists()
    assert RuleSetVersion.objects.get().version == 4  # the source, then create, update, delete


def test_a_bad_query_is_a_400_with_its_position(api_client, world) -> None:
    response = as_user(api_client, world.a1).post(
        RULES, {"name": "Broken", "query": "acme AND (cancel OR"}, format="json"
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid_query" and "query" in error["fields"]
    assert isinstance(error["position"], int) and error["end"] >= error["position"]


def test_teammates_read_and_only_editors_write(api_client, world) -> None:
    rule = make_rule(world.a1)
    client = as_user(api_client, world.a2)
    assert client.get(f"{RULES}{rule.pk}/").json()["can_edit"] is False
    assert client.patch(f"{RULES}{rule.pk}/", {"name": "x"}, format="json").status_code == 403
    assert client.delete(f"{RULES}{rule.pk}/").status_code == 403
    other = as_user(api_client, world.b1)
    assert other.get(f"{RULES}{rule.pk}/").status_code == 404
    assert other.patch(f"{RULES}{rule.pk}/", {"name": "x"}, format="json").status_code == 404


def test_a_team_from_elsewhere_is_refused(api_client, world) -> None:
    response = as_user(api_client, world.a1).post(
        RULES, {"name": "X", "query": "acme", "team": world.team_b.pk}, format="json"
    )
    assert response.status_code == 400 and "team" in response.json()["error"]["fields"]


def test_dry_run(api_client, world) -> None:
    ContactIdentity.objects.create(contact=world.a1_shared, kind="email", value="ann@example.com",
                                   normalized="ann@example.com")  # fmt: skip
    ingest_email(ChannelAccountFactory(owner=world.a1, team=world.team_a), "ann@example.com", "acme is broken")
    client = as_user(api_client, world.a1)
    ok = client.post(f"{RULES}dry-run/", {"query": "acme AND broken"}, format="json").json()
    assert ok["error"] is None and ok["scanned"] == 1 and ok["matched"] == 1
    assert ok["hits"][0]["kind"] == "message" and ok["hits"][0]["terms"] == ["acme", "broken"]
    bad = client.post(f"{RULES}dry-run/", {"query": "acme AND"}, format="json")
    assert bad.status_code == 200 and bad.json()["error"]["position"] >= 0 and bad.json()["hits"] == []


def test_mentions_list_filters_and_pages(api_client, world, django_assert_max_num_queries) -> None:
    rule = make_rule(world.a1, query="acme", alert_in_app=False, spike_alerts=False)
    source = make_source(world.a1)
    ingest_posts(source, [public_post(f"acme post {i}", channel="blog" if i % 2 else "twitter") for i in range(5)])
    client = as_user(api_client, world.a1)
    with django_assert_max_num_queries(10):
        first = client.get(MENTIONS, {"page_size": 2}).json()
    assert len(first["results"]) == 2 and first["next"]
    item = first["results"][0]
    assert item["rule"] == rule.pk and item["kind"] == "post" and item["rule_name"] == rule.name
    assert item["highlights"] == [[0, 4]] and item["text_hidden"] is False
    seen = [r["id"] for r in first["results"]]
    url = first["next"]
    while url:
        page = client.get(url).json()
        seen.extend(r["id"] for r in page["results"])
        url = page["next"]
    assert len(seen) == len(set(seen)) == 5
    blog = client.get(MENTIONS, {"channel": "blog", "rule": rule.pk}).json()["results"]
    assert len(blog) == 2 and all(r["channel"] == "blog" for r in blog)
    assert client.get(MENTIONS, {"sentiment": "furious"}).status_code == 400
    assert client.get(MENTIONS, {"cursor": "garbage"}).status_code == 400
    one = client.get(f"{MENTIONS}{seen[0]}/")
    assert one.status_code == 200 and as_user(api_client, world.b1).get(f"{MENTIONS}{seen[0]}/").status_code == 404


def test_message_mentions_hide_private_mailbox_text(api_client, world) -> None:
    ContactIdentity.objects.create(contact=world.a1_shared, kind="email", value="ann@example.com",
                                   normalized="ann@example.com")  # fmt: skip
    make_rule(world.a1, query="acme", alert_in_app=False, spike_alerts=False)
    box = ChannelAccountFactory(owner=world.a2, team=world.team_a, visibility="private")
    mentions_evaluate_messages(message_ids=[ingest_email(box, "ann@example.com", "acme private").pk])
    hidden = as_user(api_client, world.a1).get(MENTIONS).json()["results"][0]
    assert hidden["snippet"] == "" and hidden["text_hidden"] is True and hidden["matched_terms"] == []
    shown = as_user(api_client, world.a2).get(MENTIONS).json()["results"][0]
    assert "acme private" in shown["snippet"]


def test_a_webhook_sources_secret_is_shown_once(api_client, world) -> None:
    client = as_user(api_client, world.a1)
    created = client.post(SOURCES, {"name": "Reviews", "kind": "webhook"}, format="json")
    assert created.status_code == 201, created.content
    data = created.json()
    assert data["secret"] and data["slug"] == "reviews"
    assert data["webhook_url"].endswith("/api/v1/listening/sources/reviews/posts/")
    again = client.get(f"{SOURCES}{data['id']}/").json()
    assert "secret" not in again and data["secret"] not in str(client.get(SOURCES).content)
    rotated = client.post(f"{SOURCES}{data['id']}/rotate-secret/").json()["secret"]
    assert rotated != data["secret"] and ListeningSource.objects.get().secret == rotated


def test_source_validation_and_fetch_now(api_client, world, monkeypatch) -> None:
    client = as_user(api_client, world.a1)
    no_url = client.post(SOURCES, {"name": "Blog", "kind": "rss"}, format="json")
    assert no_url.status_code == 400 and "url" in no_url.json()["error"]["fields"]
    no_account = client.post(SOURCES, {"name": "X", "kind": "twitter_search"}, format="json")
    assert no_account.status_code == 400 and "channel_account" in no_account.json()["error"]["fields"]
    from listening import tasks

    monkeypatch.setattr(tasks.source_fetch_task, "delay", lambda *a, **k: None)
    feed = client.post(SOURCES, {"name": "Blog", "kind": "rss", "url": "https://blog.example.com/feed"}, format="json")
    assert feed.status_code == 201 and "secret" in feed.json() and feed.json()["secret"] is None
    assert client.post(f"{SOURCES}{feed.json()['id']}/fetch/").status_code == 202
    hook = make_source(world.a1)
    assert client.post(f"{SOURCES}{hook.pk}/fetch/").status_code == 400
    changed = client.patch(f"{SOURCES}{feed.json()['id']}/", {"fetch_interval_s": 600}, format="json")
    assert changed.status_code == 200 and changed.json()["fetch_interval_s"] == 600
    assert client.delete(f"{SOURCES}{feed.json()['id']}/").status_code == 204


def test_spikes_list(api_client, world) -> None:
    rule = make_rule(world.a1)
    SpikeAlert.objects.create(rule=rule, window_end=timezone.now(), count=12, mean=2, stddev=1, k=3)
    rows = as_user(api_client, world.a2).get("/api/v1/listening/spikes/").json()
    assert [(r["rule"], r["count"]) for r in rows] == [(rule.pk, 12)]
    assert as_user(api_client, world.b1).get("/api/v1/listening/spikes/").json() == []
    assert as_user(api_client, world.a1).get("/api/v1/listening/spikes/", {"limit": "0"}).status_code == 400


def test_the_api_needs_a_login(api_client) -> None:
    assert api_client.get(RULES).status_code in (401, 403)
    assert api_client.get(MENTIONS).status_code in (401, 403)
