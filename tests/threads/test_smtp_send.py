"""Replying by e-mail through real servers: aiosmtpd receives what we send, Dovecot holds what the contact writes and
our Sent copy. The full loop: a contact writes in, a rep replies from the thread, the Sent copy is not stored twice,
and the contact's answer comes back into the same thread."""

from __future__ import annotations

import email
import json
import time
from email import policy
from email.message import EmailMessage

import pytest

from contacts.models import Contact, ContactIdentity
from tests.threads.factories import ChannelAccountFactory
from tests.threads.mailservers import Dovecot, MailUser, SmtpServer, email_bytes, free_port
from threads.connectors import AttachmentIn, ChannelUnavailable, OutgoingDraft, Party
from threads.connectors.email.smtp import prepare_email
from threads.models import ChannelAccount, Message, RawEvent, Thread
from threads.services.send import message_deliver, message_send
from threads.tasks import channel_sync, message_deliver_task

pytestmark = pytest.mark.django_db

ANN = "ann@customer.example"


def identity(contact: Contact, address: str) -> ContactIdentity:
    return ContactIdentity.objects.create(contact=contact, kind="email", value=address, normalized=address)


def account_for(world, smtp: SmtpServer, *, dovecot: Dovecot | None = None, user: MailUser | None = None,  # type: ignore[no-untyped-def]
                credentials: dict | None = None, **config):  # fmt: skip
    base = {"smtp_host": smtp.host, "smtp_port": smtp.port, "smtp_security": "none"}
    if dovecot is not None:
        base |= {"imap_host": dovecot.host, "imap_port": dovecot.port, "imap_security": "none"}
    creds = credentials or ({"username": user.name, "password": user.password} if user else {})
    return ChannelAccountFactory(
        owner=world.a1, team=world.team_a, name="Sales", address=user.address if user else "sales@ourco.example",
        config=base | config, credentials=json.dumps(creds),
    )  # fmt: skip


def received(smtp: SmtpServer, index: int = -1) -> EmailMessage:
    return email.message_from_bytes(smtp.messages[index].data, policy=policy.default)  # type: ignore[return-value]


def inbound_message(world, account: ChannelAccount, *, external_id: str = "ask1@customer") -> Message:  # type: ignore[no-untyped-def]
    """A contact's mail already in the thread (stored straight through the pipeline, no IMAP needed)."""
    from django.db import transaction

    from tests.threads.factories import inbound_email
    from threads.services.pipeline import ingest_batch

    identity(world.a1_shared, ANN)
    with transaction.atomic():
        result = ingest_batch(
            account=account, messages=[inbound_email(ANN, subject="Pricing", external_id=external_id)]
        )
    message = Message.objects.get(pk=result.created[0])
    message.meta = {"references": ["root@customer"]}
    message.save(update_fields=["meta"])
    return message


def test_full_loop_contact_writes_rep_replies_contact_answers(
    world, dovecot: Dovecot, mail_user: MailUser, smtp_server: SmtpServer
) -> None:
    identity(world.a1_shared, ANN)
    account = account_for(world, smtp_server, dovecot=dovecot, user=mail_user)
    dovecot.append(
        mail_user, "INBOX",
        email_bytes(sender=ANN, name="Ann Shared", to=mail_user.address, subject="Pricing", message_id="ask1@customer",
                    body="What does the big plan cost?"),
    )  # fmt: skip
    assert channel_sync(account.pk) == "ok"
    inbound = Message.objects.get(external_id="ask1@customer")
    thread = inbound.thread
    assert thread.contact == world.a1_shared

    sent = message_send(
        actor=world.a1, thread=thread, account=account, to=[Party("email", ANN, "Ann Shared")],
        body_text="It is 100 a month.", reply_to=inbound,
    )  # fmt: skip

    # Stored in the thread at once, queued, with the Message-ID that names the thread.
    assert sent.thread == thread and sent.delivery == Message.Delivery.QUEUED and sent.direction == "outbound"
    assert sent.external_id.startswith(f"tl.{thread.pk}.") and sent.external_id.endswith("@threadline.invalid")
    assert sent.subject == "Re: Pricing" and sent.provider_thread_key == inbound.provider_thread_key
    assert message_deliver(message_id=sent.pk) == Message.Delivery.SENT
    assert message_deliver(message_id=sent.pk) == Message.Delivery.SENT  # a retried task never sends twice
    assert len(smtp_server.messages) == 1
    mail = received(smtp_server)
    assert mail["Message-ID"] == f"<{sent.external_id}>"
    assert mail["In-Reply-To"] == "<ask1@customer>" and mail["References"] == "<ask1@customer>"
    assert mail["Subject"] == "Re: Pricing" and mail["From"].addresses[0].addr_spec == mail_user.address
    assert mail.get_content().strip() == "It is 100 a month."
    assert smtp_server.messages[0].rcpt_tos == [ANN] and smtp_server.messages[0].mail_from == mail_user.address

    # The server files what we sent in Sent; the next poll finds it there and stores nothing new.
    dovecot.append(mail_user, "Sent", smtp_server.messages[0].data)
    assert channel_sync(account.pk) == "ok"
    sent.refresh_from_db()
    assert Message.objects.count() == 2 and Thread.objects.get(pk=thread.pk).message_count == 2
    assert sent.delivery == Message.Delivery.SENT and sent.seen_by == [account.pk]
    assert RawEvent.objects.get(meta__folder="Sent").status == RawEvent.Status.PROCESSED

    # Ann answers (a minute later: Date headers count whole seconds); her client quotes our id in References.
    dovecot.append(
        mail_user, "INBOX",
        email_bytes(sender=ANN, to=mail_user.address, subject="Re: Pricing", message_id="ask2@customer",
                    in_reply_to=sent.external_id, references=["ask1@customer", sent.external_id], body="Deal.",
                    date=time.time() + 60),
    )  # fmt: skip
    assert channel_sync(account.pk) == "ok"
    answer = Message.objects.get(external_id="ask2@customer")
    assert answer.thread == thread and answer.direction == "inbound"
    thread.refresh_from_db()
    assert thread.message_count == 3 and thread.awaiting_reply and thread.status == Thread.Status.OPEN


