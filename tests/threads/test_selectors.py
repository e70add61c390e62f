"""Inbox reads: who sees which thread, private-mailbox bodies, filters, keyset pages, reply options."""

from __future__ import annotations

import pytest

from accounts.models import Visibility
from crm.errors import DomainError, NotFound
from tests.threads.conversation_helpers import (
    ADDRESSES,
    at,
    call_with,
    email_from,
    identity,
    world_conversations,
)
from tests.threads.factories import ChannelAccountFactory
from threads import selectors
from threads.models import ChannelAccount, Thread
from threads.selectors import channels as channel_selectors
from threads.services.conversations import thread_assign, thread_close, thread_mark_read

pytestmark = pytest.mark.django_db


@pytest.fixture
def account(world) -> ChannelAccount:
    return ChannelAccountFactory(owner=world.a1, team=world.team_a)


@pytest.fixture
def b_account(world) -> ChannelAccount:
    return ChannelAccountFactory(owner=world.b1, team=world.team_b)


@pytest.fixture
def threads(world, account, b_account) -> dict[str, Thread]:
    return world_conversations(world, account, b_account)


def inbox_keys(user, threads, **filters) -> set[str]:
    page = selectors.inbox_threads(user=user, **filters)
    by_id = {t.pk: k for k, t in threads.items()}
    return {by_id[t.pk] for t in page.items}


@pytest.mark.parametrize(
    ("who", "expected"),
    [
        ("a1", {"a1_shared", "a1_private", "a2_shared"}),
        ("a2", {"a1_shared", "a2_shared", "a2_private"}),
        ("b1", {"b1_shared"}),
        ("ma", {"a1_shared", "a1_private", "a2_shared", "a2_private"}),
        ("admin", set(ADDRESSES)),
    ],
)
def test_inbox_shows_exactly_the_threads_whose_contact_the_user_may_see(world, threads, who, expected) -> None:
    assert inbox_keys(getattr(world, who), threads) == expected


def test_rep_cannot_open_another_teams_thread(world, threads) -> None:
    with pytest.raises(NotFound):
        selectors.thread_get(user=world.b1, pk=threads["a1_shared"].pk)
    with pytest.raises(NotFound):
        selectors.thread_get(user=world.a1, pk=threads["a2_private"].pk)
    assert selectors.thread_get(user=world.ma, pk=threads["a2_private"].pk) == threads["a2_private"]
    message = threads["a1_shared"].messages.get()
    with pytest.raises(NotFound):
        selectors.message_get(user=world.b1, pk=message.pk)


def test_private_mailbox_body_is_hidden_from_everyone_but_its_owner(world, threads) -> None:
    private = ChannelAccountFactory(owner=world.a2, team=world.team_a, visibility=Visibility.PRIVATE)
    secret = email_from(private, ADDRESSES["a1_shared"], subject="Salary", body="My salary is 100k", minutes=30)
    thread = threads["a1_shared"]
    for_a1 = {m.pk: m for m in selectors.thread_messages(user=world.a1, thread=thread).items}[secret.pk]
    assert for_a1.body_visible is False
    assert (for_a1.body_text, for_a1.body_display, for_a1.body_html, for_a1.subject) == ("", "", "", "Salary")
    assert list(for_a1.attachments.all()) == []
    for_a2 = {m.pk: m for m in selectors.thread_messages(user=world.a2, thread=thread).items}[secret.pk]
    assert for_a2.body_visible is True and for_a2.body_display == "My salary is 100k"
    # The inbox snippet follows the same rule.
    (row,) = [t for t in selectors.inbox_threads(user=world.a1).items if t.pk == thread.pk]
    assert row.snippet == ""
    (row,) = [t for t in selectors.inbox_threads(user=world.a2).items if t.pk == thread.pk]
    assert row.snippet == "My salary is 100k"


def test_inbox_filters(world, threads, account) -> None:
    a1 = world.a1
    thread_assign(thread=threads["a1_shared"], actor=a1, assignee=world.a2)
    thread_assign(thread=threads["a1_private"], actor=a1, assignee=a1)
    assert inbox_keys(a1, threads, assignee="me") == {"a1_private"}
    assert inbox_keys(a1, threads, assignee=str(world.a2.pk)) == {"a1_shared"}
    assert inbox_keys(a1, threads, assignee="none") == {"a2_shared"}
    thread_mark_read(thread=threads["a2_shared"], user=a1)
    assert inbox_keys(a1, threads, unread=True) == {"a1_shared", "a1_private"}
    # A new message makes a read thread unread again.
    email_from(account, ADDRESSES["a2_shared"], subject="Again", minutes=24 * 60 + 1)
    assert "a2_shared" in inbox_keys(a1, threads, unread=True)
    thread_close(thread=threads["a1_private"], actor=a1)
    assert inbox_keys(a1, threads, status="closed") == {"a1_private"}
    # A call logged after the e-mail: the thread is waiting no longer, and is found by either channel.
    call_with(world.a1_shared, minutes=24 * 60 + 2)
    assert "a1_shared" not in inbox_keys(a1, threads, waiting=True)
    assert "a2_shared" in inbox_keys(a1, threads, waiting=True)
    assert inbox_keys(a1, threads, channel="call") == {"a1_shared"}
    assert "a1_shared" in inbox_keys(a1, threads, channel="email")
    with pytest.raises(DomainError):
        selectors.inbox_threads(user=a1, channel="pigeon")
    with pytest.raises(DomainError):
        selectors.inbox_threads(user=a1, assignee="somebody")


