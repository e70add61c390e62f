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


# --- Profile area: custom fields, relationships, life events, consent --------------------------------------

from contacts.models import Consent, CustomFieldDefinition, LifeEvent, Relationship  # noqa: E402


@admin.register(CustomFieldDefinition)
class CustomFieldDefinitionAdmin(SimpleHistoryAdmin):
    list_display = ["label", "key", "field_type", "required", "is_active", "order"]
    list_editable = ["order", "is_active"]
    list_filter = ["field_type", "required", "is_active"]
    search_fields = ["key", "label"]
    actions = ["activate", "deactivate"]

    def get_readonly_fields(self, request: HttpRequest, obj: CustomFieldDefinition | None = None) -> list[str]:
        # Values are stored under the key: renaming it would orphan every stored value.
        return ["key"] if obj is not None else []

    @admin.action(description="Activate selected fields")
    def activate(self, request: HttpRequest, queryset: QuerySet[CustomFieldDefinition]) -> None:
        self.message_user(request, f"{queryset.update(is_active=True)} field(s) activated.", messages.SUCCESS)

    @admin.action(description="Deactivate selected fields (stored values are kept)")
    def deactivate(self, request: HttpRequest, queryset: QuerySet[CustomFieldDefinition]) -> None:
        self.message_user(request, f"{queryset.update(is_active=False)} field(s) deactivated.", messages.SUCCESS)


@admin.register(Relationship)
class RelationshipAdmin(SimpleHistoryAdmin):
    list_display = ["from_contact", "kind", "to_contact", "strength", "created_by", "created_at"]
    list_filter = ["kind", "strength"]
    search_fields = ["from_contact__last_name", "to_contact__last_name", "notes"]
    list_select_related = ["from_contact", "to_contact", "created_by"]
    raw_id_fields = ["from_contact", "to_contact", "created_by"]
    show_full_result_count = False


@admin.register(LifeEvent)
class LifeEventAdmin(SimpleHistoryAdmin):
    list_display = ["contact", "kind", "title", "date", "source", "created_at"]
    list_filter = ["kind", "source"]
    search_fields = ["title", "contact__last_name", "contact__first_name"]
    list_select_related = ["contact"]
    raw_id_fields = ["contact", "created_by"]
    date_hierarchy = "date"
    show_full_result_count = False


@admin.register(Consent)
class ConsentAdmin(SimpleHistoryAdmin):
    list_display = ["contact", "channel", "status", "legal_basis", "source", "recorded_at", "recorded_by"]
    list_filter = ["channel", "status", "legal_basis"]
    search_fields = ["contact__last_name", "contact__first_name", "source"]
    list_select_related = ["contact", "recorded_by"]
    raw_id_fields = ["contact", "recorded_by"]
    show_full_result_count = False


# --- Duplicates and merges (area "merge") -------------------------------------------------------------------
from contacts.models import DuplicateCandidate, MergeRecord  # noqa: E402
from crm.errors import DomainError  # noqa: E402


@admin.register(DuplicateCandidate)
class DuplicateCandidateAdmin(admin.ModelAdmin):
    list_display = ["id", "contact_a", "contact_b", "strength", "score", "reason", "status", "found_at", "reviewed_by"]
    list_filter = ["status", "strength"]
    search_fields = ["reason", "contact_a__last_name", "contact_b__last_name"]
    list_select_related = ["contact_a", "contact_b", "reviewed_by"]
    raw_id_fields = ["contact_a", "contact_b", "reviewed_by"]
    show_full_result_count = False
    actions = ["dismiss", "scan"]

    @admin.action(description="Mark selected as not a duplicate")
    def dismiss(self, request: HttpRequest, queryset: QuerySet[DuplicateCandidate]) -> None:
        from contacts.services.duplicates import duplicate_dismiss

        done = 0
        for candidate in queryset.exclude(status=DuplicateCandidate.Status.MERGED):
            duplicate_dismiss(candidate=candidate, actor=request.user)
            done += 1
        self.message_user(request, f"{done} pair(s) marked as not a duplicate.", messages.SUCCESS)

    @admin.action(description="Start a full duplicate scan")
    def scan(self, request: HttpRequest, queryset: QuerySet[DuplicateCandidate]) -> None:
        from contacts.services.duplicates import duplicates_scan_enqueue

        duplicates_scan_enqueue(actor=request.user)
        self.message_user(request, "Duplicate scan started.", messages.SUCCESS)


