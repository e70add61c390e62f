"""Writes of saved contact-list views."""

from __future__ import annotations

from typing import Any

from django.db import IntegrityError, transaction

from accounts.models import User
from contacts.filters import contact_filter_errors
from contacts.models import SavedView
from crm.errors import Conflict, DomainError, NotFound

NAME_MAX = SavedView._meta.get_field("name").max_length


def clean_saved_filters(filters: Any) -> dict[str, str | list[str]]:
    """Drop empty values; reject anything ContactFilter would not accept, naming the offending key."""
    if not isinstance(filters, dict):
        raise DomainError(
            "Filters must be an object of filter names to values.", fields={"filters": ["Not an object."]}
        )
    cleaned: dict[str, str | list[str]] = {}
    for key, value in filters.items():
        if isinstance(value, bool):
            value = "true" if value else "false"
        elif isinstance(value, int):
            value = str(value)
        # Postgres stores no NUL in text or jsonb: a pasted one is dropped rather than failing the save with a 500.
        if isinstance(value, str):
            value = value.replace("\x00", "")
        if isinstance(value, list):
            value = [str(v).replace("\x00", "") for v in value if str(v).replace("\x00", "").strip()]
            if value:
                cleaned[str(key)] = value
        elif isinstance(value, str):
            if value.strip():
                cleaned[str(key)] = value.strip()
        elif value is not None:
            raise DomainError(f"Filter {key!r} has an unsupported value.", fields={str(key): ["Unsupported value."]})
    errors = contact_filter_errors(cleaned)
    if errors:
        first = next(iter(errors.values()))[0]
        raise DomainError(f"This view cannot be saved: {first}", fields=errors, code="invalid_filters")
    return cleaned


@transaction.atomic
def saved_view_create(*, owner: User, name: str, filters: dict[str, Any], shared: bool = False) -> SavedView:
    name = (name or "").replace("\x00", "").strip()
    if not name:
        raise DomainError("Give the view a name.", fields={"name": ["This field is required."]})
    if len(name) > NAME_MAX:
        raise DomainError(f"Names are at most {NAME_MAX} characters.", fields={"name": ["Too long."]})
    cleaned = clean_saved_filters(filters)
    duplicate = Conflict(
        f'You already have a view named "{name}"; choose another name or delete the old one.',
        fields={"name": ["You already have a view with this name."]},
        code="duplicate_name",
    )
    if SavedView.objects.filter(owner=owner, name=name).exists():
        raise duplicate
    try:
        with transaction.atomic():
            return SavedView.objects.create(owner=owner, name=name, filters=cleaned, shared=shared)
    except IntegrityError:
        # A concurrent save of the same name; the unique constraint decides.
        raise duplicate from None


@transaction.atomic
def saved_view_delete(*, saved_view: SavedView, actor: User) -> None:
    """Only the owner deletes a view; a teammate who sees a shared view gets the same answer as for a missing one."""
    if saved_view.owner_id != actor.pk:
        raise NotFound("No such saved view.")
    saved_view.delete()
