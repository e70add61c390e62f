"""Writes for users, teams, memberships and notifications."""

from __future__ import annotations

from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.models import Membership, Notification, Team, User


@transaction.atomic
def user_create(
    *,
    username: str,
    email: str = "",
    password: str | None = None,
    role: str = User.Role.REP,
    first_name: str = "",
    last_name: str = "",
) -> User:
    user = User(username=username, email=email, role=role, first_name=first_name, last_name=last_name)
    user.is_staff = role == User.Role.ADMIN
    user.is_superuser = role == User.Role.ADMIN
    if password:
        user.set_password(password)
    else:
        user.set_unusable_password()
    user.rotate_calendar_token()
    user.full_clean(exclude=["password"])
    user.save()
    return user


@transaction.atomic
def team_create(*, name: str, description: str = "") -> Team:
    team = Team(name=name, description=description)
    team.full_clean()
    team.save()
    return team


@transaction.atomic
def membership_set(*, user: User, team: Team, is_manager: bool = False) -> Membership:
    membership, _ = Membership.objects.update_or_create(user=user, team=team, defaults={"is_manager": is_manager})
    return membership


def notification_create(
    *, user: User, message: str, level: str = Notification.Level.INFO, url: str = "", dedupe_key: str = ""
) -> Notification | None:
    """Create a notification once. With a ``dedupe_key`` a retried producer creates nothing new (returns None)."""
    try:
        with transaction.atomic():
            return Notification.objects.create(
                user=user, message=message[:500], level=level, url=url[:500], dedupe_key=dedupe_key[:200]
            )
    except IntegrityError:
        # The unique (user, dedupe_key) constraint, not an "exists?" check, is what makes this idempotent.
        return None


def notifications_mark_read(*, user: User, ids: list[int] | None = None) -> int:
    qs = Notification.objects.filter(user=user, read_at__isnull=True)
    if ids is not None:
        qs = qs.filter(pk__in=ids)
    return qs.update(read_at=timezone.now())


@transaction.atomic
def user_calendar_token_rotate(*, user: User) -> str:
    token = user.rotate_calendar_token()
    user.save(update_fields=["calendar_token"])
    return token
