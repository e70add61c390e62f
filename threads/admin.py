"""Admin for operators: channel account health, dead letters (with retry), threads and messages.

Credentials never appear here. Raw events are append-only evidence: viewable, retryable, never edited.
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html

from crm.errors import DomainError
from threads.models import Attachment, ChannelAccount, Message, RawEvent, Thread
from threads.services.channel_accounts import channel_account_pause, channel_account_resume
from threads.services.pipeline import raw_events_retry

PREVIEW_BYTES = 2048


def _is_changelist(request: HttpRequest) -> bool:
    match = request.resolver_match
    return bool(match and match.url_name and match.url_name.endswith("_changelist"))


@admin.register(ChannelAccount)
class ChannelAccountAdmin(admin.ModelAdmin):
    list_display = [
        "name", "kind", "status", "owner", "team", "visibility", "last_sync_at", "last_success_at",
        "consecutive_failures", "coverage_display", "short_error",
    ]  # fmt: skip
    list_filter = ["kind", "status", "visibility", "team"]
    search_fields = ["name", "address", "slug"]
    list_select_related = ["owner", "team"]
    raw_id_fields = ["owner"]
    # Accounts are connected through the app or API: they validate settings and issue webhook secrets.
    fields = [
        "name", "kind", "slug", "address", "config", "unknown_policy", "owner", "team", "visibility", "status",
        "last_sync_at", "last_success_at", "last_error", "consecutive_failures", "next_sync_at", "cursor",
        "throttle", "reported_count", "stored_count", "coverage_display", "created_at",
    ]  # fmt: skip
    readonly_fields = [
        "kind", "slug", "last_sync_at", "last_success_at", "last_error", "consecutive_failures", "next_sync_at",
        "cursor", "throttle", "reported_count", "stored_count", "coverage_display", "created_at",
    ]  # fmt: skip
    actions = ["pause_accounts", "resume_accounts"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.display(description="Coverage")
    def coverage_display(self, account: ChannelAccount) -> str:
        coverage = account.coverage
        if coverage is None:
            return "—"
        return f"{coverage:.1%} ({account.stored_count}/{account.reported_count})"

    @admin.display(description="Last error")
    def short_error(self, account: ChannelAccount) -> str:
        return account.last_error[:120]

    def _apply(self, request: HttpRequest, queryset: QuerySet[ChannelAccount], service, verb: str) -> None:  # type: ignore[no-untyped-def]
        done = 0
        for account in queryset:
            try:
                service(account=account, actor=request.user)
            except DomainError as exc:
                self.message_user(request, f"{account.name}: {exc.message}", messages.ERROR)
            else:
                done += 1
        self.message_user(request, f"{done} account(s) {verb}.", messages.SUCCESS)

    @admin.action(description="Pause selected accounts")
    def pause_accounts(self, request: HttpRequest, queryset: QuerySet[ChannelAccount]) -> None:
        self._apply(request, queryset, channel_account_pause, "paused")

    @admin.action(description="Resume selected accounts (clears failures)")
    def resume_accounts(self, request: HttpRequest, queryset: QuerySet[ChannelAccount]) -> None:
        self._apply(request, queryset, channel_account_resume, "resumed")


@admin.register(RawEvent)
class RawEventAdmin(admin.ModelAdmin):
    list_display = ["id", "channel_account", "event_type", "provider_event_id", "status", "attempts", "received_at",
                    "short_error"]  # fmt: skip
    list_filter = ["status", "event_type", "channel_account"]
    search_fields = ["provider_event_id"]
    list_select_related = ["channel_account"]
    show_full_result_count = False
    fields = [
        "channel_account", "provider_event_id", "event_type", "content_type", "status", "error", "attempts",
        "received_at", "processed_at", "meta", "payload_preview",
    ]  # fmt: skip
    readonly_fields = fields
    actions = ["retry_dead_letters"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[RawEvent]:
        qs = super().get_queryset(request)
        # Payloads can be megabytes each: a list page of 100 must not load them.
        return qs.defer("payload") if _is_changelist(request) else qs

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: RawEvent | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: RawEvent | None = None) -> bool:
        return False

    @admin.display(description="Error")
    def short_error(self, event: RawEvent) -> str:
        return event.error[:120]

    @admin.display(description="Payload")
    def payload_preview(self, event: RawEvent) -> str:
        payload = bytes(event.payload or b"")
        # Decoding with replacement never fails on binary or broken UTF-8; format_html escapes the markup.
        preview = payload[:PREVIEW_BYTES].decode("utf-8", errors="replace")
        more = f" (first {PREVIEW_BYTES} shown)" if len(payload) > PREVIEW_BYTES else ""
        return format_html("<p>{} bytes{}</p><pre style=\"white-space: pre-wrap\">{}</pre>", len(payload), more,
                           preview)  # fmt: skip

    @admin.action(description="Retry selected dead letters")
    def retry_dead_letters(self, request: HttpRequest, queryset: QuerySet[RawEvent]) -> None:
        count = raw_events_retry(raw_event_ids=list(queryset.values_list("pk", flat=True)))
        skipped = queryset.count() - count
        note = f"; {skipped} were not dead letters and were left alone" if skipped else ""
        self.message_user(request, f"{count} dead letter(s) queued again{note}.", messages.SUCCESS)


@admin.register(Thread)
class ThreadAdmin(admin.ModelAdmin):
    list_display = ["id", "contact", "topic", "status", "assignee", "message_count", "last_message_at",
                    "awaiting_reply", "last_channel"]  # fmt: skip
    list_filter = ["status", "awaiting_reply", "last_channel"]
    search_fields = ["topic", "last_subject"]
    list_select_related = ["contact", "assignee"]
    raw_id_fields = ["contact", "assignee"]
    show_full_result_count = False
    readonly_fields = ["message_count", "last_message_at", "last_inbound_at", "last_outbound_at", "awaiting_reply",
                       "last_subject", "last_channel", "participants", "created_at"]  # fmt: skip


class AttachmentInline(admin.TabularInline):
    model = Attachment
    extra = 0
    fields = ["name", "content_type", "size", "file", "omitted"]
    readonly_fields = fields
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Message | None = None) -> bool:
        return False


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin):
    list_display = ["id", "channel", "direction", "subject", "author_address", "contact", "sent_at", "delivery"]
    list_filter = ["channel", "direction", "delivery", "is_private"]
    search_fields = ["subject", "author_address"]
    list_select_related = ["contact"]
    raw_id_fields = ["thread", "contact", "channel_account", "author_identity", "raw_event", "created_by"]
    show_full_result_count = False
    inlines = [AttachmentInline]
    # Messages are evidence of what was said: an operator may re-file one (thread, contact), not rewrite it.
    readonly_fields = [
        "channel_account", "channel", "direction", "external_id", "global_key", "provider_thread_key",
        "author_identity", "author_address", "author_name", "recipients", "sent_at", "subject", "body_text",
        "body_display", "body_html", "raw_event", "is_private", "body_visible_to", "seen_by", "delivery", "meta",
        "created_by", "created_at",
    ]  # fmt: skip

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False
