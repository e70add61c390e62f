"""People and organisations, and every address at which a person can be reached."""

from __future__ import annotations

from django.contrib.postgres.fields import ArrayField
from django.contrib.postgres.indexes import GinIndex
from django.contrib.postgres.search import SearchVectorField
from django.db import models
from django.db.models.functions import ExtractDay, ExtractMonth
from django.utils import timezone
from simple_history.models import HistoricalRecords

from accounts.models import OwnedModel


class Company(OwnedModel):
    """An organisation. ``domains`` (e.g. ["acme.com"]) link e-mail addresses to it."""

    name = models.CharField(max_length=200)
    domains = ArrayField(models.CharField(max_length=253), default=list, blank=True)
    industry = models.CharField(max_length=120, blank=True, default="")
    size = models.CharField(max_length=32, blank=True, default="", help_text='Head count band, e.g. "51-200".')
    website = models.URLField(blank=True, default="")
    street = models.CharField(max_length=200, blank=True, default="")
    city = models.CharField(max_length=120, blank=True, default="")
    region = models.CharField(max_length=120, blank=True, default="")
    postal_code = models.CharField(max_length=32, blank=True, default="")
    country = models.CharField(max_length=2, blank=True, default="", help_text="ISO 3166-1 alpha-2")
    tags = ArrayField(models.CharField(max_length=64), default=list, blank=True)
    notes = models.TextField(blank=True, default="")
    search_vector = SearchVectorField(null=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    history = HistoricalRecords(excluded_fields=["search_vector"])

    class Meta:
        ordering = ["name", "id"]
        verbose_name_plural = "companies"
        indexes = [
            GinIndex(fields=["search_vector"], name="company_search_gin"),
            GinIndex(fields=["domains"], name="company_domains_gin"),
            models.Index(fields=["owner", "-id"]),
            models.Index(fields=["team", "visibility", "-id"]),
        ]

    def __str__(self) -> str:
        return self.name


class Contact(OwnedModel):
    """A person the business has a relationship with."""

    class Stage(models.TextChoices):
        LEAD = "lead", "Lead"
        PROSPECT = "prospect", "Prospect"
        CUSTOMER = "customer", "Customer"
        FORMER = "former", "Former customer"

    class Tier(models.TextChoices):
        A = "A", "Tier A"
        B = "B", "Tier B"
        C = "C", "Tier C"

    first_name = models.CharField(max_length=120, blank=True, default="")
    last_name = models.CharField(max_length=120, blank=True, default="")
    title = models.CharField(max_length=200, blank=True, default="")
    # Foreign keys without their own index: the composite indexes in Meta lead with them and serve the same
    # lookups, and every index costs each insert (a CSV import writes thousands of contacts a second).
    owner = models.ForeignKey(
        "accounts.User", on_delete=models.PROTECT, null=True, blank=True, related_name="+", db_index=False
    )
    team = models.ForeignKey(
        "accounts.Team", on_delete=models.SET_NULL, null=True, blank=True, related_name="+", db_index=False
    )
    company = models.ForeignKey(
        Company, on_delete=models.SET_NULL, null=True, blank=True, related_name="contacts", db_index=False
    )
    lifecycle_stage = models.CharField(max_length=16, choices=Stage.choices, default=Stage.LEAD, db_index=True)
    tier = models.CharField(max_length=1, choices=Tier.choices, blank=True, default="")
    tags = ArrayField(models.CharField(max_length=64), default=list, blank=True)
    birthday = models.DateField(null=True, blank=True)
    street = models.CharField(max_length=200, blank=True, default="")
    city = models.CharField(max_length=120, blank=True, default="")
    region = models.CharField(max_length=120, blank=True, default="")
    postal_code = models.CharField(max_length=32, blank=True, default="")
    country = models.CharField(max_length=2, blank=True, default="")
    latitude = models.DecimalField(max_digits=9, decimal_places=6, null=True, blank=True)
    longitude = models.DecimalField(max_digits=9, decimal_places=6, null=True, blank=True)
    time_zone = models.CharField(max_length=64, blank=True, default="")
    language = models.CharField(max_length=16, blank=True, default="")
    notes = models.TextField(blank=True, default="")
    custom_fields = models.JSONField(default=dict, blank=True)
    do_not_contact = models.BooleanField(default=False)
    # Not indexed on purpose: every ingested message moves it, and with no index on it that UPDATE can be a HOT
    # update (no index entries written; the table keeps free space per page for it, see migration 0005).
    last_touch_at = models.DateTimeField(null=True, blank=True)
    search_vector = SearchVectorField(null=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    history = HistoricalRecords(excluded_fields=["search_vector", "last_touch_at"])

    class Meta:
        ordering = ["-id"]
        indexes = [
            GinIndex(fields=["search_vector"], name="contact_search_gin"),
            GinIndex(fields=["tags"], name="contact_tags_gin"),
            # My day asks "whose birthday falls in the next 14 days": month/day equality, index-served.
            models.Index(
                ExtractMonth("birthday"),
                ExtractDay("birthday"),
                name="contact_birthday_md",
                condition=models.Q(birthday__isnull=False),
            ),
            models.Index(fields=["owner", "-id"]),
            models.Index(fields=["team", "visibility", "-id"]),
            models.Index(fields=["company", "-id"]),
        ]

    def __str__(self) -> str:
        return self.display_name

    @property
    def display_name(self) -> str:
        return f"{self.first_name} {self.last_name}".strip() or f"Contact #{self.pk}"


class ContactIdentity(models.Model):
    """One address at which a contact can be reached. ``(kind, normalized)`` is unique: one address, one person.

    Every incoming message's author is resolved through this table.
    """

    class Kind(models.TextChoices):
        EMAIL = "email", "E-mail"
        PHONE = "phone", "Phone"
        TWITTER = "twitter", "Twitter/X"
        FACEBOOK = "facebook", "Facebook"
        LINKEDIN = "linkedin", "LinkedIn"
        SKYPE = "skype", "Skype"
        IM = "im", "Instant messaging"
        WEBSITE = "website", "Website"
        OTHER = "other", "Other"

    # No index of its own: Meta's (contact, kind) index leads with it.
    contact = models.ForeignKey(Contact, on_delete=models.CASCADE, related_name="identities", db_index=False)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    value = models.CharField(max_length=320, help_text="As entered or received.")
    normalized = models.CharField(max_length=320, help_text="Lower-cased e-mail, E.164 phone, numeric social id.")
    handle = models.CharField(max_length=120, blank=True, default="", help_text="Current social handle, if any.")
    label = models.CharField(max_length=32, blank=True, default="", help_text="work, home, mobile ...")
    is_primary = models.BooleanField(default=False)
    verified = models.BooleanField(default=False)
    source = models.CharField(max_length=64, blank=True, default="manual")
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    history = HistoricalRecords()

    class Meta:
        verbose_name_plural = "contact identities"
        ordering = ["kind", "-is_primary", "id"]
        constraints = [
            models.UniqueConstraint(fields=["kind", "normalized"], name="identity_unique_kind_normalized"),
        ]
        indexes = [
            # text_pattern_ops: prefix search (LIKE 'abc%') uses the index whatever the database collation.
            models.Index(fields=["normalized"], name="identity_normalized_prefix", opclasses=["varchar_pattern_ops"]),
            models.Index(fields=["contact", "kind"]),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: {self.value}"

    @property
    def profile_url(self) -> str:
        """The public profile page of a social identity ("" for other kinds). A numeric id links by id, so the
        link survives a handle change; a handle links by handle."""
        key = self.normalized.lstrip("@")
        if not key:
            return ""
        if self.kind == self.Kind.TWITTER:
            return f"https://x.com/i/user/{key}" if key.isdigit() else f"https://x.com/{self.handle or key}"
        if self.kind == self.Kind.FACEBOOK:
            return f"https://www.facebook.com/{key}"
        if self.kind == self.Kind.LINKEDIN:
            return f"https://www.linkedin.com/in/{self.handle or key}"
        return ""

    @property
    def social_id(self) -> str:
        """The provider's numeric user id, when that is what identifies this social identity."""
        return (
            self.normalized
            if self.kind in (self.Kind.TWITTER, self.Kind.FACEBOOK) and self.normalized.isdigit()
            else ""
        )

    @property
    def display_handle(self) -> str:
        return f"@{self.handle}" if self.handle and self.kind == self.Kind.TWITTER else self.handle


class CustomFieldDefinition(models.Model):
    """A typed field admins add to every contact. Values live in ``Contact.custom_fields`` under ``key``.

    contacts.customfields validates values against these definitions on every write path (UI, API, import).
    """

    class Type(models.TextChoices):
        TEXT = "text", "Text"
        NUMBER = "number", "Number"
        DATE = "date", "Date"
        CHOICE = "choice", "Choice"
        BOOLEAN = "boolean", "Yes/no"

    key = models.SlugField(max_length=64, unique=True, help_text="Stable name used in the API and CSV headers.")
    label = models.CharField(max_length=120)
    field_type = models.CharField(max_length=8, choices=Type.choices, default=Type.TEXT)
    choices = ArrayField(models.CharField(max_length=120), default=list, blank=True, help_text="For choice fields.")
    required = models.BooleanField(default=False)
    help_text = models.CharField(max_length=200, blank=True, default="")
    order = models.PositiveSmallIntegerField(default=0)
    is_active = models.BooleanField(default=True)

    history = HistoricalRecords()

    class Meta:
        ordering = ["order", "label"]

    def __str__(self) -> str:
        return f"{self.label} ({self.get_field_type_display()})"


class Relationship(models.Model):
    """A directed, typed link between two contacts: "from_contact reports_to to_contact".

    Symmetric kinds (colleague, family, friend) are stored once; the graph query walks edges both ways.
    """

    class Kind(models.TextChoices):
        COLLEAGUE = "colleague", "Colleague of"
        REPORTS_TO = "reports_to", "Reports to"
        FAMILY = "family", "Family of"
        FRIEND = "friend", "Friend of"
        REFERRED_BY = "referred_by", "Referred by"
        ADVISOR = "advisor", "Advisor to"

    from_contact = models.ForeignKey(Contact, on_delete=models.CASCADE, related_name="relationships_out")
    to_contact = models.ForeignKey(Contact, on_delete=models.CASCADE, related_name="relationships_in")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    strength = models.PositiveSmallIntegerField(default=3, help_text="1 (acquaintance) to 5 (very close).")
    notes = models.TextField(blank=True, default="")
    created_by = models.ForeignKey("accounts.User", on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)

    history = HistoricalRecords()

    class Meta:
        ordering = ["-strength", "id"]
        constraints = [
            models.UniqueConstraint(fields=["from_contact", "to_contact", "kind"], name="relationship_unique_edge"),
            models.CheckConstraint(
                condition=~models.Q(from_contact=models.F("to_contact")), name="relationship_not_self"
            ),
            models.CheckConstraint(
                condition=models.Q(strength__gte=1, strength__lte=5), name="relationship_strength_1_5"
            ),
        ]
        indexes = [models.Index(fields=["to_contact", "from_contact"])]

    def __str__(self) -> str:
        return f"{self.from_contact} {self.get_kind_display().lower()} {self.to_contact}"


class LifeEvent(models.Model):
    """Something that changed in a contact's life. ``source=auto`` rows are recorded by contact_update."""

    class Kind(models.TextChoices):
        JOB_CHANGE = "job_change", "Job change"
        PROMOTION = "promotion", "Promotion"
        MOVE = "move", "Move"
        BIRTHDAY = "birthday", "Birthday"
        ANNIVERSARY = "anniversary", "Anniversary"
        ACCOMPLISHMENT = "accomplishment", "Accomplishment"
        CUSTOM = "custom", "Other"

    contact = models.ForeignKey(Contact, on_delete=models.CASCADE, related_name="life_events")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    title = models.CharField(max_length=200, blank=True, default="", help_text="For custom events, or a summary.")
    date = models.DateField(help_text="For birthdays and anniversaries, the original date; it recurs yearly.")
    note = models.TextField(blank=True, default="")
    source = models.CharField(max_length=16, default="manual", help_text="manual, auto, import, social ...")
    data = models.JSONField(default=dict, blank=True, help_text="Before/after values of an automatic event.")
    created_by = models.ForeignKey("accounts.User", on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)

    history = HistoricalRecords()

    class Meta:
        ordering = ["-date", "-id"]
        indexes = [
            models.Index(fields=["contact", "-date"]),
            models.Index(fields=["kind", "date"]),
            models.Index(
                ExtractMonth("date"),
                ExtractDay("date"),
                name="lifeevent_recurring_md",
                condition=models.Q(kind__in=["birthday", "anniversary"]),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} of {self.contact} on {self.date}"


class Consent(models.Model):
    """A contact's consent for one channel. No row means "unknown". ``Contact.do_not_contact`` overrides all."""

    class Channel(models.TextChoices):
        EMAIL = "email", "E-mail"
        SMS = "sms", "SMS"
        PHONE = "phone", "Phone calls"
        TWITTER = "twitter", "Twitter/X"
        FACEBOOK = "facebook", "Facebook"
        POST = "post", "Post"

    class Status(models.TextChoices):
        OPTED_IN = "opted_in", "Opted in"
        OPTED_OUT = "opted_out", "Opted out"
        UNKNOWN = "unknown", "Unknown"

    class LegalBasis(models.TextChoices):
        CONSENT = "consent", "Consent"
        CONTRACT = "contract", "Contract"
        LEGITIMATE_INTEREST = "legitimate_interest", "Legitimate interest"
        LEGAL_OBLIGATION = "legal_obligation", "Legal obligation"
        NONE = "", "—"

    contact = models.ForeignKey(Contact, on_delete=models.CASCADE, related_name="consents")
    channel = models.CharField(max_length=16, choices=Channel.choices)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.UNKNOWN)
    legal_basis = models.CharField(max_length=24, choices=LegalBasis.choices, blank=True, default="")
    source = models.CharField(
        max_length=120, blank=True, default="", help_text="Web form, import, unsubscribe link ..."
    )
    recorded_at = models.DateTimeField(default=timezone.now)
    recorded_by = models.ForeignKey("accounts.User", on_delete=models.SET_NULL, null=True, blank=True, related_name="+")

    history = HistoricalRecords()

    class Meta:
        ordering = ["channel"]
        constraints = [models.UniqueConstraint(fields=["contact", "channel"], name="consent_unique_contact_channel")]

    def __str__(self) -> str:
        return f"{self.contact}: {self.get_channel_display()} {self.get_status_display()}"


class DuplicateCandidate(models.Model):
    """A pair of contacts that may be one person, found by the duplicate finder. ``contact_a_id < contact_b_id``."""

    class Strength(models.TextChoices):
        STRONG = "strong", "Strong (shared identity)"
        WEAK = "weak", "Weak (similar name, same company or domain)"

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        MERGED = "merged", "Merged"
        DISMISSED = "dismissed", "Not a duplicate"

    contact_a = models.ForeignKey(Contact, on_delete=models.CASCADE, related_name="+")
    contact_b = models.ForeignKey(Contact, on_delete=models.CASCADE, related_name="+")
    strength = models.CharField(max_length=8, choices=Strength.choices)
    reason = models.CharField(max_length=300)
    score = models.FloatField(default=0.0)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.OPEN, db_index=True)
    found_at = models.DateTimeField(default=timezone.now)
    reviewed_by = models.ForeignKey("accounts.User", on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    reviewed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-score", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["contact_a", "contact_b"], name="duplicate_unique_pair"),
            models.CheckConstraint(
                condition=models.Q(contact_a__lt=models.F("contact_b")), name="duplicate_ordered_pair"
            ),
        ]
        indexes = [models.Index(fields=["status", "-score"])]

    def __str__(self) -> str:
        return f"{self.contact_a_id} ~ {self.contact_b_id} ({self.strength})"


class MergeRecord(models.Model):
    """What contact_merge did, with enough to undo it: snapshots of both contacts and every row it moved."""

    primary = models.ForeignKey(Contact, on_delete=models.SET_NULL, null=True, related_name="merge_records")
    duplicate_id_was = models.BigIntegerField(help_text="The merged-away contact's id, restored on unmerge.")
    primary_snapshot = models.JSONField(default=dict)
    duplicate_snapshot = models.JSONField(default=dict)
    moved = models.JSONField(default=dict, help_text="Per merge handler, what it moved (ids), for unmerge.")
    conflicts = models.JSONField(default=list, blank=True, help_text="Identities that could not move, and why.")
    actor = models.ForeignKey("accounts.User", on_delete=models.SET_NULL, null=True, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    unmerged_at = models.DateTimeField(null=True, blank=True)
    unmerged_by = models.ForeignKey("accounts.User", on_delete=models.SET_NULL, null=True, blank=True, related_name="+")

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"merge #{self.pk}: {self.duplicate_id_was} into {self.primary_id}"


class SavedView(models.Model):
    """A named set of contact-list filters; ``shared`` makes it visible to the owner's teams."""

    owner = models.ForeignKey("accounts.User", on_delete=models.CASCADE, related_name="saved_views")
    name = models.CharField(max_length=120)
    filters = models.JSONField(default=dict)
    shared = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["owner", "name"], name="savedview_unique_owner_name")]

    def __str__(self) -> str:
        return self.name


class ImportJob(OwnedModel):
    """A CSV import. Rows are processed in chunks; ``next_row`` moves in the same transaction as the chunk's
    writes, so a crashed worker resumes exactly where the last committed chunk ended.
    """

    class Status(models.TextChoices):
        DRAFT = "draft", "Awaiting mapping"
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    class OnDuplicate(models.TextChoices):
        UPDATE = "update", "Update the existing contact"
        SKIP = "skip", "Skip the row"

    file_name = models.CharField(max_length=255)
    file_sha256 = models.CharField(max_length=64, db_index=True)
    data = models.BinaryField(help_text="The uploaded file as received, so a resumed job reads the same bytes.")
    encoding = models.CharField(max_length=32, blank=True, default="")
    delimiter = models.CharField(max_length=1, default=",")
    headers = ArrayField(models.CharField(max_length=200), default=list, blank=True)
    mapping = models.JSONField(default=dict, blank=True, help_text="CSV header -> contact field or identity kind.")
    on_duplicate = models.CharField(max_length=8, choices=OnDuplicate.choices, default=OnDuplicate.SKIP)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.DRAFT, db_index=True)
    total_rows = models.PositiveIntegerField(default=0)
    next_row = models.PositiveIntegerField(default=0, help_text="Data rows before this index are committed.")
    created_count = models.PositiveIntegerField(default=0)
    updated_count = models.PositiveIntegerField(default=0)
    skipped_count = models.PositiveIntegerField(default=0)
    error_count = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True, default="", help_text="Why the whole job failed, if it did.")
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"Import {self.file_name} ({self.get_status_display()})"

    @property
    def progress_percent(self) -> int:
        return int(100 * self.next_row / self.total_rows) if self.total_rows else 0


class ImportRowError(models.Model):
    """A row an import could not take, with the reasons and the raw values: the downloadable error report."""

    job = models.ForeignKey(ImportJob, on_delete=models.CASCADE, related_name="row_errors")
    row_number = models.PositiveIntegerField(help_text="1-based line of the data row, header excluded.")
    errors = models.JSONField(default=dict)
    raw = models.JSONField(default=dict)

    class Meta:
        ordering = ["row_number"]
        constraints = [models.UniqueConstraint(fields=["job", "row_number"], name="importrowerror_unique_row")]

    def __str__(self) -> str:
        return f"row {self.row_number} of job {self.job_id}"


class ErasureRecord(models.Model):
    """The audit entry of a GDPR erasure. It names no personal data: only ids, counts, who and when."""

    contact_id_was = models.BigIntegerField()
    counts = models.JSONField(default=dict, help_text="Rows deleted or anonymized, per data source.")
    actor = models.ForeignKey("accounts.User", on_delete=models.SET_NULL, null=True, related_name="+")
    reason = models.CharField(max_length=200, blank=True, default="", help_text="e.g. 'Art. 17 request #123'.")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"erasure of contact #{self.contact_id_was}"
