"""Threads on the contact timeline and My day, through merge and unmerge, and through GDPR export and erasure."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import transaction
from django.utils import timezone

from contacts.models import ContactIdentity
from contacts.selectors.timeline import contact_timeline
from contacts.services.gdpr import person_erase, person_export
from contacts.services.merge import contact_merge, contact_unmerge
from tests.contacts.factories import ContactFactory
from tests.threads.factories import ChannelAccountFactory, inbound_email
from threads.connectors import RawEventIn, register_normalizer
from threads.models import ChannelAccount, Message, RawEvent, Thread
from threads.services import ingest_batch, raw_events_process, raw_events_store

pytestmark = pytest.mark.django_db


def identity(contact, address: str) -> None:
    ContactIdentity.objects.create(contact=contact, kind="email", value=address, normalized=address)


def ingest(account, messages):
    with transaction.atomic():
        return ingest_batch(account=account, messages=messages)


@pytest.fixture
def account(world):
    return ChannelAccountFactory(owner=world.a1, team=world.team_a)


def test_messages_are_on_the_timeline_and_private_bodies_stay_private(world, account) -> None:
    identity(world.a1_shared, "ann@example.com")
    ingest(account, [inbound_email("ann@example.com", subject="Pricing", body="How much for 40 seats?")])
    private = ChannelAccountFactory(owner=world.a2, team=world.team_a, visibility="private")
    ingest(private, [inbound_email("ann@example.com", subject="Personal", body="Secret dinner plans")])
    entries = contact_timeline(user=world.a1, contact=world.a1_shared, before=None).entries
    by_title = {e.title: e for e in entries if e.source == "message"}
    assert by_title["E-mail from ann@example.com: Pricing"].body == "How much for 40 seats?"
    assert by_title["E-mail from ann@example.com: Personal"].body == ""  # the touch shows, the body does not
    mine = contact_timeline(user=world.a2, contact=world.a1_shared, before=None).entries
    assert any(e.body == "Secret dinner plans" for e in mine)


def test_the_timeline_pages_through_every_thread_of_the_person_newest_first(world, account) -> None:
    """Messages are read through the person's threads (main and topics), merged, and paged by keyset."""
    from contacts.registry import TimelineQuery
    from threads.registrations import message_timeline
    from threads.services.conversations import message_move_to_topic

    identity(world.a1_shared, "ann@example.com")
    start = timezone.now() - dt.timedelta(days=1)
    messages = [
        inbound_email("ann@example.com", subject=f"m{i}", sent_at=start + dt.timedelta(minutes=i)) for i in range(7)
    ]
    ids = ingest(account, messages).created
    for pk in ids[1::2]:  # every other message to a topic thread: the two threads interleave in time
        message_move_to_topic(actor=world.a1, message=Message.objects.get(pk=pk), topic="Renewal")
    other = ContactFactory(owner=world.a1, team=world.team_a)
    identity(other, "zed@example.com")
    ingest(account, [inbound_email("zed@example.com", subject="not Ann's")])
    seen, before = [], None
    while True:
        page = message_timeline(TimelineQuery(user=world.a1, contact_ids=[world.a1_shared.pk], before=before, limit=3))
        if not page:
            break
        seen += [entry.title.rsplit(": ", 1)[1] for entry in page]
        before = page[-1].cursor
    assert seen == [f"m{i}" for i in reversed(range(7))]


def test_my_day_lists_threads_waiting_for_my_reply(world, account, client) -> None:
    identity(world.a1_shared, "ann@example.com")
    identity(world.a2_shared, "bob@example.com")
    ingest(account, [inbound_email("ann@example.com", subject="Need help"),
                     inbound_email("bob@example.com", subject="Other rep's customer")])  # fmt: skip
    client.force_login(world.a1)
    page = client.get("/").content.decode()
    assert "Waiting for your reply" in page and "Need help" in page
    assert "Other rep&#x27;s customer" not in page and "Other rep's customer" not in page


def test_merge_joins_conversations_and_unmerge_splits_them_back(world, account) -> None:
    primary = ContactFactory(first_name="Pat", last_name="Primary", owner=world.a1, team=world.team_a)
    duplicate = ContactFactory(first_name="Pat", last_name="Primary", owner=world.a1, team=world.team_a)
    identity(primary, "pat@work.example")
    identity(duplicate, "pat@home.example")
    ingest(account, [inbound_email("pat@work.example", subject="Work"), inbound_email("pat@home.example",
                                                                                      subject="Home")])  # fmt: skip
    Thread.objects.create(contact=primary, topic="Renewal")
    topic = Thread.objects.create(contact=duplicate, topic="Renewal")
    record = contact_merge(primary=primary, duplicate=duplicate, actor=world.a1)
    main = Thread.objects.get(contact=primary, topic="")
    assert main.message_count == 2 and Message.objects.filter(contact=primary).count() == 2
    topic.refresh_from_db()
    assert topic.contact_id == primary.pk and topic.topic == "Renewal (Pat Primary)"
    contact_unmerge(record=record, actor=world.a1)
    assert Message.objects.get(subject="Home").contact_id == duplicate.pk
    assert Message.objects.get(subject="Home").thread.contact_id == duplicate.pk
    assert Thread.objects.get(contact=primary, topic="").message_count == 1
    topic.refresh_from_db()
    assert (topic.contact_id, topic.topic) == (duplicate.pk, "Renewal")


def _email_normalizer(event, account):
    return [inbound_email("ann@example.com", external_id=event.provider_event_id, body="raw secret")]


register_normalizer("test-gdpr", _email_normalizer)


def test_gdpr_export_and_erase_cover_messages_threads_and_raw_events(world, account) -> None:
    identity(world.a1_shared, "ann@example.com")
    raw_events_store(account=account, events=[RawEventIn("g1@x", "test-gdpr", b"raw bytes of ann's mail")])
    raw_events_process(account=account)
    held = ChannelAccountFactory(owner=world.a1, team=world.team_a,
                                 unknown_policy=ChannelAccount.UnknownPolicy.UNMATCHED)  # fmt: skip
    ingest(held, [inbound_email("ann.private@example.com", subject="Held in the unmatched queue")])
    identity(world.a1_shared, "ann.private@example.com")
    exported = person_export(contact=world.a1_shared, actor=world.admin)
    assert "raw secret" in str(exported) and "Held in the unmatched queue" in str(exported)
    person_erase(contact=world.a1_shared, actor=world.admin, reason="Art. 17 request")
    assert not Message.objects.exists() and not Thread.objects.exists()
    assert not RawEvent.objects.filter(provider_event_id="g1@x").exists()
