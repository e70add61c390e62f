"""manage.py import_mail: mbox, Maildir and .eml land in the right threads once; broken mail is dead-lettered."""

from __future__ import annotations

import hashlib
import mailbox
import os
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from contacts.models import Contact, ContactIdentity
from tests.threads.factories import ChannelAccountFactory
from threads.models import ChannelAccount, Message, RawEvent, Thread

pytestmark = pytest.mark.django_db

SAMPLES = Path(__file__).parent / "mail_samples"


@pytest.fixture
def account(world) -> ChannelAccount:
    return ChannelAccountFactory(owner=world.a1, team=world.team_a, address="sales@ourco.example")


@pytest.fixture
def ann(world) -> Contact:
    ContactIdentity.objects.create(contact=world.a1_shared, kind="email", value="Ann@Customer.example",
                                   normalized="ann@customer.example")  # fmt: skip
    return world.a1_shared


def email(sender: str, to: str, subject: str, message_id: str, body: str, *, date: str, reply_to: str = "",
          references: str = "") -> bytes:  # fmt: skip
    lines = [f"From: {sender}", f"To: {to}", f"Subject: {subject}", f"Date: {date}", f"Message-ID: <{message_id}>"]
    if reply_to:
        lines.append(f"In-Reply-To: <{reply_to}>")
    if references:
        lines.append(f"References: {references}")
    lines.append("Content-Type: text/plain; charset=utf-8")
    return ("\n".join(lines) + "\n\n" + body + "\n").encode("utf-8")


THREAD = [
    email("Ann <ann@customer.example>", "sales@ourco.example", "Seats", "t1@customer.example",
          "Can we get 40 seats?\nFrom now on we grow.", date="Mon, 03 Mar 2025 09:00:00 +0000"),
    email("Sales <sales@ourco.example>", "Ann <ann@customer.example>", "Re: Seats", "t2@ourco.example",
          "Yes, quote attached.\n\n> Can we get 40 seats?", date="Mon, 03 Mar 2025 10:00:00 +0000",
          reply_to="t1@customer.example", references="<t1@customer.example>"),
    email("Ann <ann@customer.example>", "sales@ourco.example", "Re: Seats", "t3@customer.example",
          "Thanks, ordered.", date="Mon, 03 Mar 2025 11:00:00 +0000", reply_to="t2@ourco.example",
          references="<t1@customer.example> <t2@ourco.example>"),
]  # fmt: skip
MALFORMED = b"Subject: nobody sent this\nDate: Mon, 03 Mar 2025 12:00:00 +0000\n\nno sender here\n"


def make_mbox(path: Path, messages: list[bytes]) -> Path:
    box = mailbox.mbox(str(path), create=True)
    for raw in messages:
        box.add(raw)
    box.flush()
    box.close()
    return path


def run(account: ChannelAccount, *paths: Path) -> str:
    out = StringIO()
    call_command("import_mail", "--account", str(account.pk), *[str(p) for p in paths], stdout=out, stderr=out)
    return out.getvalue()


def test_mbox_thread_lands_in_the_contacts_thread_and_broken_mail_is_dead_lettered(account, ann, tmp_path) -> None:
    path = make_mbox(tmp_path / "export.mbox", [*THREAD, MALFORMED])
    output = run(account, path)
    assert "Files: 1. Messages read: 4. New messages: 3. Duplicates: 0. Dead-lettered: 1." in output
    assert "no sender" in output
    messages = list(Message.objects.order_by("sent_at"))
    assert [m.external_id for m in messages] == ["t1@customer.example", "t2@ourco.example", "t3@customer.example"]
    assert [m.direction for m in messages] == ["inbound", "outbound", "inbound"]
    assert {m.contact for m in messages} == {ann}
    assert len({m.thread_id for m in messages}) == 1
    assert {m.provider_thread_key for m in messages} == {"t1@customer.example"}
    thread = messages[0].thread
    assert thread.message_count == 3 and thread.awaiting_reply and thread.last_subject == "Re: Seats"
    assert messages[0].body_text == "Can we get 40 seats?\nFrom now on we grow."  # a body line starting "From "
    dead = RawEvent.objects.get(status=RawEvent.Status.DEAD)
    assert "no sender" in dead.error and bytes(dead.payload).startswith(b"Subject: nobody sent this")
    for event in RawEvent.objects.all():  # stored byte for byte, keyed by the hash of those bytes
        assert event.provider_event_id == "sha256:" + hashlib.sha256(bytes(event.payload)).hexdigest()
        assert event.meta["source"] == "import" and event.content_type == "message/rfc822"


