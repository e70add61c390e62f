"""The signed listening webhook: POST /api/v1/listening/sources/<slug>/posts/."""

from __future__ import annotations

import json

import pytest

from listening.models import ListeningSource, Mention, Post
from listening.services import source_create
from tests.listening.factories import make_rule
from threads.connectors.webhook import sign

pytestmark = pytest.mark.django_db


@pytest.fixture
def source(world) -> ListeningSource:
    return source_create(actor=world.a1, data={"name": "Reviews", "kind": "webhook", "slug": "reviews"})


def post(client, source: ListeningSource, payload, *, secret: str | None = None, signature: str | None = None,  # type: ignore[no-untyped-def]
         slug: str | None = None):  # fmt: skip
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    headers = {}
    if signature is not None:
        headers["HTTP_X_THREADLINE_SIGNATURE"] = signature
    elif secret is not None:
        headers["HTTP_X_THREADLINE_SIGNATURE"] = sign(secret, body)
    return client.post(
        f"/api/v1/listening/sources/{slug or source.slug}/posts/", body, content_type="application/json", **headers
    )


ONE = {"id": "r-1", "text": "Acme support was great", "channel": "web", "url": "https://reviews.example.com/1",
       "author": {"kind": "email", "address": "Ann@Example.com", "name": "Ann"}, "lang": "en"}  # fmt: skip


def test_a_signed_post_is_stored_and_matched(client, world, source) -> None:
    rule = make_rule(world.a1, query="acme", alert_in_app=False, spike_alerts=False)
    response = post(client, source, ONE, secret=source.secret)
    assert response.status_code == 200, response.content
    assert response.json() == {"received": 1, "created": 1, "duplicates": 0, "deleted": 0, "mentions": 1}
    stored = Post.objects.get()
    assert (stored.external_id, stored.author_kind, stored.author_address) == ("r-1", "email", "ann@example.com")
    assert Mention.objects.get().rule == rule


def test_a_batch_is_stored_and_a_replay_stores_nothing(client, world, source) -> None:
    batch = {"posts": [ONE, {"id": "r-2", "text": "meh"}, {"id": "r-3", "text": "gone", "deleted": True}]}
    body = json.dumps(batch).encode()
    first = post(client, source, body, secret=source.secret)
    replay = post(client, source, body, secret=source.secret)
    assert first.json()["created"] == 3
    assert replay.status_code == 200 and replay.json()["created"] == 0 and replay.json()["duplicates"] == 3
    assert Post.objects.count() == 3 and Post.objects.get(external_id="r-3").deleted_at is not None


@pytest.mark.parametrize("signature", [None, "sha256=" + "0" * 64, "md5=abc"])
def test_a_missing_or_wrong_signature_is_refused_and_stores_nothing(client, source, signature) -> None:
    response = post(client, source, ONE, signature=signature) if signature else post(client, source, ONE)
    assert response.status_code == 403 and response.json()["error"]["code"] == "forbidden"
    assert not Post.objects.exists()


def test_a_signature_made_with_another_secret_or_source_is_refused(client, world, source) -> None:
    other = source_create(actor=world.a1, data={"name": "Other", "kind": "webhook"})
    assert post(client, source, ONE, secret=other.secret).status_code == 403
    assert post(client, source, ONE, secret=source.secret, slug="no-such-source").status_code == 403
    assert not Post.objects.exists()


def test_a_rotated_secret_replaces_the_old_one(client, world, source) -> None:
    from listening.services import source_secret_rotate

    old = source.secret
    new = source_secret_rotate(actor=world.a1, source=source)
    assert post(client, source, ONE, secret=old).status_code == 403
    assert post(client, source, ONE, secret=new).status_code == 200


def test_a_body_over_the_limit_is_413(client, source, settings) -> None:
    settings.LISTENING_WEBHOOK_MAX_BYTES = 200
    big = {**ONE, "text": "x" * 500}
    response = post(client, source, big, secret=source.secret)
    assert response.status_code == 413 and not Post.objects.exists()


def test_bad_json_and_bad_fields_are_400_with_field_errors(client, source, settings) -> None:
    bad_json = post(client, source, b"{not json", secret=source.secret)
    assert bad_json.status_code == 400 and "body" in bad_json.json()["error"]["fields"]
    missing = post(client, source, {"posts": [ONE, {"id": "r-9"}]}, secret=source.secret)
    assert missing.status_code == 400 and list(missing.json()["error"]["fields"]) == ["posts.1.text"]
    bad_author = post(client, source, {**ONE, "author": {"kind": "email", "address": "nope"}}, secret=source.secret)
    assert bad_author.status_code == 400 and "author.address" in bad_author.json()["error"]["fields"]
    settings.LISTENING_WEBHOOK_MAX_POSTS = 2
    too_many = post(client, source, {"posts": [ONE, ONE, ONE]}, secret=source.secret)
    assert too_many.status_code == 400 and "posts" in too_many.json()["error"]["fields"]
    assert not Post.objects.exists()


def test_a_paused_source_refuses_posts(client, source) -> None:
    ListeningSource.objects.filter(pk=source.pk).update(status="paused")
    assert post(client, source, ONE, secret=source.secret).status_code == 403
    assert not Post.objects.exists()


def test_the_webhook_is_documented(client) -> None:
    schema = client.get("/api/schema/")
    assert b"/api/v1/listening/sources/{slug}/posts/" in schema.content
