"""ingest_batch and the raw-event pipeline: once-only storage, identity resolution, thread keying, events."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import transaction
from django.utils import timezone

from accounts.models import Visibility
from contacts.models import Contact, ContactIdentity
from tests.threads.factories import ChannelAccountFactory, inbound_email
from threads.connectors import NormalizedMessage, NormalizeError, Party, RawEventIn, register_normalizer
from threads.events import messages_ingested
from threads.models import ChannelAccount, Message, RawEvent, Thread
from threads.services import ingest_batch, ingest_fetched, raw_events_process, raw_events_replay, raw_events_store

pytestmark = pytest.mark.django_db


def identity(contact: Contact, address: str) -> ContactIdentity:
    return ContactIdentity.objects.create(contact=contact, kind="email", value=address, normalized=address)


@pytest.fixture
def account(world) -> ChannelAccount:
    return ChannelAccountFactory(owner=world.a1, team=world.team_a)


def ingest(account, messages):
    with transaction.atomic():
        return ingest_batch(account=account, messages=messages)


def test_known_author_lands_in_the_contacts_main_thread_once(world, account) -> None:
    identity(world.a1_shared, "ann@example.com")
    first = ingest(account, [inbound_email("ann@example.com", external_id="x1@example.com")])
    again = ingest(account, [inbound_email("ann@example.com", external_id="x1@example.com")])
    assert len(first.created) == 1 and again.created == [] and again.duplicates == 1
    message = Message.objects.get()
    thread = message.thread
    assert message.contact == world.a1_shared and thread.topic == "" and thread.contact == world.a1_shared
    assert message.author_identity.normalized == "ann@example.com"
    assert thread.message_count == 1 and thread.awaiting_reply and thread.status == Thread.Status.OPEN
    world.a1_shared.refresh_from_db()
    assert world.a1_shared.last_touch_at == message.sent_at


def test_unknown_author_becomes_a_lead_or_waits_unmatched(world, account) -> None:
    result = ingest(account, [inbound_email("new.person@example.org", name="New Person")])
    assert result.leads_created == 1
    lead = Contact.objects.get(identities__normalized="new.person@example.org")
    assert (lead.first_name, lead.last_name, lead.owner, lead.lifecycle_stage) == ("New", "Person", world.a1, "lead")
    account.unknown_policy = ChannelAccount.UnknownPolicy.UNMATCHED
    account.save()
    result = ingest(account, [inbound_email("stranger@example.org")])
    assert result.unmatched == 1 and result.leads_created == 0
    held = Message.objects.get(author_address="stranger@example.org")
    assert held.contact is None and held.thread is None


def test_replies_follow_their_conversation_into_a_topic(world, account) -> None:
    identity(world.a1_shared, "ann@example.com")
    ingest(account, [inbound_email("ann@example.com", external_id="root@x", thread_key="root@x")])
    topic = Thread.objects.create(contact=world.a1_shared, topic="Renewal")
    Message.objects.update(thread=topic)
    ingest(account, [inbound_email("ann@example.com", external_id="reply@x", thread_key="root@x")])
    ingest(account, [inbound_email("ann@example.com", external_id="other@x", thread_key="other@x")])
    assert Message.objects.get(external_id="reply@x").thread == topic
    assert Message.objects.get(external_id="other@x").thread.topic == ""


def test_same_mail_in_two_mailboxes_is_one_message_seen_by_both(world, account) -> None:
    identity(world.a1_shared, "ann@example.com")
    private = ChannelAccountFactory(owner=world.a2, team=world.team_a, visibility=Visibility.PRIVATE)
    ingest(private, [inbound_email("ann@example.com", external_id="same@x")])
    message = Message.objects.get()
    assert message.is_private and message.body_visible_to == [world.a2.pk]
    assert not message.body_visible_for(world.a1) and message.body_visible_for(world.a2)
    result = ingest(account, [inbound_email("ann@example.com", external_id="same@x")])
    assert result.created == [] and Message.objects.count() == 1
    message.refresh_from_db()
    assert message.seen_by == [private.pk, account.pk] and not message.is_private
    assert message.body_visible_for(world.a1)


def test_outbound_message_belongs_to_the_recipient_and_sets_waiting(world, account) -> None:
    identity(world.a1_shared, "ann@example.com")
    ingest(account, [inbound_email("ann@example.com", external_id="q@x", thread_key="q@x")])
    out = NormalizedMessage(
        channel="email", direction="outbound", external_id="a@x", sent_at=timezone.now() + dt.timedelta(minutes=1),
        provider_thread_key="q@x", author=Party("email", account.address), subject="Re: Hello",
        counterparts=[Party("email", "ann@example.com", role="to")], body_text="Answer",
    )  # fmt: skip
    ingest(account, [out])
    thread = Thread.objects.get()
    assert thread.message_count == 2 and not thread.awaiting_reply and thread.status == Thread.Status.WAITING
    assert Message.objects.get(external_id="a@x").recipients == [
        {"kind": "to", "address": "ann@example.com", "name": ""}
    ]


def test_html_is_sanitized_and_nul_bytes_dropped(world, account) -> None:
    identity(world.a1_shared, "ann@example.com")
    m = inbound_email("ann@example.com", body="a\x00b")
    m.body_html = '<p onclick="x()">Hi<script>alert(1)</script><a href="javascript:alert(1)">l</a></p>'
    ingest(account, [m])
    stored = Message.objects.get()
    assert "script" not in stored.body_html and "onclick" not in stored.body_html
    assert "javascript" not in stored.body_html and stored.body_text == "ab"


def test_event_payload(world, account, django_capture_on_commit_callbacks) -> None:
    identity(world.a1_shared, "ann@example.com")
    seen = []

    def receiver(sender, messages, **kwargs):
        seen.extend(messages)

    messages_ingested.connect(receiver, dispatch_uid="test-receiver")
    try:
        with django_capture_on_commit_callbacks(execute=True):
            ingest(account, [inbound_email("ann@example.com")])
            ingest(account, [inbound_email("ann@example.com", external_id=Message.objects.get().external_id)])
    finally:
        messages_ingested.disconnect(dispatch_uid="test-receiver")
    assert len(seen) == 1 and seen[0].contact_id == world.a1_shared.pk and seen[0].direction == "inbound"


def _json_normalizer(event, account):
    import json

    data = json.loads(bytes(event.payload))
    if "boom" in data:
        raise NormalizeError("cannot read this event: no sender")
    return [inbound_email(data["from"], external_id=data["id"])]


register_normalizer("test-json", _json_normalizer)


def raw(event_id: str, body: str) -> RawEventIn:
    return RawEventIn(provider_event_id=event_id, event_type="test-json", payload=body.encode())


def test_bad_event_is_dead_lettered_while_the_rest_lands_and_cursor_advances(world, account) -> None:
    identity(world.a1_shared, "ann@example.com")
    events = [raw("e1", '{"from": "ann@example.com", "id": "1@x"}'), raw("e2", '{"boom": 1}'),
              raw("e3", '{"from": "ann@example.com", "id": "3@x"}')]  # fmt: skip
    result = ingest_fetched(account=account, events=events, cursor={"page": 2})
    assert len(result.created) == 2 and result.dead == 1
    dead = RawEvent.objects.get(provider_event_id="e2")
    assert dead.status == RawEvent.Status.DEAD and "no sender" in dead.error
    account.refresh_from_db()
    assert account.cursor == {"page": 2} and account.stored_count == 2
    # Re-fetching the same page stores nothing new: no raw events, no messages.
    again = ingest_fetched(account=account, events=events, cursor={"page": 2})
    assert again.created == [] and RawEvent.objects.count() == 3


def test_replay_inserts_nothing(world, account) -> None:
    identity(world.a1_shared, "ann@example.com")
    raw_events_store(account=account, events=[raw(f"e{i}", f'{{"from": "ann@example.com", "id": "{i}@x"}}')
                                              for i in range(20)])  # fmt: skip
    assert len(raw_events_process(account=account).created) == 20
    before = Message.objects.count()
    result = raw_events_replay(account=account)
    assert result.created == [] and result.duplicates == 20 and Message.objects.count() == before


def test_late_fetched_mail_with_an_old_date_makes_a_read_thread_unread(world, account) -> None:
    from threads.selectors import inbox_threads
    from threads.services import thread_mark_read

    identity(world.a1_shared, "ann@example.com")
    ingest(account, [inbound_email("ann@example.com", subject="First")])
    thread = Thread.objects.get()
    thread_mark_read(thread=thread, user=world.a1)
    old = timezone.now() - dt.timedelta(days=3)  # sent days ago, fetched only now (server outage, import)
    ingest(account, [inbound_email("ann@example.com", subject="Late", sent_at=old)])
    assert [t.pk for t in inbox_threads(user=world.a1, unread=True).items] == [thread.pk]
