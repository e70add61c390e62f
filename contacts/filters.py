"""Filters shared by the contact list page and the API."""

from __future__ import annotations

import django_filters

from contacts.models import Company, Contact


class ContactFilter(django_filters.FilterSet):
    tag = django_filters.CharFilter(field_name="tags", lookup_expr="contains", method="filter_tag")
    last_touch_before = django_filters.IsoDateTimeFilter(field_name="last_touch_at", lookup_expr="lt")
    last_touch_after = django_filters.IsoDateTimeFilter(field_name="last_touch_at", lookup_expr="gte")

    class Meta:
        model = Contact
        fields = ["lifecycle_stage", "tier", "owner", "team", "company", "country", "do_not_contact"]

    def filter_tag(self, queryset, name, value):  # type: ignore[no-untyped-def]
        return queryset.filter(tags__contains=[value])


class CompanyFilter(django_filters.FilterSet):
    class Meta:
        model = Company
        fields = ["industry", "owner", "team", "country"]