def test_reply_delivers_cc_and_attachments(world, smtp_server: SmtpServer, settings, tmp_path) -> None:  # type: ignore[no-untyped-def]
    settings.MEDIA_ROOT = tmp_path
    account = account_for(world, smtp_server)
    inbound = inbound_message(world, account)
    pdf = b"%PDF-1.4\n" + bytes(range(256)) * 40
    sent = message_send(
        actor=world.a1, thread=inbound.thread, account=account, to=[Party("email", ANN, "Ann Shared")],
        cc=[Party("email", "boss@customer.example", "Bo Boss")], subject="Our offer", body_text="Attached.",
        attachments=[AttachmentIn("offer.pdf", "application/pdf", pdf, len(pdf)),
                     AttachmentIn("notes.txt", "text/plain", "Grüße\n".encode(), 7)],
        reply_to=inbound,
    )  # fmt: skip
    assert sent.attachments.count() == 2
    assert message_deliver(message_id=sent.pk) == Message.Delivery.SENT

    got = smtp_server.messages[0]
    assert sorted(got.rcpt_tos) == ["ann@customer.example", "boss@customer.example"]
    mail = received(smtp_server)
    assert [a.addr_spec for a in mail["Cc"].addresses] == ["boss@customer.example"]
    assert mail["Cc"].addresses[0].display_name == "Bo Boss" and mail["Subject"] == "Our offer"
    assert mail["In-Reply-To"] == "<ask1@customer>" and mail["References"] == "<root@customer> <ask1@customer>"
    files = {part.get_filename(): part for part in mail.iter_attachments()}
    assert files["offer.pdf"].get_content_type() == "application/pdf" and files["offer.pdf"].get_content() == pdf
    assert files["notes.txt"].get_content() == "Grüße\n" and files["notes.txt"].get_content_charset() == "utf-8"
    assert mail.get_body(("plain",)).get_content().strip() == "Attached."


def test_refused_smtp_login_fails_the_message_and_flags_the_account(world, smtp_auth_server: SmtpServer) -> None:
    creds = {"username": "imap-user", "password": "imap-pass", "smtp_username": "sales", "smtp_password": "wrong"}
    account = account_for(world, smtp_auth_server, credentials=creds)
    inbound = inbound_message(world, account)
    sent = message_send(actor=world.a1, thread=inbound.thread, account=account, to=[Party("email", ANN)],
                        body_text="Hello", reply_to=inbound)  # fmt: skip

    assert message_deliver(message_id=sent.pk) == Message.Delivery.FAILED

    sent.refresh_from_db()
    account.refresh_from_db()
    assert (
        "SMTP login refused for sales" in sent.meta["error"]
        and "check the user name and password" in sent.meta["error"]
    )
    assert account.status == ChannelAccount.Status.NEEDS_REAUTH and "SMTP login refused" in account.last_error
    assert smtp_auth_server.messages == []


def test_smtp_login_with_the_right_password_delivers(world, smtp_auth_server: SmtpServer) -> None:
    account = account_for(world, smtp_auth_server, credentials={"username": "sales", "password": "smtp-secret"})
    inbound = inbound_message(world, account)
    sent = message_send(actor=world.a1, thread=inbound.thread, account=account, to=[Party("email", ANN)],
                        body_text="Hello", reply_to=inbound)  # fmt: skip
    assert message_deliver(message_id=sent.pk) == Message.Delivery.SENT
    assert len(smtp_auth_server.messages) == 1


