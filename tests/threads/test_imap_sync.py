"""IMAP polling against a real Dovecot: threads filled, cursors per folder, resync, outages and refused logins."""

from __future__ import annotations

import json
import re

import pytest

from contacts.models import Contact, ContactIdentity
from tests.threads.factories import ChannelAccountFactory
from tests.threads.mailservers import Dovecot, MailUser, email_bytes, free_port
from threads.models import ChannelAccount, Message, RawEvent, Thread
from threads.tasks import channel_sync, channel_sync_task, channels_poll_due_task

pytestmark = pytest.mark.django_db


def mailbox_account(
    dovecot: Dovecot, user: MailUser, *, owner, team, password: str | None = None, **config
) -> ChannelAccount:  # type: ignore[no-untyped-def]
    return ChannelAccountFactory(
        owner=owner, team=team, address=user.address, name=f"Mailbox {user.name}",
        config={"imap_host": dovecot.host, "imap_port": dovecot.port, "imap_security": "none", **config},
        credentials=json.dumps({"username": user.name, "password": password or user.password}),
    )  # fmt: skip


def identity(contact: Contact, address: str) -> ContactIdentity:
    return ContactIdentity.objects.create(contact=contact, kind="email", value=address, normalized=address)


def seen_flags(dovecot: Dovecot, user: MailUser) -> list[bool]:
    with dovecot.client(user) as conn:
        conn.select("INBOX", readonly=True)
        _, data = conn.uid("FETCH", "1:*", "(FLAGS)")
    return [b"\\Seen" in item for item in data if isinstance(item, bytes)]


def test_polling_files_mail_into_the_senders_threads(world, dovecot: Dovecot, mail_user: MailUser) -> None:
    identity(world.a1_shared, "ann@customer.example")
    dovecot.append(
        mail_user, "INBOX",
        email_bytes(sender="ann@customer.example", to=mail_user.address, subject="Quote", message_id="q1@customer"),
        email_bytes(sender="ann@customer.example", to=mail_user.address, subject="Re: Quote", message_id="q2@customer",
                    in_reply_to="q1@customer", references=["q1@customer"]),
        email_bytes(sender="new.person@elsewhere.example", to=mail_user.address, name="New Person",
                    subject="Who are you?", message_id="n1@elsewhere"),
    )  # fmt: skip
    account = mailbox_account(dovecot, mail_user, owner=world.a1, team=world.team_a)

    assert channel_sync(account.pk) == "ok"

    account.refresh_from_db()
    assert account.status == ChannelAccount.Status.ACTIVE and account.last_error == ""
    inbox = dovecot.status(mail_user, "INBOX")
    # The Sent folder does not exist on this server: it is skipped, not an error.
    assert account.cursor == {"folders": {"INBOX": {"uidvalidity": inbox["uidvalidity"], "last_uid": 3}}}
    assert account.reported_count == 3 and account.stored_count == 3
    ann = Message.objects.filter(contact=world.a1_shared).order_by("sent_at", "pk")
    assert [m.external_id for m in ann] == ["q1@customer", "q2@customer"]
    assert {m.thread_id for m in ann} == {Thread.objects.get(contact=world.a1_shared, topic="").pk}
    assert {m.provider_thread_key for m in ann} == {"q1@customer"}
    assert all(m.direction == "inbound" and m.meta["folder"] == "INBOX" for m in ann)
    lead = Contact.objects.get(identities__normalized="new.person@elsewhere.example")
    assert (lead.first_name, lead.last_name, lead.lifecycle_stage, lead.owner) == ("New", "Person", "lead", world.a1)
    assert Message.objects.get(external_id="n1@elsewhere").thread.contact == lead
    # Syncing reads with BODY.PEEK: nobody's mail turns "read" because the CRM looked at it.
    assert seen_flags(dovecot, mail_user) == [False, False, False]


def test_a_second_poll_fetches_only_what_arrived_since(world, dovecot: Dovecot, mail_user: MailUser) -> None:
    dovecot.append(mail_user, "INBOX", email_bytes(sender="ann@customer.example", to=mail_user.address))
    account = mailbox_account(dovecot, mail_user, owner=world.a1, team=world.team_a)
    assert channel_sync(account.pk) == "ok"
    assert channel_sync(account.pk) == "ok"
    assert RawEvent.objects.filter(channel_account=account).count() == 1
    dovecot.append(mail_user, "INBOX", email_bytes(sender="bob@customer.example", to=mail_user.address, body="New"))
    assert channel_sync(account.pk) == "ok"
    account.refresh_from_db()
    assert account.cursor["folders"]["INBOX"]["last_uid"] == 2
    events = RawEvent.objects.filter(channel_account=account).order_by("pk")
    assert [e.meta["uid"] for e in events] == [1, 2]
    assert all(e.status == RawEvent.Status.PROCESSED and e.provider_event_id.startswith("sha256:") for e in events)
    assert Message.objects.filter(channel_account=account).count() == 2


