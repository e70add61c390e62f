"""Reads of life events, visibility applied through the contact, and the upcoming birthdays of My day."""

from __future__ import annotations

import calendar
import datetime as dt
from dataclasses import dataclass
from functools import reduce
from operator import or_

from django.db.models import Q, QuerySet
from django.utils import timezone

from accounts.models import User
from accounts.selectors import visible
from contacts.models import Contact, LifeEvent
from crm.errors import NotFound


def life_event_list(*, user: User, contact_id: int | None = None) -> QuerySet[LifeEvent]:
    qs = visible(LifeEvent.objects.all(), user, prefix="contact__").select_related("contact", "created_by")
    if contact_id is not None:
        qs = qs.filter(contact_id=contact_id)
    return qs


def contact_life_events(*, user: User, contact: Contact, limit: int = 50) -> list[LifeEvent]:
    """Newest first, manual and automatic (``source="auto"``) alike."""
    return list(life_event_list(user=user, contact_id=contact.pk).order_by("-date", "-id")[:limit])


def life_event_get(*, user: User, pk: int) -> LifeEvent:
    event = life_event_list(user=user).filter(pk=pk).first()
    if event is None:
        raise NotFound("No such life event.")
    return event


@dataclass(frozen=True)
class UpcomingDate:
    """A birthday or anniversary falling on ``on`` (this year's occurrence), ``years`` after the original."""

    contact: Contact
    kind: str  # "birthday" or "anniversary"
    label: str
    on: dt.date
    original: dt.date
    years: int | None

    @property
    def days_away(self) -> int:
        return (self.on - timezone.localdate()).days


def _occurrence(original: dt.date, year: int) -> dt.date:
    # 29 February is celebrated on 28 February in years without one.
    if original.month == 2 and original.day == 29 and not calendar.isleap(year):
        return dt.date(year, 2, 28)
    return original.replace(year=year)


def _next_occurrence(original: dt.date, today: dt.date) -> dt.date:
    this_year = _occurrence(original, today.year)
    return this_year if this_year >= today else _occurrence(original, today.year + 1)


def _month_day_q(field: str, days: list[dt.date]) -> Q:
    pairs = {(d.month, d.day) for d in days}
    if any(d.month == 2 and d.day == 28 and not calendar.isleap(d.year) for d in days):
        pairs.add((2, 29))
    return reduce(or_, (Q(**{f"{field}__month": m, f"{field}__day": d}) for m, d in sorted(pairs)))


def upcoming_dates(*, user: User, days: int = 14, today: dt.date | None = None, limit: int = 50) -> list[UpcomingDate]:
    """Birthdays and anniversaries of visible contacts in the next ``days`` days (today included), soonest first.

    Reads LifeEvent birthday/anniversary rows and ``Contact.birthday``: two queries, whatever the window. A
    birthday stored both ways is shown once.
    """
    today = today or timezone.localdate()
    window = [today + dt.timedelta(days=i) for i in range(days)]
    events = (
        visible(LifeEvent.objects.all(), user, prefix="contact__")
        .filter(kind__in=[LifeEvent.Kind.BIRTHDAY, LifeEvent.Kind.ANNIVERSARY])
        .filter(_month_day_q("date", window))
        .select_related("contact")
        .order_by("id")[: limit * 2]
    )
    contacts = (
        visible(Contact.objects.all(), user)
        .filter(birthday__isnull=False)
        .filter(_month_day_q("birthday", window))
        .only("id", "first_name", "last_name", "birthday")
        .order_by("id")[: limit * 2]
    )
    items: dict[tuple[int, str, dt.date], UpcomingDate] = {}
    for contact in contacts:
        on = _next_occurrence(contact.birthday, today)
        items[(contact.pk, "birthday", on)] = UpcomingDate(
            contact, "birthday", "Birthday", on, contact.birthday, on.year - contact.birthday.year
        )
    for event in events:
        on = _next_occurrence(event.date, today)
        key = (event.contact_id, event.kind, on)
        if key in items:
            continue
        label = event.title or event.get_kind_display()
        items[key] = UpcomingDate(event.contact, event.kind, label, on, event.date, on.year - event.date.year)
    # Whatever the filter matched, keep only what really falls inside the window (29 Feb in a leap year, say).
    last = window[-1]
    result = [item for item in items.values() if today <= item.on <= last]
    result.sort(key=lambda item: (item.on, item.contact.display_name.lower(), item.kind))
    return result[:limit]