def test_temporary_refusal_keeps_the_message_queued_until_a_retry_succeeds(world, smtp_server: SmtpServer) -> None:
    account = account_for(world, smtp_server)
    inbound = inbound_message(world, account)
    sent = message_send(actor=world.a1, thread=inbound.thread, account=account, to=[Party("email", ANN)],
                        body_text="Hello", reply_to=inbound)  # fmt: skip
    smtp_server.handler.reject_with = "451 4.3.0 Mailbox busy, try again later"

    with pytest.raises(ChannelUnavailable, match="try again later"):
        message_deliver(message_id=sent.pk)
    sent.refresh_from_db()
    assert sent.delivery == Message.Delivery.QUEUED and smtp_server.messages == []

    smtp_server.handler.reject_with = ""
    assert message_deliver(message_id=sent.pk) == Message.Delivery.SENT
    assert len(smtp_server.messages) == 1


def test_permanently_refused_recipient_fails_after_the_last_retry(world, smtp_server: SmtpServer) -> None:
    account = account_for(world, smtp_server)
    inbound = inbound_message(world, account)
    sent = message_send(actor=world.a1, thread=inbound.thread, account=account,
                        to=[Party("email", "gone@customer.example")], body_text="Hello", reply_to=inbound)  # fmt: skip
    smtp_server.handler.refuse_rcpt["gone@customer.example"] = "550 5.1.1 No such user"

    # The last allowed attempt: the task records the failure instead of retrying again.
    outcome = message_deliver_task.apply(args=[sent.pk], retries=message_deliver_task.max_retries)
    assert outcome.get() == "failed"
    sent.refresh_from_db()
    assert sent.delivery == Message.Delivery.FAILED
    assert "refused every recipient" in sent.meta["error"] and "550 5.1.1 No such user" in sent.meta["error"]
    assert smtp_server.messages == []


def test_unreachable_smtp_server_is_a_transient_error(world, smtp_server: SmtpServer) -> None:
    account = account_for(world, smtp_server, smtp_port=free_port())
    inbound = inbound_message(world, account)
    sent = message_send(actor=world.a1, thread=inbound.thread, account=account, to=[Party("email", ANN)],
                        body_text="Hello", reply_to=inbound)  # fmt: skip
    with pytest.raises(ChannelUnavailable, match="Cannot reach the mail server"):
        message_deliver(message_id=sent.pk)
    sent.refresh_from_db()
    assert sent.delivery == Message.Delivery.QUEUED


def test_sent_copy_appended_to_imap_is_not_stored_twice(
    world, dovecot: Dovecot, mail_user: MailUser, smtp_server: SmtpServer
) -> None:
    account = account_for(world, smtp_server, dovecot=dovecot, user=mail_user, append_sent=True)
    inbound = inbound_message(world, account)
    sent = message_send(actor=world.a1, thread=inbound.thread, account=account, to=[Party("email", ANN)],
                        body_text="Hello", reply_to=inbound)  # fmt: skip
    assert message_deliver(message_id=sent.pk) == Message.Delivery.SENT
    sent.refresh_from_db()
    assert sent.meta["sent_copy"] == "saved" and dovecot.status(mail_user, "Sent")["messages"] == 1

    assert channel_sync(account.pk) == "ok"
    assert Message.objects.count() == 2
    assert Message.objects.get(pk=sent.pk).thread == inbound.thread


def test_prepare_email_threads_replies_and_starts_new_conversations(world) -> None:
    account = ChannelAccountFactory(owner=world.a1, team=world.team_a)
    thread = Thread.objects.create(contact=world.a1_shared)
    fresh = prepare_email(account, OutgoingDraft(to=[Party("email", ANN)], subject="Hello"), thread, None)
    assert fresh.external_id.startswith(f"tl.{thread.pk}.") and fresh.provider_thread_key == fresh.external_id
    assert fresh.in_reply_to == "" and fresh.references == [] and fresh.from_address == account.address

    # Replying to our own earlier reply: its references come from the draft we stored, and "Re:" is not doubled.
    ours = Message(
        channel="email", external_id=fresh.external_id, subject="Re: Hello", provider_thread_key="root@customer",
        meta={"draft": {"references": ["root@customer", "ask@customer"]}},
    )  # fmt: skip
    again = prepare_email(account, OutgoingDraft(to=[Party("email", ANN)]), thread, ours)
    assert again.in_reply_to == fresh.external_id and again.subject == "Re: Hello"
    assert again.references == ["root@customer", "ask@customer", fresh.external_id]
    assert again.provider_thread_key == "root@customer" and again.external_id != fresh.external_id
