"""Listening on the contact timeline, through merge and unmerge, GDPR export and erasure, and on My day."""

from __future__ import annotations

import pytest
from django.utils import timezone

from contacts.models import ContactIdentity
from contacts.selectors.timeline import contact_timeline
from contacts.services.gdpr import person_erase, person_export
from contacts.services.merge import contact_merge, contact_unmerge
from listening.models import Mention, Post, SpikeAlert
from listening.services import mentions_evaluate_messages
from tests.contacts.factories import ContactFactory
from tests.listening.factories import ingest_email, ingest_posts, make_rule, make_source, public_post
from tests.threads.factories import ChannelAccountFactory
from threads.connectors import Party

pytestmark = pytest.mark.django_db


def handle(contact, name: str) -> Party:  # type: ignore[no-untyped-def]
    ContactIdentity.objects.create(contact=contact, kind="twitter", value=f"@{name}", normalized=f"@{name}")
    return Party("twitter", f"@{name}", name.title(), "from", name)


@pytest.fixture
def source(world):  # type: ignore[no-untyped-def]
    return make_source(world.a1)


def test_mentions_and_public_posts_are_on_the_timeline(world, source) -> None:
    rule = make_rule(world.a1, query="acme", name="Acme watch", alert_in_app=False, spike_alerts=False)
    ann = handle(world.a1_shared, "ann")
    ingest_posts(source, [public_post("I love acme", author=ann), public_post("Sunny day", author=ann)])
    entries = contact_timeline(user=world.a1, contact=world.a1_shared, before=None).entries
    kinds = {(e.source, e.kind) for e in entries}
    assert ("mention", "mention") in kinds and ("post", "post_twitter") in kinds
    mention = next(e for e in entries if e.source == "mention")
    assert "Acme watch" in mention.title and mention.body == "I love acme"
    assert {e.body for e in entries if e.source == "post"} == {"I love acme", "Sunny day"}
    assert rule.pk == mention.extra["rule_id"]


def test_posts_from_a_source_the_user_may_not_read_stay_off_their_timeline(world) -> None:
    private = make_source(world.a1, visibility="private")
    ingest_posts(private, [public_post("from a1's private feed", author=handle(world.a1_shared, "ann"))])
    mine = contact_timeline(user=world.a1, contact=world.a1_shared, before=None).entries
    teammate = contact_timeline(user=world.a2, contact=world.a1_shared, before=None).entries
    assert [e.body for e in mine if e.source == "post"] == ["from a1's private feed"]
    assert [e for e in teammate if e.source == "post"] == []


def test_a_private_mailbox_mention_shows_on_the_timeline_without_text(world) -> None:
    ContactIdentity.objects.create(contact=world.a1_shared, kind="email", value="ann@example.com",
                                   normalized="ann@example.com")  # fmt: skip
    make_rule(world.a1, query="acme", alert_in_app=False, spike_alerts=False)
    box = ChannelAccountFactory(owner=world.a2, team=world.team_a, visibility="private")
    mentions_evaluate_messages(message_ids=[ingest_email(box, "ann@example.com", "acme secret").pk])
    entry = next(
        e
        for e in contact_timeline(user=world.a1, contact=world.a1_shared, before=None).entries
        if e.source == "mention"
    )
    assert entry.body == "" and entry.extra["private"] is True


def test_merge_moves_mentions_and_posts_and_unmerge_moves_them_back(world, source) -> None:
    primary = ContactFactory(first_name="Pat", owner=world.a1, team=world.team_a)
    duplicate = ContactFactory(first_name="Pat", owner=world.a1, team=world.team_a)
    make_rule(world.a1, query="acme", alert_in_app=False, spike_alerts=False)
    ingest_posts(source, [public_post("acme!", author=handle(duplicate, "pat"))])
    record = contact_merge(primary=primary, duplicate=duplicate, actor=world.a1)
    assert Post.objects.get().contact == primary and Mention.objects.get().contact == primary
    _, restored = contact_unmerge(record=record, actor=world.a1)
    assert Post.objects.get().contact == restored and Mention.objects.get().contact == restored


def test_gdpr_export_and_erase_cover_posts_and_mentions(world, source) -> None:
    make_rule(world.a1, query="acme", alert_in_app=False, spike_alerts=False)
    ann = handle(world.a1_shared, "ann")
    ingest_posts(source, [public_post("acme is mine", author=ann)])
    # A post by one of her addresses stored before the identity existed (no contact resolved at ingest).
    Post.objects.create(source=source, external_id="early", channel="twitter", text="early acme", author_kind="twitter",
                        author_address="@ann", posted_at=timezone.now())  # fmt: skip
    other = ingest_posts(source, [public_post("acme by someone else")])
    exported = person_export(contact=world.a1_shared, actor=world.a1)["sources"]["listening"]
    assert {p["text"] for p in exported["posts"]} == {"acme is mine", "early acme"}
    assert [m["snippet"] for m in exported["mentions"]] == ["acme is mine"]
    person_erase(contact=world.a1_shared, actor=world.ma)
    assert list(Post.objects.values_list("text", flat=True)) == ["acme by someone else"]
    assert list(Mention.objects.values_list("id", flat=True)) == other.mentions


def test_my_day_lists_spikes_and_matches_of_my_rules(client, world, source) -> None:
    rule = make_rule(world.a1, query="acme", name="Acme watch", alert_in_app=False, spike_alerts=False)
    theirs = make_rule(world.a2, query="globex", name="Globex watch", alert_in_app=False, spike_alerts=False)
    ingest_posts(source, [public_post("acme launches a rocket"), public_post("globex too")])
    SpikeAlert.objects.create(rule=rule, window_end=timezone.now(), count=42, mean=3, stddev=1, k=3)
    client.force_login(world.a1)
    page = client.get("/").content.decode()
    assert "Listening alerts" in page and "acme launches a rocket" in page and "42 mentions" in page
    assert "globex too" not in page and theirs.name not in page


def test_my_day_without_listening_news(client, world) -> None:
    client.force_login(world.b1)
    page = client.get("/").content.decode()
    assert "Listening alerts" in page and "found nothing this week" in page


def test_a_mention_of_an_unmatched_message_follows_it_to_the_contact_it_is_assigned_to(
    world, django_capture_on_commit_callbacks
) -> None:  # fmt: skip
    from threads.services.conversations import unmatched_assign

    make_rule(world.a1, query="acme", alert_in_app=False, spike_alerts=False)
    box = ChannelAccountFactory(owner=world.a1, team=world.team_a, unknown_policy="unmatched")
    message = ingest_email(box, "stranger@example.com", "is acme any good?")
    mentions_evaluate_messages(message_ids=[message.pk])
    assert Mention.objects.get().contact_id is None
    with django_capture_on_commit_callbacks(execute=True):
        unmatched_assign(actor=world.a1, message=message, contact=world.a1_shared)
    assert Mention.objects.get().contact_id == world.a1_shared.pk
