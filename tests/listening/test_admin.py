"""Listening in the Django admin: every page renders, and a rule saved there reaches the engines."""

from __future__ import annotations

import pytest
from django.utils import timezone

from listening.models import ListeningRule, RuleSetVersion, SpikeAlert
from listening.services import mentions_evaluate_messages, source_create
from tests.listening.factories import ingest_posts, make_rule, public_post

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client_(client, world):  # type: ignore[no-untyped-def]
    client.force_login(world.admin)
    return client


def test_every_listening_admin_page_renders(admin_client_, world) -> None:
    rule = make_rule(world.admin, query="acme")
    source = source_create(actor=world.admin, data={"name": "Hook", "kind": "webhook", "visibility": "private"})
    assert source.secret
    ingest_posts(source, [public_post("acme")])
    SpikeAlert.objects.create(rule=rule, window_end=timezone.now(), count=3, mean=1, stddev=1, k=3)
    for model in ("listeningrule", "listeningsource", "mention", "post", "spikealert"):
        assert admin_client_.get(f"/admin/listening/{model}/").status_code == 200, model
    assert admin_client_.get(f"/admin/listening/listeningrule/{rule.pk}/change/").status_code == 200
    page = admin_client_.get(f"/admin/listening/listeningsource/{source.pk}/change/").content.decode()
    assert source.secret not in page  # the webhook secret never appears


def test_a_rule_saved_in_the_admin_is_validated_and_bumps_the_version(admin_client_, world) -> None:
    form = {
        "name": "Admin rule", "query": "acme AND (", "active": "on", "include_messages": "on", "include_posts": "on",
        "channels": "", "alert_cooldown_minutes": "60", "activity_kind": "task", "activity_cooldown_minutes": "1440",
        "spike_k": "3", "spike_min_count": "5", "visibility": "team", "created_at_0": "2026-01-01",
        "created_at_1": "00:00:00",
    }  # fmt: skip
    bad = admin_client_.post("/admin/listening/listeningrule/add/", form)
    assert bad.status_code == 200 and not ListeningRule.objects.exists()
    assert "at character" in bad.content.decode()
    ok = admin_client_.post("/admin/listening/listeningrule/add/", {**form, "query": "acme"})
    assert ok.status_code == 302, ok.content.decode()[:2000]
    rule = ListeningRule.objects.get()
    assert rule.owner == world.admin and RuleSetVersion.objects.get().version >= 1
    assert mentions_evaluate_messages(message_ids=[]).mentions == []
