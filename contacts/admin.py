from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from simple_history.admin import SimpleHistoryAdmin

from contacts.models import Company, Contact, ContactIdentity
from contacts.services import company_search_refresh, contact_search_refresh


class IdentityInline(admin.TabularInline):
    model = ContactIdentity
    extra = 0
    fields = ["kind", "value", "normalized", "label", "is_primary", "verified", "source"]
    readonly_fields = ["normalized"]


@admin.register(Contact)
class ContactAdmin(SimpleHistoryAdmin):
    list_display = ["display_name", "company", "lifecycle_stage", "tier", "owner", "team", "last_touch_at"]
    list_filter = ["lifecycle_stage", "tier", "team", "visibility", "do_not_contact"]
    search_fields = ["first_name", "last_name", "identities__normalized", "company__name"]
    list_select_related = ["company", "owner", "team"]
    raw_id_fields = ["company", "owner"]
    inlines = [IdentityInline]
    show_full_result_count = False  # no uncapped COUNT(*) on a million rows
    actions = ["rebuild_search", "mark_do_not_contact"]

    def save_related(self, request: HttpRequest, form, formsets, change) -> None:  # type: ignore[no-untyped-def]
        super().save_related(request, form, formsets, change)
        contact_search_refresh(contact_ids=[form.instance.pk])

    @admin.action(description="Rebuild search index for selected")
    def rebuild_search(self, request: HttpRequest, queryset: QuerySet[Contact]) -> None:
        contact_search_refresh(contact_ids=queryset.values_list("id", flat=True))
        self.message_user(request, "Search index rebuilt.", messages.SUCCESS)

    @admin.action(description="Mark as do-not-contact")
    def mark_do_not_contact(self, request: HttpRequest, queryset: QuerySet[Contact]) -> None:
        self.message_user(request, f"{queryset.update(do_not_contact=True)} contact(s) marked.", messages.SUCCESS)


@admin.register(Company)
class CompanyAdmin(SimpleHistoryAdmin):
    list_display = ["name", "industry", "size", "country", "owner", "team"]
    list_filter = ["industry", "size", "team"]
    search_fields = ["name", "domains"]
    raw_id_fields = ["owner"]
    show_full_result_count = False
    actions = ["rebuild_search"]

    def save_model(self, request: HttpRequest, obj: Company, form, change) -> None:  # type: ignore[no-untyped-def]
        super().save_model(request, obj, form, change)
        company_search_refresh(company_ids=[obj.pk])

    @admin.action(description="Rebuild search index for selected")
    def rebuild_search(self, request: HttpRequest, queryset: QuerySet[Company]) -> None:
        company_search_refresh(company_ids=queryset.values_list("id", flat=True))


@admin.register(ContactIdentity)
class ContactIdentityAdmin(SimpleHistoryAdmin):
    list_display = ["value", "kind", "normalized", "contact", "verified", "source"]
    list_filter = ["kind", "verified", "source"]
    search_fields = ["normalized", "value", "handle"]
    raw_id_fields = ["contact"]
    show_full_result_count = False