def test_running_the_same_import_again_creates_nothing(account, ann, tmp_path) -> None:
    path = make_mbox(tmp_path / "export.mbox", [*THREAD, MALFORMED])
    run(account, path)
    counts = (Message.objects.count(), RawEvent.objects.count(), Thread.objects.count(), Contact.objects.count())
    output = run(account, path)
    assert "New messages: 0. Duplicates: 4. Dead-lettered: 0." in output
    assert (
        Message.objects.count(),
        RawEvent.objects.count(),
        Thread.objects.count(),
        Contact.objects.count(),
    ) == counts
    # The same mails from another source (other bytes, same Message-IDs) are duplicates too.
    eml = tmp_path / "t1.eml"
    eml.write_bytes(THREAD[0].replace(b"\n", b"\r\n"))
    assert "New messages: 0. Duplicates: 1." in run(account, eml)
    assert Message.objects.count() == counts[0]


def test_maildir_and_eml_folder_import_with_unknown_senders_becoming_leads(account, ann, tmp_path) -> None:
    maildir = mailbox.Maildir(str(tmp_path / "Maildir"), create=True)
    maildir.add(THREAD[0])
    maildir.add(email("Nina New <nina@prospect.example>", "sales@ourco.example", "Hello", "n1@prospect.example",
                      "Who are you?", date="Tue, 04 Mar 2025 09:00:00 +0000"))  # fmt: skip
    maildir.close()
    folder = tmp_path / "emls"
    folder.mkdir()
    (folder / "a.eml").write_bytes((SAMPLES / "nested.eml").read_bytes())
    (folder / "b.EML").write_bytes((SAMPLES / "plain.eml").read_bytes())
    (folder / "notes.txt").write_text("not mail")
    output = run(account, tmp_path / "Maildir", folder, SAMPLES / "html_only.eml")
    assert "Files: 4. Messages read: 5. New messages: 5." in output and "notes.txt" in output
    lead = Contact.objects.get(identities__normalized="nina@prospect.example")
    assert lead.lifecycle_stage == Contact.Stage.LEAD and lead.owner == account.owner
    assert Message.objects.get(external_id="n1@prospect.example").thread.contact == lead
    nested = Message.objects.get(external_id="nested-4@customer.example")
    assert nested.contact == ann and nested.attachments.count() == 5
    assert Message.objects.get(external_id="html-3@customer.example").body_text.startswith("Spring update")


def test_replies_imported_later_follow_their_conversation_into_its_topic(account, ann, tmp_path) -> None:
    first = tmp_path / "first.eml"
    first.write_bytes(THREAD[0])
    run(account, first)
    topic = Thread.objects.create(contact=ann, topic="Seats deal")
    Message.objects.update(thread=topic)
    other = email("Ann <ann@customer.example>", "sales@ourco.example", "Other", "o1@customer.example", "Unrelated",
                  date="Tue, 04 Mar 2025 09:00:00 +0000")  # fmt: skip
    run(account, make_mbox(tmp_path / "later.mbox", [THREAD[1], THREAD[2], other]))
    assert set(Message.objects.filter(provider_thread_key="t1@customer.example").values_list("thread", flat=True)) == {
        topic.pk
    }
    assert Message.objects.get(external_id="o1@customer.example").thread.topic == ""


def test_unknown_account_or_unreadable_path_is_a_clear_error(account, tmp_path) -> None:
    with pytest.raises(CommandError, match="No channel account with id 999999"):
        call_command("import_mail", "--account", "999999", str(SAMPLES / "plain.eml"))
    good = SAMPLES / "plain.eml"
    with pytest.raises(CommandError, match="no such file"):
        call_command("import_mail", "--account", str(account.pk), str(good), str(tmp_path / "missing.mbox"))
    assert RawEvent.objects.count() == 0  # checked before anything is imported
    webhook = ChannelAccountFactory(owner=account.owner, kind=ChannelAccount.Kind.WEBHOOK, slug="crm")
    with pytest.raises(CommandError, match="not an e-mail account"):
        call_command("import_mail", "--account", str(webhook.pk), str(good))
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(CommandError, match="not a regular file"):
        call_command("import_mail", "--account", str(account.pk), str(fifo))


def test_file_without_read_permission_is_a_clear_error(account, tmp_path, monkeypatch) -> None:
    locked = tmp_path / "locked.eml"
    locked.write_bytes(b"From: a@b.example\n\nx\n")
    # CI runs as root, for whom permission bits never stop a read: ask the OS question the command asks, answered
    # as it would be for an ordinary user of a chmod 0 file.
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if str(p) == str(locked) else real_access(p, mode))
    with pytest.raises(CommandError, match="not readable"):
        call_command("import_mail", "--account", str(account.pk), str(locked))
