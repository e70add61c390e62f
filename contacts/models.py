"""People and organisations, and every address at which a person can be reached."""

from __future__ import annotations

from django.contrib.postgres.fields import ArrayField
from django.contrib.postgres.indexes import GinIndex
from django.contrib.postgres.search import SearchVectorField
from django.db import models
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
    company = models.ForeignKey(Company, on_delete=models.SET_NULL, null=True, blank=True, related_name="contacts")
    lifecycle_stage = models.CharField(max_length=16, choices=Stage.choices, default=Stage.LEAD, db_index=True)
    tier = models.CharField(max_length=1, choices=Tier.choices, blank=True, default="")
    tags = ArrayField(models.CharField(max_length=64), default=list, blank=True)
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
    last_touch_at = models.DateTimeField(null=True, blank=True, db_index=True)
    search_vector = SearchVectorField(null=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    history = HistoricalRecords(excluded_fields=["search_vector", "last_touch_at"])

    class Meta:
        ordering = ["-id"]
        indexes = [
            GinIndex(fields=["search_vector"], name="contact_search_gin"),
            GinIndex(fields=["tags"], name="contact_tags_gin"),
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

    contact = models.ForeignKey(Contact, on_delete=models.CASCADE, related_name="identities")
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