@admin.register(MergeRecord)
class MergeRecordAdmin(admin.ModelAdmin):
    list_display = ["id", "primary", "duplicate_id_was", "actor", "created_at", "unmerged_at", "unmerged_by"]
    list_filter = [("unmerged_at", admin.EmptyFieldListFilter)]
    search_fields = ["=duplicate_id_was", "=primary__id", "primary__last_name"]
    list_select_related = ["primary", "actor", "unmerged_by"]
    raw_id_fields = ["primary", "actor", "unmerged_by"]
    readonly_fields = [
        "primary", "duplicate_id_was", "primary_snapshot", "duplicate_snapshot", "moved", "conflicts", "actor",
        "created_at", "unmerged_at", "unmerged_by",
    ]  # fmt: skip
    date_hierarchy = "created_at"
    show_full_result_count = False
    actions = ["unmerge"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # records are written by contact_merge only

    @admin.action(description="Unmerge (undo) selected merges")
    def unmerge(self, request: HttpRequest, queryset: QuerySet[MergeRecord]) -> None:
        from contacts.services.merge import contact_unmerge

        for record in queryset:
            try:
                contact_unmerge(record=record, actor=request.user)
            except DomainError as exc:
                details = exc.fields.get("conflicts") or []
                self.message_user(
                    request, f"Merge #{record.pk}: {exc.message}" if not details else
                    f"Merge #{record.pk} cannot be undone: " + "; ".join(details), messages.ERROR,
                )  # fmt: skip
            else:
                self.message_user(request, f"Merge #{record.pk} undone.", messages.SUCCESS)


# --- transfer: imports and erasure records ----------------------------------------------------------------

from django.urls import reverse  # noqa: E402
from django.utils.html import format_html  # noqa: E402

from contacts.models import ErasureRecord, ImportJob, ImportRowError  # noqa: E402


@admin.register(ImportJob)
class ImportJobAdmin(admin.ModelAdmin):
    list_display = [
        "file_name", "status", "progress", "total_rows", "created_count", "updated_count", "skipped_count",
        "error_count", "owner", "created_at", "finished_at",
    ]  # fmt: skip
    list_filter = ["status", "on_duplicate", "encoding"]
    search_fields = ["file_name", "=file_sha256", "owner__username"]
    list_select_related = ["owner"]
    raw_id_fields = ["owner"]
    exclude = ["data"]  # the raw file can be 50 MB
    readonly_fields = [
        "file_name", "file_sha256", "encoding", "delimiter", "headers", "mapping", "on_duplicate", "status",
        "total_rows", "next_row", "created_count", "updated_count", "skipped_count", "error_count", "error",
        "created_at", "started_at", "finished_at", "row_errors_link",
    ]  # fmt: skip
    show_full_result_count = False
    date_hierarchy = "created_at"
    actions = ["resume"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[ImportJob]:
        return super().get_queryset(request).defer("data")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # uploads go through the import wizard or the API

    @admin.display(description="Row errors")
    def row_errors_link(self, obj: ImportJob) -> str:
        # A link, not an inline: a bad file can have 100,000 error rows.
        url = reverse("admin:contacts_importrowerror_changelist") + f"?job__id__exact={obj.pk}"
        return format_html('<a href="{}">{} row error(s)</a>', url, obj.error_count)

    @admin.display(description="Progress")
    def progress(self, obj: ImportJob) -> str:
        return f"{obj.progress_percent}% ({obj.next_row}/{obj.total_rows})"

    @admin.action(description="Resume failed or stuck jobs (continue at the last committed row)")
    def resume(self, request: HttpRequest, queryset: QuerySet[ImportJob]) -> None:
        from contacts.services.imports import import_job_resume

        resumed = sum(1 for job in queryset if import_job_resume(job=job, actor=request.user))
        self.message_user(request, f"{resumed} import(s) re-queued; finished imports were left alone.")


@admin.register(ImportRowError)
class ImportRowErrorAdmin(admin.ModelAdmin):
    list_display = ["job", "row_number", "errors"]
    list_select_related = ["job"]
    raw_id_fields = ["job"]
    search_fields = ["=job__id"]
    readonly_fields = ["job", "row_number", "errors", "raw"]
    show_full_result_count = False

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


@admin.register(ErasureRecord)
class ErasureRecordAdmin(admin.ModelAdmin):
    """The GDPR audit trail: read-only, and it never names the person."""

    list_display = ["contact_id_was", "actor", "reason", "created_at"]
    list_select_related = ["actor"]
    search_fields = ["=contact_id_was", "reason"]
    date_hierarchy = "created_at"
    readonly_fields = ["contact_id_was", "counts", "actor", "reason", "created_at"]
    show_full_result_count = False

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False
