"""SMS writes that are not ingestion: delivery states from Twilio's status callbacks, and the consent an SMS
keyword (STOP, START) or a carrier refusal records.

Delivery only moves forwards. Twilio posts one callback per state change, and they may arrive out of order (a
"sent" after its "delivered"); each is applied under a row lock and only when it ranks above what is stored.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence

from django.db import IntegrityError, transaction
from django.utils import timezone

from contacts.models import Consent, Contact, ContactIdentity
from contacts.services.consent import consent_set
from threads.models import Channel, Direction, Message

log = logging.getLogger(__name__)

PENDING_PREFIX = "pending:"  # the provisional external id of an SMS before Twilio names it

# Twilio message status → our delivery state. "sent" means handed to the provider; Twilio's own queue counts.
TWILIO_DELIVERY: dict[str, str] = {
    "accepted": Message.Delivery.SENT,
    "scheduled": Message.Delivery.SENT,
    "queued": Message.Delivery.SENT,
    "sending": Message.Delivery.SENT,
    "sent": Message.Delivery.SENT,
    "delivered": Message.Delivery.DELIVERED,
    "read": Message.Delivery.DELIVERED,
    "undelivered": Message.Delivery.FAILED,
    "failed": Message.Delivery.FAILED,
    "canceled": Message.Delivery.FAILED,
}
# Delivered and failed are final: a late "sent" or a stray second verdict never overwrites them.
_DELIVERY_RANK = {
    Message.Delivery.NONE: 0,
    Message.Delivery.QUEUED: 0,
    Message.Delivery.SENT: 1,
    Message.Delivery.DELIVERED: 2,
    Message.Delivery.FAILED: 2,
}
_TWILIO_RANK = {
    "accepted": 0, "scheduled": 0, "queued": 0, "sending": 1, "sent": 2,
    "delivered": 3, "undelivered": 3, "failed": 3, "canceled": 3, "read": 4,
}  # fmt: skip

# What the common Twilio error codes mean, for the person looking at a failed message.
TWILIO_ERRORS: dict[str, str] = {
    "21211": "the number is not a valid phone number",
    "21408": "sending to this country is not enabled in the Twilio account",
    "21610": "the recipient replied STOP to this number and has unsubscribed",
    "21612": "Twilio cannot route a message from this number to that one",
    "21614": "the number is not a mobile number",
    "21617": "the message is too long",
    "30003": "the phone is switched off or unreachable",
    "30004": "the recipient's carrier blocked the message",
    "30005": "the number does not exist (anymore)",
    "30006": "the number is a landline or its carrier cannot receive SMS",
    "30007": "the carrier filtered the message as spam",
    "30008": "the carrier did not say why",
}
UNSUBSCRIBED_CODE = "21610"
OPT_OUT_SOURCE = "SMS STOP keyword"
OPT_IN_SOURCE = "SMS START keyword"
CARRIER_OPT_OUT_SOURCE = "Twilio: unsubscribed recipient (21610)"


def twilio_error_text(code: str | int | None) -> str:
    """A sentence for a failed message: what Twilio's error code means and where to read more."""
    code = str(code or "").strip()
    if not code:
        return "Twilio could not deliver the message."
    meaning = TWILIO_ERRORS.get(code, "see Twilio's error reference")
    return f"Twilio error {code}: {meaning} (https://www.twilio.com/docs/errors/{code})."


def _locked(account_ids: Sequence[int], external_id: str) -> Message | None:
    return (
        Message.objects.select_for_update(of=("self",))
        .filter(channel_account_id__in=list(account_ids), channel=Channel.SMS, external_id=external_id)
        .first()
    )