def test_sent_folder_mail_is_outbound_and_lands_in_the_recipients_thread(
    world, dovecot: Dovecot, mail_user: MailUser
) -> None:
    identity(world.a2_shared, "amy@customer.example")
    dovecot.append(
        mail_user, "Sent Items",
        email_bytes(sender=mail_user.address, to="Amy <amy@customer.example>", subject="Proposal", message_id="s1@us"),
    )  # fmt: skip
    account = mailbox_account(
        dovecot, mail_user, owner=world.a1, team=world.team_a, sent_folder="Sent Items", folders=["INBOX", "Sent Items"]
    )
    assert channel_sync(account.pk) == "ok"
    message = Message.objects.get(external_id="s1@us")
    assert message.direction == "outbound" and message.contact == world.a2_shared
    assert message.meta["folder"] == "Sent Items"
    account.refresh_from_db()
    assert set(account.cursor["folders"]) == {"INBOX", "Sent Items"}
    assert account.cursor["folders"]["INBOX"]["last_uid"] == 0  # empty, but its UIDVALIDITY is remembered


def test_same_mail_in_two_mailboxes_is_stored_once_and_seen_by_both(world, dovecot: Dovecot) -> None:
    identity(world.a1_shared, "ann@customer.example")
    alice, bob = dovecot.add_user(), dovecot.add_user()
    raw = email_bytes(sender="ann@customer.example", to=f"{alice.address}, {bob.address}", message_id="both@customer")
    dovecot.append(alice, "INBOX", raw)
    dovecot.append(bob, "INBOX", raw)
    first = mailbox_account(dovecot, alice, owner=world.a1, team=world.team_a)
    second = mailbox_account(dovecot, bob, owner=world.a2, team=world.team_a)
    assert channel_sync(first.pk) == "ok"
    assert channel_sync(second.pk) == "ok"
    message = Message.objects.get()
    assert message.external_id == "both@customer" and message.channel_account == first
    assert sorted(message.seen_by) == sorted([first.pk, second.pk])
    assert RawEvent.objects.filter(status=RawEvent.Status.PROCESSED).count() == 2  # each mailbox kept its bytes


def test_uidvalidity_change_resyncs_the_folder_without_duplicates(world, dovecot: Dovecot, mail_user: MailUser) -> None:
    dovecot.append(
        mail_user, "INBOX", *[email_bytes(sender=f"c{i}@customer.example", to=mail_user.address) for i in range(5)]
    )
    account = mailbox_account(dovecot, mail_user, owner=world.a1, team=world.team_a, batch_size=2)
    assert channel_sync(account.pk) == "ok"
    account.refresh_from_db()
    old = account.cursor["folders"]["INBOX"]
    assert old["last_uid"] == 5 and Message.objects.count() == 5

    dovecot.reset_uidvalidity(mail_user, "INBOX")
    dovecot.append(mail_user, "INBOX", email_bytes(sender="late@customer.example", to=mail_user.address))
    new_validity = dovecot.status(mail_user, "INBOX")["uidvalidity"]
    assert new_validity != old["uidvalidity"]

    assert channel_sync(account.pk) == "ok"
    account.refresh_from_db()
    assert account.cursor["folders"]["INBOX"] == {"uidvalidity": new_validity, "last_uid": 6}
    # The five known mails were read again (same bytes → same raw events) and stored nothing new; the late one lands.
    assert Message.objects.count() == 6
    assert RawEvent.objects.filter(channel_account=account).count() == 6
    assert Message.objects.filter(author_address="late@customer.example").count() == 1


