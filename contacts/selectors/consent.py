"""Reads of consent. Campaigns and outbound messaging ask :func:`contact_can_be_contacted` before every send."""

from __future__ import annotations

from django.db.models import FilteredRelation, Q, QuerySet

from accounts.models import User
from accounts.selectors import visible
from contacts.models import Consent, Contact

# With no opt-in, these bases still allow a message (e.g. a customer's service e-mail).
_BASES_WITHOUT_OPT_IN = (Consent.LegalBasis.CONTRACT, Consent.LegalBasis.LEGITIMATE_INTEREST)


def contact_can_be_contacted(contact: Contact, channel: str) -> bool:
    """May we send ``contact`` a (marketing) message on ``channel``? One query; reads the current database state.

    The rule, strictest first:

    1. ``Contact.do_not_contact`` -> False, whatever any channel says.
    2. The channel is ``opted_out`` -> False.
    3. The channel is ``opted_in`` -> True.
    4. The channel is ``unknown`` (or has no row at all) -> True only when a legal basis of ``contract`` or
       ``legitimate_interest`` is recorded for it; otherwise False. Silence is not consent.
    """
    row = (
        Contact.objects.filter(pk=contact.pk)
        .annotate(channel_consent=FilteredRelation("consents", condition=Q(consents__channel=channel)))
        .values_list("do_not_contact", "channel_consent__status", "channel_consent__legal_basis")
        .first()
    )
    if row is None:
        return False
    do_not_contact, status, legal_basis = row
    if do_not_contact or status == Consent.Status.OPTED_OUT:
        return False
    if status == Consent.Status.OPTED_IN:
        return True
    return legal_basis in _BASES_WITHOUT_OPT_IN


def contact_reply_block_reason(contact: Contact, channel: str) -> str:
    """Why a rep may not answer ``contact`` on ``channel`` ("" when they may). Replies in a conversation the
    person started need no opt-in, but an opt-out of the channel, or do-not-contact, stops every outbound
    message: a DM, an SMS, a comment reply, an e-mail. One query."""
    row = (
        Contact.objects.filter(pk=contact.pk)
        .annotate(channel_consent=FilteredRelation("consents", condition=Q(consents__channel=channel)))
        .values_list("do_not_contact", "channel_consent__status")
        .first()
    )
    if row is None:
        return "The contact no longer exists."
    do_not_contact, status = row
    if do_not_contact:
        return f"{contact} is marked do-not-contact."
    if status == Consent.Status.OPTED_OUT:
        label = Consent.Channel(channel).label if channel in Consent.Channel.values else channel
        return f"{contact} opted out of {label}."
    return ""


def contact_consents(*, user: User, contact: Contact) -> list[dict[str, object]]:
    """One entry per channel, in channel order; channels without a row show as unknown. ``contact`` is already
    known to be visible (it came from contact_get)."""
    rows = {c.channel: c for c in Consent.objects.filter(contact=contact).select_related("recorded_by")}
    return [{"channel": value, "label": label, "consent": rows.get(value)} for value, label in Consent.Channel.choices]


def consent_list(*, user: User, contact_id: int | None = None) -> QuerySet[Consent]:
    qs = visible(Consent.objects.all(), user, prefix="contact__").select_related("contact", "recorded_by")
    if contact_id is not None:
        qs = qs.filter(contact_id=contact_id)
    return qs