@transaction.atomic
def message_delivery_update(
    *, account_ids: Sequence[int], external_id: str, status: str, error_code: str = "", ref: str = ""
) -> Message | None:
    """Apply one Twilio status callback to our outbound message ``external_id`` (a MessageSid) of one of
    ``account_ids``. Returns the message, or None when no such message exists. Safe to repeat and to reorder.

    ``ref`` is the provisional id our status-callback URL carried. It finds a message whose send committed after
    this callback arrived (we wait for its row lock), and one whose worker died after Twilio accepted it: that
    message takes the MessageSid and leaves "queued", so the retried task does not send it twice.
    """
    status = status.strip().lower()
    message = _locked(account_ids, external_id)
    adopted = False
    if message is None and ref:
        message = _locked(account_ids, PENDING_PREFIX + ref)
        if message is None:
            # The send held the row while we waited for it, and committed the MessageSid: read it again.
            message = _locked(account_ids, external_id)
        else:
            adopted = True
    if message is None:
        return None
    fields: set[str] = set()
    meta = dict(message.meta)
    if adopted:
        message.external_id, message.global_key = external_id, f"{Channel.SMS}:{external_id}"
        fields |= {"external_id", "global_key"}
        meta["recovered_sid"] = True
    if status not in _TWILIO_RANK:
        log.warning("twilio status %r for message %s is not one we know; ignored", status, message.pk)
    elif _TWILIO_RANK[status] > _TWILIO_RANK.get(str(meta.get("twilio_status", "")), -1):
        meta["twilio_status"], meta["twilio_status_at"] = status, timezone.now().isoformat()
        fields.add("meta")
    target = TWILIO_DELIVERY.get(status)
    if target is not None and _DELIVERY_RANK[target] > _DELIVERY_RANK.get(message.delivery, 0):
        message.delivery = target
        fields.add("delivery")
        if target == Message.Delivery.FAILED:
            meta["error_code"], meta["error"] = error_code, twilio_error_text(error_code)
            fields.add("meta")
    if not fields:
        return message
    message.meta = meta
    try:
        with transaction.atomic():
            message.save(update_fields=sorted(fields))
    except IntegrityError:
        # Another stored message already holds this MessageSid (an echo of the send): leave ours as it was.
        log.warning("message %s cannot take MessageSid %s: another message holds it", message.pk, external_id)
        return None
    if error_code == UNSUBSCRIBED_CODE:
        recipients = [r.get("address", "") for r in message.recipients if isinstance(r, dict)]
        sms_opt_out_record(phones=recipients, source=CARRIER_OPT_OUT_SOURCE)
    return message


def _contacts_by_phone(phones: Iterable[str]) -> dict[str, Contact]:
    identities = ContactIdentity.objects.filter(kind="phone", normalized__in=[p for p in phones if p])
    return {i.normalized: i.contact for i in identities.select_related("contact")}


def _consent_change(contact: Contact, status: str, source: str) -> bool:
    current = Consent.objects.filter(contact=contact, channel=Consent.Channel.SMS).values_list("status", flat=True)
    if current.first() == status:
        return False  # idempotent: a repeated STOP neither rewrites the record nor adds history
    consent_set(contact=contact, channel=Consent.Channel.SMS, status=status, source=source, actor=None)
    return True


@transaction.atomic
def sms_opt_out_record(*, phones: Iterable[str], source: str) -> list[Contact]:
    """Mark the contacts owning these phone numbers as opted out of SMS. Returns those that changed."""
    return [c for c in _contacts_by_phone(phones).values() if _consent_change(c, Consent.Status.OPTED_OUT, source)]


@transaction.atomic
def sms_keyword_consents(*, message_ids: Iterable[int]) -> int:
    """Record the consent that inbound SMS keywords ask for: STOP and friends opt the sender's contact out of
    SMS, START and UNSTOP opt them back in. The normalizer marked such messages (``meta["keyword"]``); they are
    applied oldest first, so "STOP" then "START" ends opted in. Returns how many consents changed."""
    rows = list(
        Message.objects.filter(
            pk__in=list(message_ids), channel=Channel.SMS, direction=Direction.INBOUND, meta__has_key="keyword"
        )
        .order_by("sent_at", "pk")
        .values_list("author_address", "contact_id", "meta")
    )
    if not rows:
        return 0
    by_phone = _contacts_by_phone(address for address, _, _ in rows)
    fallback = {c.pk: c for c in Contact.objects.filter(pk__in={cid for _, cid, _ in rows if cid})}
    changed = 0
    for address, contact_id, meta in rows:
        # The identity's owner is who said it; the message's contact only when the identity has gone since.
        contact = by_phone.get(address) or fallback.get(contact_id)
        if contact is None:
            log.info("SMS keyword from a number no contact owns; nothing recorded")
            continue
        keyword = meta.get("keyword", {})
        if keyword.get("action") == "opt_out":
            changed += _consent_change(contact, Consent.Status.OPTED_OUT, OPT_OUT_SOURCE)
        elif keyword.get("action") == "opt_in":
            changed += _consent_change(contact, Consent.Status.OPTED_IN, OPT_IN_SOURCE)
    return changed
