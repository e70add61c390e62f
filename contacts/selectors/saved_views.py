"""Reads of saved contact-list views: your own, plus the shared views of people in your teams."""

from __future__ import annotations

from django.db.models import Q, QuerySet

from accounts.models import Membership, User
from accounts.selectors import user_team_ids
from contacts.models import SavedView
from crm.errors import NotFound


def saved_view_list(*, user: User) -> QuerySet[SavedView]:
    if not user.is_authenticated:
        return SavedView.objects.none()
    teammates = Membership.objects.filter(team_id__in=user_team_ids(user)).values("user_id")
    return (
        SavedView.objects.filter(Q(owner=user) | Q(shared=True, owner_id__in=teammates))
        .select_related("owner")
        .order_by("name", "id")
    )


def saved_view_get(*, user: User, pk: int) -> SavedView:
    view = saved_view_list(user=user).filter(pk=pk).first()
    if view is None:
        raise NotFound("No such saved view.")
    return view
