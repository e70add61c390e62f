"""Selectors: touch prompts, calendar ranges (own and team) and the iCal feed's owner."""

from __future__ import annotations

import datetime as dt
import hmac

from django.db.models import Q, QuerySet
from django.utils import timezone

from accounts.models import Membership, User
from accounts.selectors import user_managed_team_ids, visibility_q, visible
from activities.models import Activity, ContactCadence, TouchPrompt
from crm.errors import NotFound

FEED_PAST = dt.timedelta(days=30)
FEED_FUTURE = dt.timedelta(days=180)


def _prompt_scope(user: User) -> Q:
    # A rep acts on their own prompts only, even for a contact shared with their team; managers and admins reach
    # the prompts of contacts they can see (e.g. to cover for a rep on leave).
    if not user.is_authenticated or not user.is_active:
        return Q(pk__in=[])
    q = Q(owner_id=user.pk)
    if user.is_admin_role or user_managed_team_ids(user):
        q |= visibility_q(user, prefix="contact__")
    return q


def touch_prompt_list(*, user: User, status: str | None = TouchPrompt.Status.OPEN) -> QuerySet[TouchPrompt]:
    """The user's own prompts (My day shows these), oldest last touch first."""
    qs = TouchPrompt.objects.filter(owner_id=user.pk).select_related("contact")
    if status:
        qs = qs.filter(status=status)
    return qs.order_by("last_touch_at", "id")


def touch_prompt_get(*, user: User, pk: int) -> TouchPrompt:
    prompt = TouchPrompt.objects.filter(_prompt_scope(user), pk=pk).select_related("contact", "owner").first()
    if prompt is None:
        raise NotFound("No such prompt.")
    return prompt


def calendar_activities(*, user: User, start: dt.datetime, end: dt.datetime) -> QuerySet[Activity]:
    """The user's own activities due in [start, end), cancelled ones left out."""
    return (
        Activity.objects.filter(owner_id=user.pk, due_at__gte=start, due_at__lt=end)
        .exclude(status=Activity.Status.CANCELLED)
        .select_related("contact")
        .order_by("due_at", "id")
    )


def team_calendar_activities(*, user: User, start: dt.datetime, end: dt.datetime) -> QuerySet[Activity]:
    """Activities of the members of the teams ``user`` manages (admins: everyone), visibility applied.
    A user who manages no team gets NotFound: the team view does not exist for them."""
    if user.is_admin_role:
        qs = Activity.objects.all()
    else:
        managed = user_managed_team_ids(user)
        if not managed:
            raise NotFound("No team calendar.")
        members = Membership.objects.filter(team_id__in=managed).values("user_id")
        qs = visible(Activity.objects.filter(owner_id__in=members), user)
    return (
        qs.filter(due_at__gte=start, due_at__lt=end)
        .exclude(status=Activity.Status.CANCELLED)
        .select_related("contact", "owner")
        .order_by("due_at", "id")
    )


def feed_user(*, token: str) -> User:
    """The user whose calendar feed ``token`` opens. Unknown, blank or revoked tokens are NotFound."""
    if not token or len(token) < 16:
        raise NotFound("No such calendar.")
    user = User.objects.filter(calendar_token=token, is_active=True).first()
    # The indexed lookup finds the row; the constant-time compare is what answers, so timing says nothing about
    # how much of a guessed token matched.
    if user is None or not hmac.compare_digest(user.calendar_token.encode(), token.encode()):
        raise NotFound("No such calendar.")
    return user


def feed_activities(*, user: User, now: dt.datetime | None = None) -> QuerySet[Activity]:
    now = now or timezone.now()
    return (
        Activity.objects.filter(owner_id=user.pk, due_at__gte=now - FEED_PAST, due_at__lt=now + FEED_FUTURE)
        .select_related("contact")
        .order_by("due_at", "id")
    )


def contact_cadence_list(*, user: User) -> QuerySet[ContactCadence]:
    """Cadences of the contacts ``user`` can see."""
    return visible(ContactCadence.objects.all(), user, prefix="contact__").select_related("contact").order_by("id")
