"""Reads about users and teams, and THE visibility policy.

Every owned record (accounts.models.OwnedModel, directly or through a relation) is filtered here:

- a rep sees records they own, and records shared with a team they belong to;
- a manager also sees everything owned by members of the teams they manage, and everything assigned to those teams;
- an admin sees everything.

Selectors of other apps call :func:`visible` (or :func:`visibility_q` with a ``prefix`` for related rows, e.g.
``prefix="contact__"`` for a thread that is visible when its contact is). Nothing else decides visibility.
"""

from __future__ import annotations

from typing import TypeVar

from django.db.models import Model, Q, QuerySet

from accounts.models import Membership, Notification, Team, User, Visibility

M = TypeVar("M", bound=Model)

_NOTHING = Q(pk__in=[])


def user_team_ids(user: User) -> list[int]:
    cached = getattr(user, "_team_ids_cache", None)
    if cached is None:
        cached = list(Membership.objects.filter(user=user).values_list("team_id", flat=True))
        user._team_ids_cache = cached  # type: ignore[attr-defined]
    return cached


def user_managed_team_ids(user: User) -> list[int]:
    cached = getattr(user, "_managed_team_ids_cache", None)
    if cached is None:
        if user.role in (User.Role.MANAGER, User.Role.ADMIN) or user.is_superuser:
            cached = list(Membership.objects.filter(user=user, is_manager=True).values_list("team_id", flat=True))
        else:
            cached = []
        user._managed_team_ids_cache = cached  # type: ignore[attr-defined]
    return cached


def visibility_q(user: User | None, *, prefix: str = "") -> Q:
    """A Q object selecting the rows ``user`` may see. ``prefix`` reaches an owned row through a relation."""
    if user is None or not user.is_authenticated or not user.is_active:
        return _NOTHING
    if user.is_admin_role:
        return Q()

    def f(name: str) -> str:
        return f"{prefix}{name}"

    q = Q(**{f("owner_id"): user.pk})
    team_ids = user_team_ids(user)
    if team_ids:
        q |= Q(**{f("team_id__in"): team_ids, f("visibility"): Visibility.TEAM})
    managed = user_managed_team_ids(user)
    if managed:
        team_members = Membership.objects.filter(team_id__in=managed).values("user_id")
        q |= Q(**{f("owner_id__in"): team_members}) | Q(**{f("team_id__in"): managed})
    return q


def visible(queryset: QuerySet[M], user: User | None, *, prefix: str = "") -> QuerySet[M]:
    return queryset.filter(visibility_q(user, prefix=prefix))


def can_see(user: User | None, obj: Model, *, prefix: str = "") -> bool:
    return visible(type(obj)._default_manager.filter(pk=obj.pk), user, prefix=prefix).exists()


def user_list(*, actor: User) -> QuerySet[User]:
    """Users the actor may assign work to: admins see all, others their teams' members."""
    qs = User.objects.filter(is_active=True)
    if not actor.is_authenticated:
        return qs.none()
    if actor.is_admin_role:
        return qs
    return qs.filter(Q(memberships__team_id__in=user_team_ids(actor)) | Q(pk=actor.pk)).distinct()


def team_list(*, actor: User) -> QuerySet[Team]:
    if not actor.is_authenticated:
        return Team.objects.none()
    if actor.is_admin_role:
        return Team.objects.all()
    return Team.objects.filter(pk__in=user_team_ids(actor))


def notification_list(*, user: User) -> QuerySet[Notification]:
    if not user.is_authenticated:
        return Notification.objects.none()
    return Notification.objects.filter(user=user)


def unread_notifications(*, user: User, limit: int = 10) -> list:
    return list(user.notifications.filter(read_at__isnull=True)[:limit])


def unread_notification_count(*, user: User) -> int:
    # Capped: the badge shows "99+" and never counts a huge backlog.
    return user.notifications.filter(read_at__isnull=True)[:100].count()
