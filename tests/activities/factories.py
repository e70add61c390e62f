from __future__ import annotations

import datetime as dt

import factory
from django.utils import timezone

from accounts.models import Visibility
from activities.models import Activity, Kind


class ActivityFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Activity

    kind = Kind.CALL
    subject = factory.Sequence(lambda n: f"Call number {n}")
    due_at = factory.LazyFunction(lambda: timezone.now() + dt.timedelta(hours=1))
    visibility = Visibility.TEAM
