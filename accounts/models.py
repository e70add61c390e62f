"""Users, teams and roles: the basis of the visibility policy every owned record follows."""

from __future__ import annotations

import secrets

from django.contrib.auth.models import AbstractUser
from django.db import models
from django.utils import timezone
from simple_history.models import HistoricalRecords


class User(AbstractUser):
    """A person who signs in. ``role`` decides how much of the CRM they see (see accounts.selectors)."""

    class Role(models.TextChoices):
        REP = "rep", "Rep"
        MANAGER = "manager", "Manager"
        ADMIN = "admin", "Admin"

    role = models.CharField(max_length=16, choices=Role.choices, default=Role.REP, db_index=True)
    time_zone = models.CharField(max_length=64, blank=True, default="")
    notify_by_email = models.BooleanField(default=True, help_text="Send reminders and alerts by e-mail too.")
    daily_digest = models.BooleanField(default=True, help_text="A digest e-mail each morning.")
    calendar_token = models.CharField(max_length=64, blank=True, default="", db_index=True)

    history = HistoricalRecords(excluded_fields=["password", "last_login"])

    class Meta:
        ordering = ["username"]

    def __str__(self) -> str:
        return self.get_full_name() or self.username

    @property
    def is_admin_role(self) -> bool:
        return self.is_superuser or self.role == self.Role.ADMIN

    @property
    def is_manager_role(self) -> bool:
        return self.role == self.Role.MANAGER

    def rotate_calendar_token(self) -> str:
        self.calendar_token = secrets.token_urlsafe(32)
        return self.calendar_token


class Team(models.Model):
    """A group of users. Records shared with a team are visible to its members; managers see their teams."""

    name = models.CharField(max_length=120, unique=True)
    description = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now)
    members = models.ManyToManyField(User, through="Membership", related_name="teams")

    history = HistoricalRecords()

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Membership(models.Model):
    """A user's place in a team; ``is_manager`` makes them a manager *of that team*."""

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="memberships")
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="memberships")
    is_manager = models.BooleanField(default=False)
    joined_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "team"], name="membership_unique_user_team")]
        indexes = [models.Index(fields=["team", "is_manager"])]

    def __str__(self) -> str:
        return f"{self.user} in {self.team}" + (" (manager)" if self.is_manager else "")


class Visibility(models.TextChoices):
    PRIVATE = "private", "Private to owner"
    TEAM = "team", "Shared with team"


class OwnedModel(models.Model):
    """Abstract base for every record with an owner. Its visibility is decided by accounts.selectors only.

    Owners are PROTECTed: a user who owns records is deactivated or has their records reassigned, never
    silently deleted with them.
    """

    owner = models.ForeignKey(User, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    team = models.ForeignKey(Team, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    visibility = models.CharField(max_length=8, choices=Visibility.choices, default=Visibility.TEAM)

    class Meta:
        abstract = True


class Notification(models.Model):
    """One line in a user's notification area. ``dedupe_key`` makes producers idempotent across retries."""

    class Level(models.TextChoices):
        INFO = "info", "Info"
        SUCCESS = "success", "Success"
        WARNING = "warning", "Warning"
        ALERT = "alert", "Alert"

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="notifications")
    level = models.CharField(max_length=8, choices=Level.choices, default=Level.INFO)
    message = models.CharField(max_length=500)
    url = models.CharField(max_length=500, blank=True, default="")
    dedupe_key = models.CharField(max_length=200, blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    read_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["user", "dedupe_key"],
                condition=~models.Q(dedupe_key=""),
                name="notification_unique_dedupe_key",
            )
        ]
        indexes = [models.Index(fields=["user", "read_at"])]

    def __str__(self) -> str:
        return self.message
