"""Listening: rules written in a small query language, the sources of public posts they run over, the posts
themselves, the mentions a match produces and the alerts it raises.

Every incoming message (the threads pipeline's ``messages_ingested`` event) and every public post from a
listening source is checked against every active rule by one compiled engine (``listening.query``). The engine
is rebuilt in each worker when ``RuleSetVersion`` changes, which every rule write bumps in its transaction.
"""

from __future__ import annotations

from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.utils import timezone

from accounts.models import OwnedModel
from crm.fields import EncryptedTextField


class RuleSetVersion(models.Model):
    """A single row (pk=1). Every rule create/update/delete increments ``version`` in the same transaction, so a
    worker holding an engine compiled at an older version knows to rebuild it (checked every few seconds)."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    version = models.BigIntegerField(default=0)
    changed_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"rules v{self.version}"


class ListeningSource(OwnedModel):
    """Where public posts come from: an RSS/Atom feed, a signed webhook, or (through a social channel account)
    Twitter/X recent search or a Facebook page feed. Messages in threads are not a source row: rules opt into
    them with ``ListeningRule.include_messages``."""

    class Kind(models.TextChoices):
        RSS = "rss", "RSS/Atom feed"
        WEBHOOK = "webhook", "Signed webhook"
        TWITTER_SEARCH = "twitter_search", "Twitter/X recent search"
        FACEBOOK_PAGE = "facebook_page", "Facebook page feed"

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        PAUSED = "paused", "Paused"
        FAILING = "failing", "Failing"

    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=80, unique=True, help_text="Names the source in webhook URLs.")
    kind = models.CharField(max_length=20, choices=Kind.choices)
    url = models.URLField(max_length=2000, blank=True, default="", help_text="Feed address (RSS/Atom).")
    channel_account = models.ForeignKey(
        "threads.ChannelAccount", on_delete=models.PROTECT, null=True, blank=True, related_name="+",
        help_text="The connected social account a search or page feed runs through.",
    )  # fmt: skip
    secret = EncryptedTextField(blank=True, default="", help_text="Webhook HMAC secret, encrypted at rest.")
    config = models.JSONField(default=dict, blank=True, help_text="Kind-specific settings (page id, query …).")
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.ACTIVE)
    cursor = models.JSONField(default=dict, blank=True, help_text="Where the next fetch starts (etag, since_id …).")
    fetch_interval_s = models.PositiveIntegerField(default=900)
    last_fetched_at = models.DateTimeField(null=True, blank=True)
    next_fetch_at = models.DateTimeField(null=True, blank=True, db_index=True)
    last_error = models.TextField(blank=True, default="")
    consecutive_failures = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class ListeningRule(OwnedModel):
    """A saved query and what to do when it matches. See ``listening.query`` for the language."""

    class ActivityFor(models.TextChoices):
        NONE = "", "No activity"
        CONTACT_OWNER = "contact_owner", "The contact's owner"
        RULE_OWNER = "rule_owner", "The rule's owner"

    name = models.CharField(max_length=200)
    query = models.TextField(help_text='e.g. (acme OR "acme corp") NEAR/5 switch* AND sentiment:negative')
    description = models.TextField(blank=True, default="")
    active = models.BooleanField(default=True)
    # Where it runs. Empty ``channels`` means every channel; empty ``sources`` means every listening source.
    include_messages = models.BooleanField(default=True, help_text="Run over messages ingested into threads.")
    include_posts = models.BooleanField(default=True, help_text="Run over public posts from listening sources.")
    channels = ArrayField(models.CharField(max_length=20), default=list, blank=True)
    sources = models.ManyToManyField(ListeningSource, blank=True, related_name="rules")
    # Actions, each with its own cooldown (minutes; 0 = every match).
    alert_in_app = models.BooleanField(default=True)
    alert_cooldown_minutes = models.PositiveIntegerField(default=60)
    alert_email_digest = models.BooleanField(default=False)
    activity_for = models.CharField(max_length=16, choices=ActivityFor.choices, blank=True, default="")
    activity_kind = models.CharField(max_length=16, default="task")
    activity_title = models.CharField(max_length=200, blank=True, default="", help_text="Default: the rule name.")
    activity_cooldown_minutes = models.PositiveIntegerField(default=1440, help_text="Per contact.")
    tag = models.CharField(max_length=64, blank=True, default="", help_text="Tag the matched contact with this.")
    # Spike alerts: last-24 h volume above the 7-day daily mean + k std devs (and at least ``spike_min_count``).
    spike_alerts = models.BooleanField(default=True)
    spike_k = models.FloatField(default=3.0)
    spike_min_count = models.PositiveIntegerField(default=5)
    digest_sent_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]
        indexes = [models.Index(fields=["active"], name="listening_rule_active")]

    def __str__(self) -> str:
        return self.name


class Post(models.Model):
    """A public post from a listening source, stored once however many rules match it."""

    id = models.BigAutoField(primary_key=True)
    source = models.ForeignKey(ListeningSource, on_delete=models.CASCADE, related_name="posts", db_index=False)
    external_id = models.CharField(max_length=512)
    channel = models.CharField(max_length=20, help_text="twitter, facebook, blog, blog_comment, web …")
    url = models.URLField(max_length=2000, blank=True, default="")
    author_name = models.CharField(max_length=200, blank=True, default="")
    author_handle = models.CharField(max_length=200, blank=True, default="")
    # The author as a contact identity key (kind + normalized address), resolved at ingest when known.
    author_kind = models.CharField(max_length=16, blank=True, default="")
    author_address = models.CharField(max_length=320, blank=True, default="")
    contact = models.ForeignKey(
        "contacts.Contact", on_delete=models.SET_NULL, null=True, blank=True, related_name="+", db_index=False
    )
    title = models.CharField(max_length=1000, blank=True, default="")
    text = models.TextField()
    lang = models.CharField(max_length=8, blank=True, default="")
    latitude = models.FloatField(null=True, blank=True)
    longitude = models.FloatField(null=True, blank=True)
    place = models.CharField(max_length=200, blank=True, default="")
    posted_at = models.DateTimeField()
    fetched_at = models.DateTimeField(default=timezone.now)
    deleted_at = models.DateTimeField(null=True, blank=True)
    meta = models.JSONField(default=dict, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["source", "external_id"], name="listening_post_unique_source_external")
        ]
        indexes = [
            models.Index(fields=["contact", "-posted_at"], name="listening_post_contact"),
            models.Index(fields=["-posted_at"], name="listening_post_posted"),
        ]

    def __str__(self) -> str:
        return f"{self.channel} post {self.external_id}"


class Mention(models.Model):
    """One rule matching one post or one message. Unique per (rule, post) and per (rule, message)."""

    class Sentiment(models.TextChoices):
        NEGATIVE = "negative", "Negative"
        NEUTRAL = "neutral", "Neutral"
        POSITIVE = "positive", "Positive"

    id = models.BigAutoField(primary_key=True)
    rule = models.ForeignKey(ListeningRule, on_delete=models.CASCADE, related_name="mentions", db_index=False)
    post = models.ForeignKey(Post, on_delete=models.CASCADE, null=True, blank=True, related_name="mentions")
    message = models.ForeignKey(
        "threads.Message", on_delete=models.CASCADE, null=True, blank=True, related_name="+", db_index=False
    )
    contact = models.ForeignKey(
        "contacts.Contact", on_delete=models.SET_NULL, null=True, blank=True, related_name="+", db_index=False
    )
    channel = models.CharField(max_length=20)
    snippet = models.TextField(blank=True, default="", help_text="The text around the first match.")
    matched_terms = ArrayField(models.CharField(max_length=200), default=list, blank=True)
    highlights = models.JSONField(default=list, blank=True, help_text="[[start, end], …] into ``snippet``.")
    sentiment_score = models.FloatField(default=0.0, help_text="VADER compound score, -1 to 1.")
    sentiment = models.CharField(max_length=8, choices=Sentiment.choices, default=Sentiment.NEUTRAL)
    lang = models.CharField(max_length=8, blank=True, default="")
    latitude = models.FloatField(null=True, blank=True)
    longitude = models.FloatField(null=True, blank=True)
    occurred_at = models.DateTimeField(help_text="When the post or message was written.")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["rule", "post"], name="listening_mention_unique_rule_post"),
            models.UniqueConstraint(fields=["rule", "message"], name="listening_mention_unique_rule_message"),
            models.CheckConstraint(
                condition=(models.Q(post__isnull=False) & models.Q(message__isnull=True))
                | (models.Q(post__isnull=True) & models.Q(message__isnull=False)),
                name="listening_mention_post_xor_message",
            ),
        ]
        indexes = [
            models.Index(fields=["rule", "-occurred_at"], name="listening_mention_rule_time"),
            models.Index(fields=["contact", "-occurred_at"], name="listening_mention_contact"),
            models.Index(fields=["message"], name="listening_mention_message"),
            models.Index(fields=["-occurred_at"], name="listening_mention_time"),
        ]

    def __str__(self) -> str:
        return f"{self.rule} ⟶ {self.post_id or self.message_id}"


class RuleActionState(models.Model):
    """When a rule last fired an action for a scope (``""`` for the rule as a whole, ``contact:<id>`` per contact):
    the cooldown check and the write that claims it are one ``INSERT … ON CONFLICT … WHERE`` statement."""

    rule = models.ForeignKey(ListeningRule, on_delete=models.CASCADE, related_name="+", db_index=False)
    action = models.CharField(max_length=16)  # alert, activity, tag
    scope = models.CharField(max_length=64, blank=True, default="")
    last_fired_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["rule", "action", "scope"], name="listening_action_state_unique")
        ]

    def __str__(self) -> str:
        return f"{self.rule_id} {self.action} {self.scope}"


class SpikeAlert(models.Model):
    """A rule's last-24-hours volume that stood out against its 7-day history. One per rule per hour at most."""

    rule = models.ForeignKey(ListeningRule, on_delete=models.CASCADE, related_name="spikes")
    window_end = models.DateTimeField()
    count = models.PositiveIntegerField()
    mean = models.FloatField()
    stddev = models.FloatField()
    k = models.FloatField()
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-window_end"]
        constraints = [models.UniqueConstraint(fields=["rule", "window_end"], name="listening_spike_unique")]

    def __str__(self) -> str:
        return f"Spike on {self.rule}: {self.count} in 24 h"
