"""Filters shared by the contact list page, saved views and the API (one definition, one meaning)."""

from __future__ import annotations

from typing import Any

import django_filters
from django import forms
from django.db.models import Q, QuerySet
from django.http import HttpRequest

from accounts.models import Membership, Team, User
from accounts.selectors import team_list, user_team_ids
from contacts.models import Company, Contact


def _owners(request: HttpRequest | None) -> QuerySet[User]:
    # Without a request (saved-view validation) any user id is acceptable; visibility still filters the rows.
    if request is None or not request.user.is_authenticated:
        return User.objects.all()
    user = request.user
    if user.is_admin_role:
        return User.objects.filter(is_active=True).order_by("username")
    # Colleagues and oneself (accounts.selectors.user_list cannot be ordered: it ORs a DISTINCT queryset).
    mates = Membership.objects.filter(team_id__in=user_team_ids(user)).values("user_id")
    return User.objects.filter(Q(pk=user.pk) | Q(pk__in=mates), is_active=True).order_by("username")


def _teams(request: HttpRequest | None) -> QuerySet[Team]:
    if request is None or not request.user.is_authenticated:
        return Team.objects.all()
    return team_list(actor=request.user)


class ContactFilter(django_filters.FilterSet):
    lifecycle_stage = django_filters.ChoiceFilter(choices=Contact.Stage.choices, label="Stage", empty_label="Any stage")
    tier = django_filters.ChoiceFilter(choices=Contact.Tier.choices, label="Tier", empty_label="Any tier")
    owner = django_filters.ModelChoiceFilter(queryset=_owners, label="Owner", empty_label="Anyone")
    team = django_filters.ModelChoiceFilter(queryset=_teams, label="Team", empty_label="Any team")
    tag = django_filters.CharFilter(method="filter_tag", label="Tag", max_length=64)
    # A plain id, not a <select>: there may be tens of thousands of companies.
    company = django_filters.NumberFilter(field_name="company_id", label="Company id", min_value=1)
    country = django_filters.CharFilter(method="filter_country", label="Country", max_length=2)
    last_touch_after = django_filters.IsoDateTimeFilter(
        field_name="last_touch_at", lookup_expr="gte", label="Last touch after",
        widget=forms.DateInput(attrs={"type": "date"}),
    )  # fmt: skip
    last_touch_before = django_filters.IsoDateTimeFilter(
        field_name="last_touch_at", lookup_expr="lt", label="Last touch before",
        widget=forms.DateInput(attrs={"type": "date"}),
    )  # fmt: skip
    do_not_contact = django_filters.BooleanFilter(label="Do not contact")

    class Meta:
        model = Contact
        fields = [
            "lifecycle_stage", "tier", "owner", "team", "tag", "company", "country", "last_touch_after",
            "last_touch_before", "do_not_contact",
        ]  # fmt: skip

    def filter_tag(self, queryset: QuerySet[Contact], name: str, value: str) -> QuerySet[Contact]:
        return queryset.filter(tags__contains=[value.strip()]) if value.strip() else queryset

    def filter_country(self, queryset: QuerySet[Contact], name: str, value: str) -> QuerySet[Contact]:
        return queryset.filter(country=value.strip().upper()) if value.strip() else queryset


# Keys a saved view may hold: every filter above plus the free-text search.
SAVED_VIEW_KEYS: frozenset[str] = frozenset({"q", *ContactFilter.base_filters})


def contact_filter_errors(filters: dict[str, Any]) -> dict[str, list[str]]:
    """Validation errors of a filter dict, as {field: [messages]}; empty when it is valid."""
    unknown = sorted(set(filters) - SAVED_VIEW_KEYS)
    if unknown:
        allowed = ", ".join(sorted(SAVED_VIEW_KEYS))
        return {key: [f"Unknown filter {key!r}; use one of: {allowed}."] for key in unknown}
    data = {k: v for k, v in filters.items() if k != "q"}
    form = ContactFilter(data=data, queryset=Contact.objects.none()).form
    if form.is_valid():
        return {}
    return {name: [str(m) for m in messages] for name, messages in form.errors.items()}


class CompanyFilter(django_filters.FilterSet):
    class Meta:
        model = Company
        fields = ["industry", "owner", "team", "country"]
