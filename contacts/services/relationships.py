"""Writes for the relationship graph: typed, directed links between two contacts."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from accounts.models import User
from accounts.selectors import can_see
from contacts.models import Contact, Relationship
from crm.errors import Conflict, DomainError, NotFound

_EDITABLE = ("kind", "strength", "notes")


def _check_visible(actor: User, contact: Contact, field: str) -> None:
    # An invisible contact is reported exactly like a missing one (never a 403 that confirms it exists).
    if not can_see(actor, contact):
        raise NotFound("No such contact.", fields={field: ["No such contact."]})


def _duplicate_edge(relationship: Relationship) -> Conflict:
    return Conflict(
        f"{relationship.from_contact.display_name} is already linked to {relationship.to_contact.display_name} "
        f"as “{relationship.get_kind_display().lower()}”.",
        fields={"to_contact": ["This link already exists."]},
        code="duplicate_relationship",
    )


def _validate(relationship: Relationship) -> None:
    if relationship.from_contact_id == relationship.to_contact_id:
        raise DomainError(
            "A contact cannot be linked to themselves.",
            fields={"to_contact": ["Choose another contact."]},
            code="self_link",
        )
    if not isinstance(relationship.strength, int) or not 1 <= relationship.strength <= 5:
        raise ValidationError({"strength": ["Strength must be a whole number from 1 to 5."]})
    relationship.full_clean(exclude=["from_contact", "to_contact", "created_by"], validate_constraints=False)


def _save(relationship: Relationship) -> Relationship:
    try:
        with transaction.atomic():
            relationship.save()
    except IntegrityError:
        # The unique edge constraint decides races; a pre-check alone would let two writers both pass.
        raise _duplicate_edge(relationship) from None
    return relationship


@transaction.atomic
def relationship_create(
    *,
    actor: User,
    from_contact: Contact,
    to_contact: Contact,
    kind: str,
    strength: int = 3,
    notes: str = "",
) -> Relationship:
    """Link ``from_contact`` to ``to_contact``. Both must be visible to ``actor``."""
    _check_visible(actor, from_contact, "from_contact")
    _check_visible(actor, to_contact, "to_contact")
    relationship = Relationship(
        from_contact=from_contact, to_contact=to_contact, kind=kind, strength=strength, notes=notes, created_by=actor
    )
    _validate(relationship)
    if Relationship.objects.filter(from_contact=from_contact, to_contact=to_contact, kind=kind).exists():
        raise _duplicate_edge(relationship)
    return _save(relationship)


@transaction.atomic
def relationship_update(*, relationship: Relationship, actor: User, **data: Any) -> Relationship:
    unknown = set(data) - set(_EDITABLE)
    if unknown:
        raise ValidationError({name: ["This field cannot be changed."] for name in sorted(unknown)})
    for key, value in data.items():
        setattr(relationship, key, value)
    _validate(relationship)
    if (
        Relationship.objects.filter(
            from_contact_id=relationship.from_contact_id,
            to_contact_id=relationship.to_contact_id,
            kind=relationship.kind,
        )
        .exclude(pk=relationship.pk)
        .exists()
    ):
        raise _duplicate_edge(relationship)
    return _save(relationship)


@transaction.atomic
def relationship_delete(*, relationship: Relationship, actor: User) -> None:
    relationship.delete()