def test_server_going_down_mid_sync_resumes_from_the_last_committed_batch(
    world, dovecot: Dovecot, mail_user: MailUser, monkeypatch: pytest.MonkeyPatch
) -> None:
    total, batch = 500, 100
    dovecot.append(
        mail_user, "INBOX",
        *[email_bytes(sender=f"c{i % 7}@customer.example", to=mail_user.address, subject=f"Mail {i}",
                      message_id=f"m{i}@customer") for i in range(total)],
    )  # fmt: skip
    account = mailbox_account(dovecot, mail_user, owner=world.a1, team=world.team_a, batch_size=batch)
    from threads.services import pipeline

    real_ingest = pipeline.ingest_fetched
    calls: list[int] = []

    def ingest_then_crash(**kwargs):  # type: ignore[no-untyped-def]
        result = real_ingest(**kwargs)
        calls.append(len(kwargs["events"]))
        if len(calls) == 1:
            dovecot.crash()  # the batch is committed; the next FETCH finds the server gone
        return result

    monkeypatch.setattr(pipeline, "ingest_fetched", ingest_then_crash)

    assert channel_sync(account.pk) == "failing"

    account.refresh_from_db()
    assert calls == [batch]
    assert account.status == ChannelAccount.Status.FAILING and account.consecutive_failures == 1
    assert "IMAP server" in account.last_error and account.next_sync_at is not None
    assert account.cursor["folders"]["INBOX"]["last_uid"] == batch
    assert Message.objects.filter(channel_account=account).count() == batch
    assert RawEvent.objects.filter(channel_account=account).count() == batch

    # Back up; the back-off is over.
    dovecot.start()
    ChannelAccount.objects.filter(pk=account.pk).update(next_sync_at=None)
    assert channel_sync(account.pk) == "ok"

    account.refresh_from_db()
    assert (account.status, account.consecutive_failures, account.last_error) == ("active", 0, "")
    assert account.cursor["folders"]["INBOX"]["last_uid"] == total
    ids = list(Message.objects.filter(channel_account=account).values_list("external_id", flat=True))
    assert len(ids) == total and set(ids) == {f"m{i}@customer" for i in range(total)}
    assert RawEvent.objects.filter(channel_account=account).count() == total
    assert account.stored_count == total and account.reported_count == total
    assert calls == [batch] + [batch] * ((total - batch) // batch)


def test_refused_password_needs_reauth_and_stops_polling(
    world, dovecot: Dovecot, mail_user: MailUser, monkeypatch: pytest.MonkeyPatch
) -> None:
    dovecot.append(mail_user, "INBOX", email_bytes(sender="ann@customer.example", to=mail_user.address))
    account = mailbox_account(dovecot, mail_user, owner=world.a1, team=world.team_a, password="wrong")

    assert channel_sync(account.pk) == "needs_reauth"

    account.refresh_from_db()
    assert account.status == ChannelAccount.Status.NEEDS_REAUTH
    assert re.search(
        r"IMAP login refused for user\d+ on .*check the user name and password \(\[AUTH", account.last_error
    )
    assert Message.objects.count() == 0 and account.cursor == {}
    queued: list[int] = []
    monkeypatch.setattr(channel_sync_task, "delay", lambda account_id: queued.append(account_id))
    channels_poll_due_task()
    assert account.pk not in queued
    assert channel_sync(account.pk) == "skipped"

    dovecot.forget_failed_logins()
    # Fixing the password and re-activating resumes where nothing was read.
    account.credentials = json.dumps({"username": mail_user.name, "password": mail_user.password})
    account.status = ChannelAccount.Status.ACTIVE
    account.save()
    assert channel_sync(account.pk) == "ok"
    assert Message.objects.count() == 1


def test_unreachable_server_backs_off(world, dovecot: Dovecot, mail_user: MailUser) -> None:
    account = mailbox_account(dovecot, mail_user, owner=world.a1, team=world.team_a, imap_port=free_port())
    assert channel_sync(account.pk) == "failing"
    assert channel_sync(account.pk) == "failing"
    account.refresh_from_db()
    assert account.status == ChannelAccount.Status.FAILING and account.consecutive_failures == 2
    assert account.last_error.startswith("Cannot reach the IMAP server")
    assert account.next_sync_at is not None and account.cursor == {}


def test_sparse_uids_are_read_in_search_windows_and_size_bounded_batches(
    world, dovecot: Dovecot, mail_user: MailUser, monkeypatch: pytest.MonkeyPatch
) -> None:
    from threads.connectors.email import imap
    from threads.services import pipeline

    dovecot.append(
        mail_user, "INBOX",
        *[email_bytes(sender="ann@customer.example", to=mail_user.address, message_id=f"w{i}@customer")
          for i in range(1, 11)],
    )  # fmt: skip
    with dovecot.client(mail_user) as conn:  # UIDs 4, 5 and 9 expunged: the folder has gaps
        conn.select("INBOX")
        conn.uid("STORE", "4:5,9", "+FLAGS.SILENT", r"(\Deleted)")
        conn.expunge()
    monkeypatch.setattr(imap, "SEARCH_WINDOW", 3)
    monkeypatch.setattr(imap, "BATCH_BYTES", 1)  # every message is a batch of its own
    batches: list[list[int]] = []
    real_ingest = pipeline.ingest_fetched

    def record(**kwargs):  # type: ignore[no-untyped-def]
        batches.append([e.meta["uid"] for e in kwargs["events"]])
        return real_ingest(**kwargs)

    monkeypatch.setattr(pipeline, "ingest_fetched", record)
    account = mailbox_account(dovecot, mail_user, owner=world.a1, team=world.team_a)
    assert channel_sync(account.pk) == "ok"
    assert batches == [[1], [2], [3], [6], [7], [8], [10]]
    account.refresh_from_db()
    assert account.cursor["folders"]["INBOX"]["last_uid"] == 10 and account.reported_count == 7
    assert sorted(Message.objects.values_list("external_id", flat=True)) == sorted(
        f"w{i}@customer" for i in (1, 2, 3, 6, 7, 8, 10)
    )


def test_uid_sets_are_compressed() -> None:
    from threads.connectors.email.imap import _uid_set

    assert _uid_set([1, 2, 3, 5, 7, 8]) == "1:3,5,7:8" and _uid_set([4]) == "4"
