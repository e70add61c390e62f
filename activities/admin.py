from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from simple_history.admin import SimpleHistoryAdmin

from activities.models import (
    Activity,
    ActivityPlan,
    ContactCadence,
    PlanAssignment,
    PlanRun,
    PlanStep,
    StepBranch,
    TierCadence,
    TouchPrompt,
)
from activities.services.calendar import touch_prompt_dismiss, touch_prompt_snooze
from activities.services.plans import plan_run_cancel, plan_run_pause, plan_run_resume
from crm.errors import DomainError


@admin.register(Activity)
class ActivityAdmin(SimpleHistoryAdmin):
    list_display = ["subject", "kind", "status", "owner", "contact", "due_at", "done_at", "outcome"]
    list_filter = ["kind", "status", "priority", "team"]
    search_fields = ["subject", "contact__last_name", "contact__first_name", "owner__username"]
    list_select_related = ["owner", "contact"]
    raw_id_fields = ["contact", "company", "owner", "created_by", "plan_run", "plan_step"]
    date_hierarchy = "due_at"
    show_full_result_count = False
    actions = ["mark_cancelled"]

    @admin.action(description="Cancel selected open activities")
    def mark_cancelled(self, request: HttpRequest, queryset: QuerySet[Activity]) -> None:
        count = queryset.filter(status=Activity.Status.OPEN).update(status=Activity.Status.CANCELLED)
        self.message_user(request, f"Cancelled {count} activity(ies).", messages.SUCCESS)


class StepBranchInline(admin.TabularInline):
    model = StepBranch
    fk_name = "step"
    extra = 0
    raw_id_fields = ["goto"]


class PlanStepInline(admin.TabularInline):
    model = PlanStep
    extra = 0
    fields = ["order", "key", "kind", "subject_template", "offset_days", "offset_from", "assignee_rule", "is_final"]


@admin.register(ActivityPlan)
class ActivityPlanAdmin(SimpleHistoryAdmin):
    list_display = ["name", "team", "is_active", "working_days_only", "created_by", "created_at"]
    list_filter = ["is_active", "team"]
    search_fields = ["name"]
    inlines = [PlanStepInline]


@admin.register(PlanStep)
class PlanStepAdmin(admin.ModelAdmin):
    list_display = ["plan", "order", "key", "kind", "offset_days", "offset_from", "assignee_rule"]
    list_filter = ["kind", "plan"]
    inlines = [StepBranchInline]
    raw_id_fields = ["named_user", "next_step"]


@admin.register(PlanAssignment)
class PlanAssignmentAdmin(admin.ModelAdmin):
    list_display = ["plan", "assignee", "status", "processed", "total", "created_runs", "skipped", "created_at"]
    list_filter = ["status"]
    raw_id_fields = ["plan", "assignee", "assigned_by", "saved_view"]


@admin.register(PlanRun)
class PlanRunAdmin(SimpleHistoryAdmin):
    list_display = ["plan", "contact", "assignee", "status", "current_step", "started_on", "ended_at"]
    list_filter = ["status", "plan"]
    search_fields = ["contact__last_name", "assignee__username"]
    list_select_related = ["plan", "contact", "assignee", "current_step"]
    raw_id_fields = ["plan", "assignment", "contact", "assignee", "current_step"]
    show_full_result_count = False
    actions = ["pause_runs", "resume_runs", "cancel_runs"]

    @admin.action(description="Pause selected plan runs")
    def pause_runs(self, request: HttpRequest, queryset: QuerySet[PlanRun]) -> None:
        _each(self, request, queryset, lambda run: plan_run_pause(run=run, actor=request.user), "Paused")

    @admin.action(description="Resume selected plan runs")
    def resume_runs(self, request: HttpRequest, queryset: QuerySet[PlanRun]) -> None:
        _each(self, request, queryset, lambda run: plan_run_resume(run=run, actor=request.user), "Resumed")

    @admin.action(description="Cancel selected plan runs")
    def cancel_runs(self, request: HttpRequest, queryset: QuerySet[PlanRun]) -> None:
        _each(self, request, queryset, lambda run: plan_run_cancel(run=run, actor=request.user), "Cancelled")


@admin.register(TierCadence)
class TierCadenceAdmin(admin.ModelAdmin):
    list_display = ["tier", "days"]


@admin.register(ContactCadence)
class ContactCadenceAdmin(admin.ModelAdmin):
    list_display = ["contact", "days", "source", "updated_at"]
    list_filter = ["source"]
    raw_id_fields = ["contact"]
    show_full_result_count = False


@admin.register(TouchPrompt)
class TouchPromptAdmin(admin.ModelAdmin):
    list_display = ["contact", "owner", "status", "cadence_days", "last_touch_at", "snoozed_until", "created_at"]
    list_filter = ["status"]
    raw_id_fields = ["contact", "owner", "activity"]
    show_full_result_count = False
    actions = ["snooze_week", "dismiss"]

    @admin.action(description="Snooze selected prompts for 7 days")
    def snooze_week(self, request: HttpRequest, queryset: QuerySet[TouchPrompt]) -> None:
        _each(self, request, queryset, lambda p: touch_prompt_snooze(prompt=p, actor=request.user, days=7), "Snoozed")

    @admin.action(description="Dismiss selected prompts")
    def dismiss(self, request: HttpRequest, queryset: QuerySet[TouchPrompt]) -> None:
        _each(self, request, queryset, lambda p: touch_prompt_dismiss(prompt=p, actor=request.user), "Dismissed")


def _each(model_admin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet, action, done: str) -> None:  # type: ignore[type-arg,no-untyped-def]
    """Run a service on each selected row (the services own the rules: state, visibility); report what was refused
    instead of failing the whole batch."""
    ok, refused = 0, []
    for obj in queryset:
        try:
            action(obj)
        except DomainError as exc:
            refused.append(f"{obj}: {exc.message}")
        else:
            ok += 1
    model_admin.message_user(request, f"{done} {ok}.", messages.SUCCESS)
    if refused:
        model_admin.message_user(request, "Not changed: " + "; ".join(refused[:10]), messages.WARNING)
