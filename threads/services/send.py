"""Replying from a thread through a channel: store first, deliver from a Celery task.

``message_send`` stores the outbound message in the thread at once (delivery "queued"), with the provider id
decided before sending (an e-mail Message-ID that encodes the thread), so the copy the provider later hands back
(IMAP Sent folder, a pulled tweet) deduplicates against it. ``message_deliver`` sends it exactly once per queued
state: a worker that dies mid-send leaves it "queued" and the retried task sends it; a sent one is never resent.
"""

from __future__ import annotations

import logging
from typing import Any

from django.db import transaction
from django.utils import timezone

from accounts.models import User
from accounts.selectors import can_see
from contacts.selectors.consent import contact_reply_block_reason
from crm.errors import DomainError, NotFound
from threads.connectors import (
    AttachmentIn,
    ChannelAuthError,
    DeliveryRefused,
    NormalizedMessage,
    OutgoingDraft,
    Party,
    preparer_for,
    sender_for,
)
from threads.models import Channel, ChannelAccount, Direction, Message, Thread
from threads.services.pipeline import ingest_batch

log = logging.getLogger(__name__)

ACCOUNT_CHANNEL = {
    ChannelAccount.Kind.EMAIL: Channel.EMAIL,
    ChannelAccount.Kind.TWITTER: Channel.TWITTER,
    ChannelAccount.Kind.FACEBOOK: Channel.FACEBOOK,
    ChannelAccount.Kind.SMS: Channel.SMS,
}
MAX_ATTACHMENT_BYTES = 20 * 1024 * 1024


def _party_json(p: Party) -> dict[str, str]:
    return {"kind": p.kind, "address": p.address, "name": p.name, "role": p.role, "handle": p.handle}


@transaction.atomic
def message_send(
    *,
    actor: User,
    thread: Thread,
    account: ChannelAccount,
    to: list[Party],
    body_text: str,
    subject: str = "",
    cc: list[Party] | None = None,
    attachments: list[AttachmentIn] | None = None,
    reply_to: Message | None = None,
    mode: str = "",
) -> Message:
    """Store an outbound message in ``thread`` and queue its delivery through ``account``. ``mode`` is a channel's
    way of answering: on X, "" is a public reply to the tweet answered and "dm" a direct message."""
    if not can_see(actor, thread.contact):
        raise NotFound("No such thread.")
    if not can_see(actor, account):
        raise DomainError("You cannot send from this account.", code="account_not_visible")
    if account.status in (ChannelAccount.Status.NEEDS_REAUTH, ChannelAccount.Status.PAUSED):
        raise DomainError(
            f"{account.name} is {account.get_status_display().lower()}; fix it on its channel page first.",
            code="account_unavailable",
        )
    if sender_for(account.kind) is None or account.kind not in ACCOUNT_CHANNEL:
        raise DomainError(f"{account.get_kind_display()} accounts cannot send.", code="channel_cannot_send")
    # Sending account kinds (email, sms, twitter, facebook) are also the consent channels' names.
    blocked = contact_reply_block_reason(thread.contact, account.kind)
    if blocked:
        raise DomainError(f"Not sent: {blocked}", code="consent_opted_out")
    if not to:
        raise DomainError("Choose whom to send it to.", fields={"to": ["Required."]}, code="no_recipient")
    if not body_text.strip():
        raise DomainError("The message is empty.", fields={"body_text": ["Required."]}, code="empty_message")
    total = sum(a.size for a in attachments or [])
    if total > MAX_ATTACHMENT_BYTES:
        raise DomainError(
            f"Attachments add up to {total // 2**20} MB; the limit is {MAX_ATTACHMENT_BYTES // 2**20} MB.",
            fields={"attachments": ["Too large."]}, code="attachments_too_large",
        )  # fmt: skip
    cc = cc or []
    draft = OutgoingDraft(
        to=[Party(p.kind, p.address, p.name, "to", p.handle) for p in to],
        cc=[Party(p.kind, p.address, p.name, "cc", p.handle) for p in cc],
        subject=subject, body_text=body_text, attachments=attachments or [], from_address=account.address,
        meta={"mode": mode} if mode else {},
    )  # fmt: skip
    prepare = preparer_for(account.kind)
    if prepare is not None:
        draft = prepare(account, draft, thread, reply_to)
    if not draft.external_id:
        raise DomainError("The channel gave the message no id.", code="no_external_id")  # a connector bug
    normalized = NormalizedMessage(
        channel=ACCOUNT_CHANNEL[account.kind], direction=Direction.OUTBOUND, external_id=draft.external_id,
        sent_at=timezone.now(), provider_thread_key=draft.provider_thread_key,
        author=Party(account.kind if account.kind != "sms" else "phone", account.address, str(actor), "from"),
        counterparts=[*draft.to, *draft.cc], subject=draft.subject, body_text=draft.body_text,
        body_display=draft.body_text, attachments=draft.attachments, delivery=Message.Delivery.QUEUED,
        created_by_id=actor.pk, contact_id=thread.contact_id, thread_id=thread.pk,
        meta={
            "draft": {
                "to": [_party_json(p) for p in draft.to], "cc": [_party_json(p) for p in draft.cc],
                "in_reply_to": draft.in_reply_to, "references": draft.references, "from": draft.from_address,
                **draft.meta,
            },
            "reply_to_message": reply_to.pk if reply_to else None,
        },
    )  # fmt: skip
    result = ingest_batch(account=account, messages=[normalized])
    if not result.created:
        raise DomainError("This message was already sent.", code="duplicate_send")
    message = Message.objects.get(pk=result.created[0])
    from threads.tasks import message_deliver_task

    transaction.on_commit(lambda: message_deliver_task.delay(message.pk))
    return message


