from __future__ import annotations

from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin
from django.db.models import QuerySet
from django.http import HttpRequest
from simple_history.admin import SimpleHistoryAdmin

from accounts.models import Membership, Notification, Team, User
from accounts.services import notifications_mark_read


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["team", "user"]


@admin.register(User)
class UserAdmin(SimpleHistoryAdmin, BaseUserAdmin):
    list_display = ["username", "get_full_name", "email", "role", "is_active", "last_login"]
    list_filter = ["role", "is_active", "is_staff", "memberships__team"]
    search_fields = ["username", "first_name", "last_name", "email"]
    inlines = [MembershipInline]
    fieldsets = (
        *BaseUserAdmin.fieldsets,
        ("Threadline", {"fields": ("role", "time_zone", "notify_by_email", "daily_digest")}),
    )
    actions = ["deactivate", "make_rep", "make_manager"]

    @admin.action(description="Deactivate selected users (keeps their records)")
    def deactivate(self, request: HttpRequest, queryset: QuerySet[User]) -> None:
        count = queryset.exclude(pk=request.user.pk).update(is_active=False)
        self.message_user(request, f"Deactivated {count} user(s).", messages.SUCCESS)

    @admin.action(description="Set role: rep")
    def make_rep(self, request: HttpRequest, queryset: QuerySet[User]) -> None:
        queryset.update(role=User.Role.REP)

    @admin.action(description="Set role: manager")
    def make_manager(self, request: HttpRequest, queryset: QuerySet[User]) -> None:
        queryset.update(role=User.Role.MANAGER)


@admin.register(Team)
class TeamAdmin(SimpleHistoryAdmin):
    list_display = ["name", "member_count", "created_at"]
    search_fields = ["name"]
    inlines = [MembershipInline]

    @admin.display(description="Members")
    def member_count(self, team: Team) -> int:
        return team.memberships.count()


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["user", "team", "is_manager", "joined_at"]
    list_filter = ["is_manager", "team"]
    search_fields = ["user__username", "team__name"]
    autocomplete_fields = ["user", "team"]


@admin.register(Notification)
class NotificationAdmin(admin.ModelAdmin):
    list_display = ["user", "level", "message", "created_at", "read_at"]
    list_filter = ["level", ("read_at", admin.EmptyFieldListFilter)]
    search_fields = ["message", "user__username"]
    raw_id_fields = ["user"]
    date_hierarchy = "created_at"
    actions = ["mark_read"]

    @admin.action(description="Mark as read")
    def mark_read(self, request: HttpRequest, queryset: QuerySet[Notification]) -> None:
        for user_id in queryset.values_list("user_id", flat=True).distinct():
            notifications_mark_read(user=User(pk=user_id), ids=list(queryset.values_list("id", flat=True)))
