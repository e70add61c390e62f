"""Reads for the duplicate review queue and merge records. Visibility is applied here, and only here.

The queue is for managers and admins; to anyone else it does not exist (NotFound, never "forbidden"). A pair is
listed only when the user may see BOTH contacts, so the queue never leaks a contact through its twin.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db.models import BigIntegerField, Prefetch, Q, QuerySet
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Cast

from accounts.models import User
from accounts.selectors import visibility_q, visible
from contacts.models import Contact, ContactIdentity, DuplicateCandidate, MergeRecord
from crm.errors import DomainError, NotFound

QUEUE_PAGE_SIZE = 20


def can_review_duplicates(user: User) -> bool:
    return bool(user.is_authenticated and user.is_active and (user.is_admin_role or user.is_manager_role))


def _require_reviewer(user: User) -> None:
    if not can_review_duplicates(user):
        raise NotFound("Page not found.")


def duplicate_list(*, user: User, status: str = DuplicateCandidate.Status.OPEN) -> QuerySet[DuplicateCandidate]:
    """Pairs in ``status`` whose two contacts ``user`` may both see, strongest first."""
    _require_reviewer(user)
    identities = ContactIdentity.objects.order_by("kind", "id")
    return (
        DuplicateCandidate.objects.filter(status=status)
        .filter(visibility_q(user, prefix="contact_a__"))
        .filter(visibility_q(user, prefix="contact_b__"))
        .select_related("contact_a__company", "contact_b__company", "contact_a__owner", "contact_b__owner")
        .prefetch_related(
            Prefetch("contact_a__identities", queryset=identities),
            Prefetch("contact_b__identities", queryset=identities),
        )
        .order_by("-score", "-id")
    )


def _decode_after(after: str | None) -> tuple[float, int] | None:
    if not after:
        return None
    try:
        score, pk = after.split("_", 1)
        return float(score), int(pk)
    except ValueError:
        raise DomainError("This page link is invalid; reload the queue.", code="invalid_cursor") from None


def duplicate_queue(
    *, user: User, after: str | None = None, limit: int = QUEUE_PAGE_SIZE
) -> tuple[list[DuplicateCandidate], str | None]:
    """One keyset page of the open queue: ``(score, id)`` descending; returns the rows and the next cursor."""
    qs = duplicate_list(user=user)
    cursor = _decode_after(after)
    if cursor is not None:
        score, pk = cursor
        qs = qs.filter(Q(score__lt=score) | Q(score=score, pk__lt=pk))
    rows = list(qs[: limit + 1])
    next_after = f"{rows[limit - 1].score!r}_{rows[limit - 1].pk}" if len(rows) > limit else None
    return rows[:limit], next_after


def duplicate_get(*, user: User, pk: int) -> DuplicateCandidate:
    _require_reviewer(user)
    candidate = (
        DuplicateCandidate.objects.filter(pk=pk)
        .filter(visibility_q(user, prefix="contact_a__"))
        .filter(visibility_q(user, prefix="contact_b__"))
        .select_related("contact_a", "contact_b")
        .first()
    )
    if candidate is None:
        raise NotFound("No such duplicate pair.")
    return candidate


def merge_record_list(*, user: User) -> QuerySet[MergeRecord]:
    """Merges whose surviving contact ``user`` may see and whose merged-away contact ``user`` could have seen
    (admins also see merges whose survivor is gone): the duplicate's snapshot holds all of its data, so a
    private contact merged into a shared one must not become readable through the merge record.
    """
    as_was = MergeRecord.objects.annotate(
        was_owner_id=Cast(KeyTextTransform("owner_id", "duplicate_snapshot"), BigIntegerField()),
        was_team_id=Cast(KeyTextTransform("team_id", "duplicate_snapshot"), BigIntegerField()),
        was_visibility=KeyTextTransform("visibility", "duplicate_snapshot"),
    )
    return (
        visible(as_was, user, prefix="primary__")
        .filter(visibility_q(user, prefix="was_"))
        .select_related("primary", "actor")
    )


def merge_record_get(*, user: User, pk: int) -> MergeRecord:
    record = merge_record_list(user=user).select_related("unmerged_by").filter(pk=pk).first()
    if record is None:
        raise NotFound("No such merge.")
    return record


def contact_merge_records(*, user: User, contact: Contact, limit: int = 5) -> list[MergeRecord]:
    return list(merge_record_list(user=user).filter(primary=contact)[:limit])


@dataclass(frozen=True)
class MergePreview:
    """What a merge of ``duplicate`` into ``primary`` would do, for the confirmation page."""

    primary: Contact
    duplicate: Contact
    identities: list[ContactIdentity]
    fields: list[tuple[str, Any]]  # (label, value the primary would get)
    tags_added: list[str]


def merge_preview(*, user: User, primary_id: int, duplicate_id: int) -> MergePreview:
    from contacts.merge_registrations import planned_field_changes

    contacts = {
        c.pk: c
        for c in visible(Contact.objects.filter(pk__in=[primary_id, duplicate_id]), user)
        .select_related("company", "owner")
        .prefetch_related(Prefetch("identities", queryset=ContactIdentity.objects.order_by("kind", "id")))
    }
    if primary_id not in contacts or duplicate_id not in contacts:
        raise NotFound("No such contact.")
    primary, duplicate = contacts[primary_id], contacts[duplicate_id]
    changes = planned_field_changes(primary, duplicate)
    tags = changes.pop("tags", list(primary.tags))
    fields = [
        (str(Contact._meta.get_field(name.removesuffix("_id")).verbose_name).capitalize(),
         duplicate.company if name == "company_id" else value)
        for name, value in changes.items()
    ]  # fmt: skip
    return MergePreview(
        primary=primary,
        duplicate=duplicate,
        identities=list(duplicate.identities.all()),
        fields=fields,
        tags_added=[t for t in tags if t not in primary.tags],
    )
