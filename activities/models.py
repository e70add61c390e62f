"""Activities (tasks, calls, meetings ...), activity plans that managers assign, and "time to get in touch" prompts.

An Activity is an owned record: ``owner`` is the person it is assigned to, so the one visibility policy of
accounts.selectors applies unchanged (a rep sees their own and their team's shared activities, a manager their
teams' members', an admin all).
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.utils import timezone
from simple_history.models import HistoricalRecords

from accounts.models import OwnedModel


class Kind(models.TextChoices):
    TASK = "task", "Task"
    CALL = "call", "Call"
    MEETING = "meeting", "Meeting"
    APPOINTMENT = "appointment", "Appointment"
    EMAIL = "email", "E-mail"
    NOTE = "note", "Note"
    FOLLOW_UP = "follow_up", "Follow-up"
    IN_PERSON = "in_person", "In person"


class Activity(OwnedModel):
    """Something a person does, or did, with a customer. ``owner`` is the assignee."""

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        DONE = "done", "Done"
        CANCELLED = "cancelled", "Cancelled"
        SKIPPED = "skipped", "Skipped"

    class Priority(models.TextChoices):
        LOW = "low", "Low"
        NORMAL = "normal", "Normal"
        HIGH = "high", "High"

    class Outcome(models.TextChoices):
        REACHED = "reached", "Reached"
        NO_ANSWER = "no_answer", "No answer"
        LEFT_VOICEMAIL = "left_voicemail", "Left voicemail"
        WRONG_NUMBER = "wrong_number", "Wrong number"

    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.TASK)
    subject = models.CharField(max_length=300)
    notes = models.TextField(blank=True, default="")
    contact = models.ForeignKey(
        "contacts.Contact", on_delete=models.CASCADE, null=True, blank=True, related_name="activities"
    )
    company = models.ForeignKey(
        "contacts.Company", on_delete=models.SET_NULL, null=True, blank=True, related_name="activities"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    due_at = models.DateTimeField(null=True, blank=True)
    duration_minutes = models.PositiveIntegerField(null=True, blank=True)
    location = models.CharField(max_length=300, blank=True, default="")
    priority = models.CharField(max_length=8, choices=Priority.choices, default=Priority.NORMAL)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.OPEN)
    outcome = models.CharField(
        max_length=64, blank=True, default="", help_text="For calls: reached, no_answer, ... or a custom value."
    )
    done_at = models.DateTimeField(null=True, blank=True)
    plan_run = models.ForeignKey(
        "activities.PlanRun", on_delete=models.SET_NULL, null=True, blank=True, related_name="activities"
    )
    plan_step = models.ForeignKey(
        "activities.PlanStep", on_delete=models.SET_NULL, null=True, blank=True, related_name="activities"
    )
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    history = HistoricalRecords()

    class Meta:
        ordering = ["due_at", "id"]
        verbose_name_plural = "activities"
        indexes = [
            # My day: a user's open activities by due date, and nothing else, stays an index range scan.
            # (id too: My day orders by (due_at, id), and with it the scan stops after the rows it shows.)
            models.Index(fields=["owner", "due_at", "id"], condition=models.Q(status="open"), name="activity_open_due"),
            models.Index(fields=["contact", "-due_at"], name="activity_contact_due"),
            models.Index(fields=["team", "visibility", "due_at"], name="activity_team_due"),
            models.Index(fields=["plan_run", "status"], name="activity_plan_run"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: {self.subject}"


class ActivityPlan(models.Model):
    """A manager's template of how the team works a contact: ordered steps, optionally branching on outcomes."""

    name = models.CharField(max_length=200)
    description = models.TextField(blank=True, default="")
    team = models.ForeignKey("accounts.Team", on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    working_days_only = models.BooleanField(default=True, help_text="Due dates skip weekends and holidays.")
    holidays = ArrayField(models.DateField(), default=list, blank=True)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now)

    history = HistoricalRecords()

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class PlanStep(models.Model):
    """One step of a plan. After it, the run goes to the branch matching the outcome, else to ``next_step``,
    else to the following step in ``order``. activities.services.plans rejects a cycle when the plan is saved.
    """

    class OffsetFrom(models.TextChoices):
        PLAN_START = "plan_start", "Plan start"
        PREVIOUS = "previous", "Previous step's completion"

    class Assignee(models.TextChoices):
        CONTACT_OWNER = "contact_owner", "The contact's owner"
        PLAN_ASSIGNEE = "plan_assignee", "The person the plan was assigned to"
        NAMED_USER = "named_user", "A named user"

    plan = models.ForeignKey(ActivityPlan, on_delete=models.CASCADE, related_name="steps")
    key = models.SlugField(max_length=64, help_text="Stable name of the step within the plan, used by branches.")
    order = models.PositiveIntegerField(default=0)
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.CALL)
    subject_template = models.CharField(max_length=300, help_text='e.g. "Intro call with {contact.first_name}"')
    offset_days = models.PositiveIntegerField(default=0)
    offset_from = models.CharField(max_length=16, choices=OffsetFrom.choices, default=OffsetFrom.PREVIOUS)
    assignee_rule = models.CharField(max_length=16, choices=Assignee.choices, default=Assignee.PLAN_ASSIGNEE)
    named_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    next_step = models.ForeignKey(
        "self", on_delete=models.SET_NULL, null=True, blank=True, related_name="+",
        help_text="Where to go when no branch matches; empty means the next step in order.",
    )  # fmt: skip
    is_final = models.BooleanField(default=False, help_text="The plan ends after this step whatever the outcome.")

    class Meta:
        ordering = ["plan", "order", "id"]
        constraints = [models.UniqueConstraint(fields=["plan", "key"], name="planstep_unique_key")]

    def __str__(self) -> str:
        return f"{self.plan}: {self.key}"