def test_inbox_pages_by_keyset_without_gaps_or_repeats(world, account, django_assert_max_num_queries) -> None:
    from tests.contacts.factories import ContactFactory

    expected = set()
    for i in range(7):
        contact = ContactFactory(owner=world.a1, team=world.team_a)
        address = f"person{i}@example.com"
        identity(contact, address)
        # Pairs share a timestamp: the id breaks the tie, so no thread is skipped or repeated.
        expected.add(email_from(account, address, minutes=i // 2).thread_id)
    seen: list[int] = []
    cursor = None
    while True:
        with django_assert_max_num_queries(6):
            page = selectors.inbox_threads(user=world.a1, cursor=cursor, limit=3)
        seen += [t.pk for t in page.items]
        times = [(t.last_message_at, t.pk) for t in page.items]
        assert times == sorted(times, reverse=True)
        if page.next is None:
            break
        cursor = page.next
    assert len(seen) == len(set(seen)) == 7 and set(seen) == expected
    with pytest.raises(DomainError):
        selectors.inbox_threads(user=world.a1, cursor="not-a-cursor")


def test_thread_messages_interleave_channels_oldest_first_and_page_back(world, account) -> None:
    identity(world.a1_shared, "ann@example.com")
    first = email_from(account, "ann@example.com", minutes=1)
    call_with(world.a1_shared, minutes=2)
    email_from(account, "ann@example.com", minutes=3)
    page = selectors.thread_messages(user=world.a1, thread=first.thread)
    assert [m.channel for m in page.items] == ["email", "call", "email"] and page.next is None
    newest = selectors.thread_messages(user=world.a1, thread=first.thread, limit=2)
    assert [m.sent_at for m in newest.items] == [at(2), at(3)] and newest.next
    older = selectors.thread_messages(user=world.a1, thread=first.thread, before=newest.next, limit=2)
    assert [m.pk for m in older.items] == [first.pk] and older.next is None


def test_contact_threads_main_first(world, account) -> None:
    identity(world.a1_shared, "ann@example.com")
    main = email_from(account, "ann@example.com").thread
    topic = Thread.objects.create(contact=world.a1_shared, topic="Renewal", last_message_at=at(99))
    assert selectors.contact_threads(user=world.a1, contact=world.a1_shared) == [main, topic]
    with pytest.raises(NotFound):
        selectors.contact_threads(user=world.b1, contact=world.a1_shared)


def test_unmatched_queue_is_visible_through_the_account(world) -> None:
    held = ChannelAccountFactory(
        owner=world.a1, team=world.team_a, unknown_policy=ChannelAccount.UnknownPolicy.UNMATCHED
    )
    message = email_from(held, "stranger@example.org", subject="Who am I")
    assert message.contact_id is None
    assert [m.pk for m in selectors.unmatched_messages(user=world.a2).items] == [message.pk]
    assert selectors.unmatched_messages(user=world.b1).items == []
    assert selectors.message_get(user=world.a2, pk=message.pk) == message
    with pytest.raises(NotFound):
        selectors.message_get(user=world.b1, pk=message.pk)


def test_channel_accounts_and_dead_letters(world, account, b_account) -> None:
    assert list(channel_selectors.channel_account_list(user=world.a2)) == [account]
    with pytest.raises(NotFound):
        channel_selectors.channel_account_get(user=world.a1, pk=b_account.pk)
    from threads.models import RawEvent

    RawEvent.objects.create(channel_account=account, provider_event_id="bad", event_type="email", payload=b"x",
                            status=RawEvent.Status.DEAD, error="NormalizeError: no headers")  # fmt: skip
    RawEvent.objects.create(channel_account=account, provider_event_id="ok", event_type="email", payload=b"x",
                            status=RawEvent.Status.PROCESSED)  # fmt: skip
    assert [e.provider_event_id for e in selectors.account_dead_letters(account)] == ["bad"]


def test_reply_options_default_to_the_channel_and_address_they_wrote_from(world, account) -> None:
    identity(world.a1_shared, "ann@example.com")
    identity(world.a1_shared, "ann.home@example.com")
    identity(world.a1_shared, "+15551234567", kind="phone")
    ChannelAccountFactory(owner=world.a1, team=world.team_a, status=ChannelAccount.Status.PAUSED)
    ChannelAccountFactory(owner=world.b1, team=world.team_b)
    message = email_from(account, "ann.home@example.com", subject="Quote")
    options = selectors.reply_options(user=world.a1, thread=message.thread)
    assert options.accounts == [account]
    assert options.default_account == account
    assert options.default_recipient.address == "ann.home@example.com"
    assert {r.address for r in options.recipients_for(account)} == {"ann@example.com", "ann.home@example.com"}
    assert options.subject == "Re: Quote"
    assert selectors.reply_subject("RE: Quote") == "RE: Quote"
