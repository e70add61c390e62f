"""Writes for life events: job changes, moves, birthdays ... (contact_update records the automatic ones)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction

from accounts.models import User
from contacts.models import Contact, LifeEvent

_EDITABLE = ("kind", "title", "date", "note")


def _validate(event: LifeEvent) -> None:
    if event.kind == LifeEvent.Kind.CUSTOM and not event.title.strip():
        raise ValidationError({"title": ["A custom life event needs a title."]})
    event.full_clean(exclude=["contact", "created_by"])


@transaction.atomic
def life_event_create(
    *,
    contact: Contact,
    actor: User | None,
    kind: str,
    date: dt.date,
    title: str = "",
    note: str = "",
    source: str = "manual",
    data: dict[str, Any] | None = None,
) -> LifeEvent:
    event = LifeEvent(
        contact=contact, kind=kind, date=date, title=title.strip(), note=note, source=source, data=data or {},
        created_by=actor,
    )  # fmt: skip
    _validate(event)
    event.save()
    return event


@transaction.atomic
def life_event_update(*, event: LifeEvent, actor: User, **data: Any) -> LifeEvent:
    unknown = set(data) - set(_EDITABLE)
    if unknown:
        raise ValidationError({name: ["This field cannot be changed."] for name in sorted(unknown)})
    for key, value in data.items():
        setattr(event, key, value.strip() if key == "title" else value)
    _validate(event)
    event.save()
    return event


@transaction.atomic
def life_event_delete(*, event: LifeEvent, actor: User) -> None:
    event.delete()