class StepBranch(models.Model):
    """ "If the step's outcome is X, go to step Y": e.g. call = no_answer -> send e-mail."""

    step = models.ForeignKey(PlanStep, on_delete=models.CASCADE, related_name="branches")
    outcome = models.CharField(max_length=64)
    goto = models.ForeignKey(PlanStep, on_delete=models.CASCADE, related_name="+")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["step", "outcome"], name="stepbranch_unique_outcome")]

    def __str__(self) -> str:
        return f"{self.step.key} --{self.outcome}--> {self.goto.key}"


class PlanAssignment(models.Model):
    """One manager action: "assign this plan to <employee> for these contacts". Large targets run in Celery and
    report progress here (the page polls it)."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    plan = models.ForeignKey(ActivityPlan, on_delete=models.CASCADE, related_name="assignments")
    assignee = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    assigned_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    contact_ids = ArrayField(models.BigIntegerField(), default=list, blank=True)
    saved_view = models.ForeignKey(
        "contacts.SavedView", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    start_on = models.DateField(default=timezone.localdate)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.QUEUED)
    total = models.PositiveIntegerField(default=0)
    processed = models.PositiveIntegerField(default=0)
    created_runs = models.PositiveIntegerField(default=0)
    skipped = models.PositiveIntegerField(default=0, help_text="Contacts already running this plan, or invisible.")
    error = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.plan} for {self.assignee} ({self.get_status_display()})"

    @property
    def progress_percent(self) -> int:
        return int(100 * self.processed / self.total) if self.total else 0


class PlanRun(models.Model):
    """One contact going through one plan: the current step, status and the history (its activities)."""

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        PAUSED = "paused", "Paused"
        COMPLETED = "completed", "Completed"
        STOPPED = "stopped", "Stopped (the contact replied)"
        CANCELLED = "cancelled", "Cancelled"

    plan = models.ForeignKey(ActivityPlan, on_delete=models.CASCADE, related_name="runs")
    assignment = models.ForeignKey(
        PlanAssignment, on_delete=models.SET_NULL, null=True, blank=True, related_name="runs"
    )
    contact = models.ForeignKey("contacts.Contact", on_delete=models.CASCADE, related_name="plan_runs")
    assignee = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    current_step = models.ForeignKey(PlanStep, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.ACTIVE, db_index=True)
    started_on = models.DateField(default=timezone.localdate)
    stop_reason = models.CharField(max_length=200, blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now)
    ended_at = models.DateTimeField(null=True, blank=True)

    history = HistoricalRecords()

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            # One live run of a plan per contact: assigning twice (or a retried task) creates nothing new.
            models.UniqueConstraint(
                fields=["plan", "contact"],
                condition=models.Q(status__in=["active", "paused"]),
                name="planrun_one_live_per_contact",
            )
        ]
        indexes = [models.Index(fields=["assignee", "status"])]

    def __str__(self) -> str:
        return f"{self.plan} for {self.contact} ({self.get_status_display()})"


class TierCadence(models.Model):
    """Default "get in touch every N days" for a contact tier (A, B, C or blank)."""

    tier = models.CharField(max_length=1, unique=True, blank=True)
    days = models.PositiveIntegerField()

    def __str__(self) -> str:
        return f"Tier {self.tier or '—'}: every {self.days} days"


class ContactCadence(models.Model):
    """A contact's touch cadence: set by a person, or learned from the median gap between their touches."""

    class Source(models.TextChoices):
        EXPLICIT = "explicit", "Set by hand"
        LEARNED = "learned", "Learned from touch history"

    contact = models.OneToOneField("contacts.Contact", on_delete=models.CASCADE, related_name="cadence")
    days = models.PositiveIntegerField()
    source = models.CharField(max_length=8, choices=Source.choices, default=Source.EXPLICIT)
    updated_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"{self.contact}: every {self.days} days ({self.get_source_display()})"


class TouchPrompt(models.Model):
    """ "Time to get in touch": raised by the set-based beat scan on the contact owner's My day."""

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        SNOOZED = "snoozed", "Snoozed"
        DONE = "done", "Turned into an activity"
        DISMISSED = "dismissed", "Dismissed"

    contact = models.ForeignKey("contacts.Contact", on_delete=models.CASCADE, related_name="touch_prompts")
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="touch_prompts")
    cadence_days = models.PositiveIntegerField()
    cadence_source = models.CharField(max_length=16, default="tier")
    last_touch_at = models.DateTimeField(null=True, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.OPEN)
    snoozed_until = models.DateField(null=True, blank=True)
    activity = models.ForeignKey(Activity, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["contact"],
                condition=models.Q(status__in=["open", "snoozed"]),
                name="touchprompt_one_live_per_contact",
            )
        ]
        indexes = [
            # My day lists a user's open prompts by oldest last touch: a rep can own tens of thousands, and this
            # index hands over the first page without sorting them all.
            models.Index(
                fields=["owner", "last_touch_at", "id"], condition=models.Q(status="open"), name="touchprompt_open"
            ),
            models.Index(fields=["owner", "status"]),
        ]

    def __str__(self) -> str:
        return f"Get in touch with {self.contact}"

    @property
    def reason(self) -> str:
        if self.last_touch_at is None:
            return f"usually every {self.cadence_days} days, never touched"
        days = (timezone.now() - self.last_touch_at).days
        return f"usually every {self.cadence_days} days, last touch {days} days ago"
