"""Thread operations: read, assign, close, topics, move, split, merge, recompute, matching the unmatched queue."""

from __future__ import annotations

import pytest

from contacts.models import ContactIdentity
from crm.errors import Conflict, DomainError, NotFound
from tests.threads.conversation_helpers import at, call_with, email_from, identity
from tests.threads.factories import ChannelAccountFactory
from threads.models import ChannelAccount, Message, Thread, ThreadRead
from threads.services.conversations import (
    message_move_to_topic,
    thread_assign,
    thread_close,
    thread_create_topic,
    thread_main_get_or_create,
    thread_mark_read,
    thread_merge,
    thread_recompute,
    thread_reopen,
    thread_set_topic,
    thread_split,
    unmatched_assign,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def account(world) -> ChannelAccount:
    return ChannelAccountFactory(owner=world.a1, team=world.team_a)


@pytest.fixture
def ann(world):  # type: ignore[no-untyped-def]
    identity(world.a1_shared, "ann@example.com")
    return world.a1_shared


def aggregates(thread: Thread) -> tuple:
    thread.refresh_from_db()
    return (thread.message_count, thread.last_message_at, thread.last_inbound_at, thread.last_outbound_at,
            thread.awaiting_reply, thread.last_subject, thread.last_channel, sorted(thread.participants))  # fmt: skip


def test_mark_read_upserts_and_respects_visibility(world, account, ann) -> None:
    thread = email_from(account, "ann@example.com").thread
    first = thread_mark_read(thread=thread, user=world.a1)
    second = thread_mark_read(thread=thread, user=world.a1)
    assert ThreadRead.objects.filter(thread=thread, user=world.a1).count() == 1
    assert second.read_at >= first.read_at
    with pytest.raises(NotFound):
        thread_mark_read(thread=thread, user=world.b1)


def test_assign_only_to_someone_who_can_see_the_contact(world, account, ann) -> None:
    thread = email_from(account, "ann@example.com").thread
    thread_assign(thread=thread, actor=world.a1, assignee=world.a2)
    assert Thread.objects.get(pk=thread.pk).assignee == world.a2
    with pytest.raises(DomainError) as exc:
        thread_assign(thread=thread, actor=world.a1, assignee=world.b1)
    assert exc.value.code == "assignee_cannot_see"
    with pytest.raises(NotFound):
        thread_assign(thread=thread, actor=world.b1, assignee=world.b1)
    thread_assign(thread=thread, actor=world.a1, assignee=None)
    assert Thread.objects.get(pk=thread.pk).assignee is None


def test_close_and_reopen(world, account, ann) -> None:
    thread = email_from(account, "ann@example.com").thread
    thread_close(thread=thread, actor=world.a2)
    assert Thread.objects.get(pk=thread.pk).status == Thread.Status.CLOSED
    thread_reopen(thread=thread, actor=world.a2)
    assert Thread.objects.get(pk=thread.pk).status == Thread.Status.OPEN
    with pytest.raises(NotFound):
        thread_close(thread=thread, actor=world.b1)


def test_topics_are_created_once_and_renamed_without_clashes(world) -> None:
    topic = thread_create_topic(actor=world.a1, contact=world.a1_shared, topic="  Renewal   2026 ")
    assert topic.topic == "Renewal 2026"
    assert thread_create_topic(actor=world.a1, contact=world.a1_shared, topic="Renewal 2026") == topic
    other = thread_create_topic(actor=world.a1, contact=world.a1_shared, topic="Support")
    with pytest.raises(DomainError):
        thread_set_topic(thread=other, actor=world.a1, topic="Renewal 2026")
    assert thread_set_topic(thread=other, actor=world.a1, topic="Help desk").topic == "Help desk"
    with pytest.raises(DomainError):
        thread_create_topic(actor=world.a1, contact=world.a1_shared, topic="   ")
    with pytest.raises(NotFound):
        thread_create_topic(actor=world.b1, contact=world.a1_shared, topic="Sneaky")
    main = thread_main_get_or_create(actor=world.a1, contact=world.a1_shared)
    assert main.is_main and thread_main_get_or_create(actor=world.a2, contact=world.a1_shared) == main
    with pytest.raises(DomainError):
        thread_set_topic(thread=main, actor=world.a1, topic="Renamed main")


def test_recompute_rebuilds_every_aggregate_in_one_statement(world, account, ann, django_assert_num_queries) -> None:
    inbound = email_from(account, "ann@example.com", subject="Question", minutes=1)
    call = call_with(world.a1_shared, minutes=5)
    thread = inbound.thread
    expected = aggregates(thread)
    Thread.objects.filter(pk=thread.pk).update(
        message_count=0, last_message_at=None, last_inbound_at=None, last_outbound_at=None, awaiting_reply=True,
        last_subject="", last_channel="", participants=[],
    )  # fmt: skip
    with django_assert_num_queries(1):
        thread_recompute([thread.pk])
    assert aggregates(thread) == expected
    assert expected[:7] == (2, at(5), at(1), at(5), False, "Phone call", "call")
    assert "ann@example.com" in expected[7]
    Message.objects.filter(pk__in=[inbound.pk, call.pk]).delete()
    thread_recompute([thread.pk])
    assert aggregates(thread) == (0, None, None, None, False, "", "", [])


def test_move_a_message_to_a_topic_and_later_replies_follow(world, account, ann) -> None:
    root = email_from(account, "ann@example.com", subject="Renewal", thread_key="root@x", minutes=1)
    email_from(account, "ann@example.com", subject="Renewal again", thread_key="root@x", minutes=2)
    other = email_from(account, "ann@example.com", subject="Lunch?", thread_key="lunch@x", minutes=3)
    main = root.thread
    topic = message_move_to_topic(actor=world.a1, message=root, topic="Renewal", whole_conversation=True)
    assert topic.topic == "Renewal" and topic.message_count == 2 and topic.last_subject == "Renewal again"
    assert aggregates(main)[:2] == (1, at(3)) and Message.objects.get(pk=other.pk).thread == main
    reply = email_from(account, "ann@example.com", subject="Re: Renewal", thread_key="root@x", minutes=4)
    assert reply.thread == topic
    # One message back to the main thread ("" topic); the topic keeps the rest.
    assert message_move_to_topic(actor=world.a1, message=reply, topic="").pk == main.pk
    assert aggregates(main)[:2] == (2, at(4)) and aggregates(topic)[0] == 2
    with pytest.raises(NotFound):
        message_move_to_topic(actor=world.b1, message=other, topic="Mine")


def test_moving_the_last_message_out_of_a_topic_removes_the_topic(world, account, ann) -> None:
    message = email_from(account, "ann@example.com")
    topic = message_move_to_topic(actor=world.a1, message=message, topic="Short-lived")
    message.refresh_from_db()
    message_move_to_topic(actor=world.a1, message=message, topic="")
    assert not Thread.objects.filter(pk=topic.pk).exists()


def test_split_selected_messages_into_a_new_topic(world, account, ann) -> None:
    a = email_from(account, "ann@example.com", subject="A", minutes=1)
    b = email_from(account, "ann@example.com", subject="B", minutes=2)
    c = email_from(account, "ann@example.com", subject="C", minutes=3)
    main = a.thread
    topic = thread_split(actor=world.a1, thread=main, message_ids=[a.pk, c.pk], topic="Billing")
    assert set(topic.messages.values_list("pk", flat=True)) == {a.pk, c.pk}
    assert aggregates(topic)[:2] == (2, at(3)) and aggregates(main)[:2] == (1, at(2))
    assert aggregates(main)[5] == "B"
    with pytest.raises(DomainError):
        thread_split(actor=world.a1, thread=main, message_ids=[a.pk], topic="Elsewhere")  # a is not in main now
    with pytest.raises(DomainError):
        thread_split(actor=world.a1, thread=main, message_ids=[], topic="Empty")
    with pytest.raises(NotFound):
        thread_split(actor=world.b1, thread=main, message_ids=[b.pk], topic="Sneaky")


def test_merge_moves_everything_and_keeps_the_main_thread(world, account, ann) -> None:
    a = email_from(account, "ann@example.com", subject="A", minutes=1)
    b = email_from(account, "ann@example.com", subject="B", minutes=2)
    main = a.thread
    topic = thread_split(actor=world.a1, thread=main, message_ids=[b.pk], topic="Billing")
    thread_assign(thread=topic, actor=world.a1, assignee=world.a2)
    # Merging the main thread into a topic folds the topic into the main thread instead.
    survivor = thread_merge(actor=world.a1, source=main, target=topic)
    assert survivor.pk == main.pk and not Thread.objects.filter(pk=topic.pk).exists()
    assert aggregates(main)[:2] == (2, at(2)) and survivor.assignee == world.a2
    other = thread_split(actor=world.a1, thread=main, message_ids=[a.pk], topic="Other")
    survivor = thread_merge(actor=world.a1, source=other, target=main)
    assert survivor.pk == main.pk and aggregates(main)[0] == 2
    with pytest.raises(DomainError):
        thread_merge(actor=world.a1, source=main, target=main)


def test_merge_refuses_threads_of_different_contacts(world, account, ann) -> None:
    identity(world.a2_shared, "amy@example.com")
    ann_thread = email_from(account, "ann@example.com").thread
    amy_thread = email_from(account, "amy@example.com").thread
    with pytest.raises(DomainError) as exc:
        thread_merge(actor=world.a1, source=ann_thread, target=amy_thread)
    assert exc.value.code == "different_contacts"
    assert Thread.objects.filter(pk__in=[ann_thread.pk, amy_thread.pk]).count() == 2


def test_unmatched_assign_creates_the_identity_and_moves_every_held_message(world) -> None:
    held = ChannelAccountFactory(
        owner=world.a1, team=world.team_a, unknown_policy=ChannelAccount.UnknownPolicy.UNMATCHED
    )
    first = email_from(held, "stranger@example.org", minutes=1)
    second = email_from(held, "stranger@example.org", minutes=2, subject="Still there?")
    unrelated = email_from(held, "someone.else@example.org", minutes=3)
    with pytest.raises(NotFound):
        unmatched_assign(actor=world.b1, message=first, contact=world.b1_shared)
    with pytest.raises(NotFound):
        unmatched_assign(actor=world.a1, message=first, contact=world.b1_shared)
    thread = unmatched_assign(actor=world.a1, message=first, contact=world.a2_shared)
    assert thread.contact == world.a2_shared and thread.is_main
    assert aggregates(thread)[:6] == (2, at(2), at(2), None, True, "Still there?")
    ident = ContactIdentity.objects.get(kind="email", normalized="stranger@example.org")
    assert ident.contact == world.a2_shared
    for message in (first, second):
        message.refresh_from_db()
        assert (message.contact, message.thread, message.author_identity) == (world.a2_shared, thread, ident)
    unrelated.refresh_from_db()
    assert unrelated.contact is None
    world.a2_shared.refresh_from_db()
    assert world.a2_shared.last_touch_at == at(2)
    # Later mail from the address is matched by the pipeline itself.
    assert email_from(held, "stranger@example.org", minutes=4).thread == thread
    with pytest.raises(DomainError):
        unmatched_assign(actor=world.a1, message=Message.objects.get(pk=first.pk), contact=world.a2_shared)


def test_unmatched_assign_refuses_an_address_another_contact_has(world) -> None:
    held = ChannelAccountFactory(
        owner=world.a1, team=world.team_a, unknown_policy=ChannelAccount.UnknownPolicy.UNMATCHED
    )
    message = email_from(held, "stranger@example.org")
    # The address became someone's after the message was held.
    identity(world.a1_private, "stranger@example.org")
    with pytest.raises(Conflict):
        unmatched_assign(actor=world.a1, message=message, contact=world.a2_shared)
    message.refresh_from_db()
    assert message.contact is None and message.thread is None
    assert not Thread.objects.filter(contact=world.a2_shared).exists()
