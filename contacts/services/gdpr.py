"""GDPR: export everything held about one person (access), and erase it (erasure).

Both walk contacts.registry.personal_data_sources(), so every app that stores data about a contact (threads,
activities, deals, campaigns, listening) takes part without contacts importing it.
"""

from __future__ import annotations

import json
import re
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.utils import timezone

from accounts.models import User
from accounts.selectors import can_see
from contacts.models import Contact, ErasureRecord
from contacts.registry import personal_data_sources
from crm.errors import DomainError, NotFound

EXPORT_FORMAT = "threadline.person_export.v1"


class NotAllowed(DomainError):
    """The caller may see the contact but not do this to it (e.g. a rep erasing a person)."""

    code = "not_allowed"
    status = 403


def can_export_person(user: User, contact: Contact) -> bool:
    return user.is_admin_role or user.is_manager_role or contact.owner_id == user.pk


def can_erase_person(user: User) -> bool:
    return user.is_admin_role or user.is_manager_role


def _check_visible(actor: User, contact: Contact) -> None:
    if not can_see(actor, contact):
        raise NotFound("No such contact.")


def person_export(*, contact: Contact, actor: User) -> dict[str, Any]:
    """Everything every registered source holds about the person, as JSON-ready data."""
    _check_visible(actor, contact)
    if not can_export_person(actor, contact):
        raise NotAllowed("Only the contact's owner, managers and admins can export a person's data.")
    data = {
        "format": EXPORT_FORMAT,
        "exported_at": timezone.now(),
        "contact_id": contact.pk,
        "sources": {source.key: source.export(contact) for source in personal_data_sources()},
    }
    # Round-trip through the encoder so callers (API, download, tests) get plain JSON types.
    return json.loads(json.dumps(data, cls=DjangoJSONEncoder))


def _scrub(reason: str, contact: Contact) -> str:
    """The audit entry names nobody: remove the person's names and addresses if the user typed them."""
    secrets = [contact.first_name, contact.last_name, contact.display_name]
    for identity in contact.identities.all():
        secrets += [identity.value, identity.normalized, identity.handle]
    reason = reason.replace("\x00", "")  # the erase page posts it unvalidated; Postgres refuses NUL in text
    for secret in sorted({s.strip() for s in secrets if s and len(s.strip()) > 1}, key=len, reverse=True):
        reason = re.sub(re.escape(secret), "[redacted]", reason, flags=re.IGNORECASE)
    return reason.strip()[:200]


@transaction.atomic
def person_erase(*, contact: Contact, actor: User, reason: str = "") -> ErasureRecord:
    """Erase the person from every source (contacts' own last) and leave an audit entry of ids and counts."""
    _check_visible(actor, contact)
    if not can_erase_person(actor):
        raise NotAllowed("Only managers and admins can erase a person. Ask your manager.")
    contact_id = contact.pk
    reason = _scrub(reason, contact)
    counts: dict[str, int] = {}
    for source in personal_data_sources():
        counts[source.key] = int(source.erase(contact))
    return ErasureRecord.objects.create(contact_id_was=contact_id, counts=counts, actor=actor, reason=reason)