def _draft_from(message: Message) -> OutgoingDraft:
    data: dict[str, Any] = dict(message.meta.get("draft", {}))

    def parties(items: list[dict[str, str]]) -> list[Party]:
        return [
            Party(i["kind"], i["address"], i.get("name", ""), i.get("role", "to"), i.get("handle", "")) for i in items
        ]

    attachments = []
    for att in message.attachments.all():
        payload = None
        if att.file:
            with att.file.open("rb") as fh:
                payload = fh.read()
        attachments.append(AttachmentIn(att.name, att.content_type, payload, att.size, att.omitted))
    to, cc = parties(data.pop("to", [])), parties(data.pop("cc", []))
    in_reply_to, references = data.pop("in_reply_to", ""), data.pop("references", [])
    from_address = data.pop("from", "")
    return OutgoingDraft(
        to=to, cc=cc, subject=message.subject, body_text=message.body_text, attachments=attachments,
        external_id=message.external_id, in_reply_to=in_reply_to, references=references,
        provider_thread_key=message.provider_thread_key, from_address=from_address, meta=data,
    )  # fmt: skip


def message_deliver(*, message_id: int) -> str:
    """Send a queued outbound message. Returns its delivery state. Transient provider errors propagate (the task
    retries with back-off); refused credentials fail the message and flag the account."""
    with transaction.atomic():
        # Lock the message row only: PostgreSQL refuses FOR UPDATE on the nullable side of the outer join.
        message = (
            Message.objects.select_for_update(of=("self",))
            .select_related("channel_account")
            .filter(pk=message_id)
            .first()
        )
        if message is None or message.delivery != Message.Delivery.QUEUED:
            return message.delivery if message else "missing"
        account = message.channel_account
        sender = sender_for(account.kind) if account else None
        if sender is None:
            message.delivery = Message.Delivery.FAILED
            message.meta = {**message.meta, "error": "The channel account can no longer send."}
            message.save(update_fields=["delivery", "meta"])
            return message.delivery
        draft = _draft_from(message)
        try:
            sent = sender(account, draft)
        except ChannelAuthError as exc:
            message.delivery = Message.Delivery.FAILED
            message.meta = {**message.meta, "error": str(exc)}
            message.save(update_fields=["delivery", "meta"])
            ChannelAccount.objects.filter(pk=account.pk).update(
                status=ChannelAccount.Status.NEEDS_REAUTH, last_error=str(exc)[:4000]
            )
            return message.delivery
        except DeliveryRefused as exc:
            message.delivery = Message.Delivery.FAILED
            message.meta = {**message.meta, "error": str(exc)}
            message.save(update_fields=["delivery", "meta"])
            return message.delivery
        message.delivery = Message.Delivery.SENT
        message.meta = {**message.meta, **sent.meta, "sent_at": timezone.now().isoformat()}
        if sent.external_id and sent.external_id != message.external_id:
            # Providers that assign ids on send (tweets, SMS): keep the provider's id so the pulled copy dedupes.
            message.external_id = sent.external_id
            message.global_key = f"{message.channel}:{sent.external_id}"
        message.save(update_fields=["delivery", "meta", "external_id", "global_key"])
        return message.delivery


def message_deliver_failed(*, message_id: int, error: str) -> None:
    """Give up on a message after the task's retries are exhausted: say so in the thread."""
    Message.objects.filter(pk=message_id, delivery=Message.Delivery.QUEUED).update(delivery=Message.Delivery.FAILED)
    message = Message.objects.filter(pk=message_id).first()
    if message is not None:
        message.meta = {**message.meta, "error": error[:2000]}
        message.save(update_fields=["meta"])
