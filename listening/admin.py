"""Admin for operators: rules (every save reaches the engines through RuleSetVersion), sources (health, no
secrets), and read-only mentions, posts and spike alerts."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db import models
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone

from listening.models import ListeningRule, ListeningSource, Mention, Post, SpikeAlert
from listening.query import QueryError, validate
from listening.services import ruleset_bump


class RuleAdminForm(forms.ModelForm):
    class Meta:
        model = ListeningRule
        exclude: list[str] = []

    def clean_query(self) -> str:
        query = self.cleaned_data["query"].strip()
        try:
            validate(query)
        except QueryError as exc:
            raise forms.ValidationError(str(exc)) from None
        return query


@admin.register(ListeningRule)
class ListeningRuleAdmin(admin.ModelAdmin):
    form = RuleAdminForm
    list_display = [
        "name",
        "active",
        "owner",
        "team",
        "visibility",
        "alert_in_app",
        "activity_for",
        "tag",
        "updated_at",
    ]
    list_filter = ["active", "visibility", "team", "alert_in_app", "spike_alerts"]
    search_fields = ["name", "query", "description"]
    list_select_related = ["owner", "team"]
    raw_id_fields = ["owner"]
    filter_horizontal = ["sources"]
    readonly_fields = ["digest_sent_at", "created_at", "updated_at"]
    actions = ["deactivate_rules"]

    def save_model(self, request: HttpRequest, obj: ListeningRule, form: Any, change: bool) -> None:
        if obj.owner_id is None:
            obj.owner = request.user  # type: ignore[assignment]
        obj.updated_at = timezone.now()
        super().save_model(request, obj, form, change)
        ruleset_bump()  # the engines of every worker pick the change up within seconds

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        super().save_related(request, form, formsets, change)
        ruleset_bump()

    def delete_model(self, request: HttpRequest, obj: ListeningRule) -> None:
        super().delete_model(request, obj)
        ruleset_bump()

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[ListeningRule]) -> None:
        super().delete_queryset(request, queryset)
        ruleset_bump()

    @admin.action(description="Deactivate selected rules")
    def deactivate_rules(self, request: HttpRequest, queryset: QuerySet[ListeningRule]) -> None:
        count = queryset.update(active=False, updated_at=timezone.now())
        ruleset_bump()
        self.message_user(request, f"{count} rule(s) deactivated.", messages.SUCCESS)


@admin.register(ListeningSource)
class ListeningSourceAdmin(admin.ModelAdmin):
    list_display = [
        "name", "kind", "status", "owner", "team", "last_fetched_at", "next_fetch_at", "consecutive_failures",
        "short_error",
    ]  # fmt: skip
    list_filter = ["kind", "status", "visibility", "team"]
    search_fields = ["name", "slug", "url"]
    list_select_related = ["owner", "team"]
    raw_id_fields = ["owner", "channel_account"]
    # Sources are created through the app or API: they validate settings and issue webhook secrets. The secret
    # never appears here.
    fields = [
        "name", "kind", "slug", "url", "channel_account", "config", "owner", "team", "visibility", "status",
        "fetch_interval_s", "last_fetched_at", "next_fetch_at", "last_error", "consecutive_failures", "cursor",
        "created_at",
    ]  # fmt: skip
    readonly_fields = [
        "kind", "slug", "last_fetched_at", "last_error", "consecutive_failures", "cursor", "created_at",
    ]  # fmt: skip
    actions = ["resume_sources"]
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.display(description="Last error")
    def short_error(self, source: ListeningSource) -> str:
        return source.last_error[:120]

    def save_model(self, request: HttpRequest, obj: ListeningSource, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        ruleset_bump()  # who may read the source decides which rules run over it

    def delete_model(self, request: HttpRequest, obj: ListeningSource) -> None:
        super().delete_model(request, obj)
        ruleset_bump()

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[ListeningSource]) -> None:
        super().delete_queryset(request, queryset)
        ruleset_bump()

    @admin.action(description="Resume selected sources (clears failures, fetch now)")
    def resume_sources(self, request: HttpRequest, queryset: QuerySet[ListeningSource]) -> None:
        count = queryset.update(
            status=ListeningSource.Status.ACTIVE, consecutive_failures=0, last_error="", next_fetch_at=timezone.now()
        )
        self.message_user(request, f"{count} source(s) resumed.", messages.SUCCESS)


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # evidence of what was heard: removed with its rule or source, or by a GDPR erasure


@admin.register(Mention)
class MentionAdmin(ReadOnlyAdmin):
    list_display = ["id", "rule", "channel", "sentiment", "contact", "occurred_at", "created_at"]
    list_filter = ["sentiment", "channel"]
    list_select_related = ["rule", "contact"]
    raw_id_fields = ["rule", "post", "message", "contact"]
    date_hierarchy = "occurred_at"
    show_full_result_count = False  # no COUNT(*) over millions of rows per page view


@admin.register(Post)
class PostAdmin(ReadOnlyAdmin):
    list_display = ["id", "source", "channel", "author_name", "author_handle", "contact", "posted_at", "deleted_at"]
    list_filter = ["channel", "source"]
    search_fields = ["external_id", "author_handle", "author_address"]
    list_select_related = ["source", "contact"]
    raw_id_fields = ["source", "contact"]
    show_full_result_count = False


@admin.register(SpikeAlert)
class SpikeAlertAdmin(ReadOnlyAdmin):
    list_display = ["rule", "window_end", "count", "mean", "stddev", "k", "created_at"]
    list_select_related = ["rule"]
    raw_id_fields = ["rule"]
