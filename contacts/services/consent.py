"""Writes for per-channel consent. One row per (contact, channel); django-simple-history keeps the trail."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.models import User
from contacts.models import Consent, Contact


@transaction.atomic
def consent_set(
    *,
    contact: Contact,
    channel: str,
    status: str,
    legal_basis: str = "",
    source: str = "",
    actor: User | None,
) -> Consent:
    """Record the contact's current consent for ``channel`` (insert or update), stamped now."""
    errors: dict[str, list[str]] = {}
    if channel not in Consent.Channel.values:
        errors["channel"] = [f"{channel!r} is not a channel."]
    if status not in Consent.Status.values:
        errors["status"] = [f"{status!r} is not a consent status."]
    if legal_basis not in Consent.LegalBasis.values:
        errors["legal_basis"] = [f"{legal_basis!r} is not a legal basis."]
    if errors:
        raise ValidationError(errors)
    values = {
        "status": status, "legal_basis": legal_basis, "source": source[:120], "recorded_at": timezone.now(),
        "recorded_by": actor,
    }  # fmt: skip
    # select_for_update serialises two writers of an existing row, so history records both in order.
    consent = Consent.objects.select_for_update().filter(contact=contact, channel=channel).first()
    if consent is None:
        try:
            with transaction.atomic():
                return Consent.objects.create(contact=contact, channel=channel, **values)
        except IntegrityError:
            # A concurrent writer inserted the row first; the unique constraint arbitrates, then we update it.
            consent = Consent.objects.select_for_update().get(contact=contact, channel=channel)
    for key, value in values.items():
        setattr(consent, key, value)
    consent.save()
    return consent
