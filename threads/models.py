"""Conversation threads: connected channel accounts, the raw events they deliver, threads and messages.

The data flow is one pipeline for every channel (see threads.services.pipeline):

    connector → RawEvent (stored first, append-only) → normalize → ingest_batch() → Message in a Thread

A Thread belongs to one contact: the main thread (``topic == ""``) or a topic sub-thread. A Message keeps the
provider's conversation key (``provider_thread_key``), so later messages of a conversation follow it into
whatever topic a rep moved it to.
"""

from __future__ import annotations

from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.db.models import Q
from django.utils import timezone

from accounts.models import OwnedModel, User
from contacts.models import Contact, ContactIdentity
from crm.fields import EncryptedTextField


class Channel(models.TextChoices):
    """Where a message travelled. Connected channels have a ChannelAccount; manual ones are logged by people."""

    EMAIL = "email", "E-mail"
    SMS = "sms", "SMS"
    TWITTER = "twitter", "Twitter/X"
    FACEBOOK = "facebook", "Facebook"
    CALL = "call", "Phone call"
    MEETING = "meeting", "Meeting"
    IN_PERSON = "in_person", "In person"
    VOICEMAIL = "voicemail", "Voicemail"
    NOTE = "note", "Note"
    IM = "im", "Instant message"
    SKYPE = "skype", "Skype"
    BLOG_COMMENT = "blog_comment", "Blog comment"
    WEBHOOK = "webhook", "Other system"


MANUAL_CHANNELS = (Channel.CALL, Channel.MEETING, Channel.IN_PERSON, Channel.VOICEMAIL, Channel.NOTE)


class Direction(models.TextChoices):
    INBOUND = "inbound", "Inbound"
    OUTBOUND = "outbound", "Outbound"


class ChannelAccount(OwnedModel):
    """One connected mailbox, social account, SMS number or inbound webhook source.

    ``visibility`` (from OwnedModel) decides whose eyes its messages' bodies are for: a private mailbox's
    messages show their full body only to its owner; others see that a touch happened.
    """

    class Kind(models.TextChoices):
        EMAIL = "email", "E-mail (IMAP/SMTP)"
        TWITTER = "twitter", "Twitter/X"
        FACEBOOK = "facebook", "Facebook page"
        SMS = "sms", "SMS (Twilio)"
        WEBHOOK = "webhook", "Inbound webhook"

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        PAUSED = "paused", "Paused"
        FAILING = "failing", "Failing"
        NEEDS_REAUTH = "needs_reauth", "Needs re-authentication"

    class UnknownPolicy(models.TextChoices):
        CREATE_LEAD = "create_lead", "Create a lead contact"
        UNMATCHED = "unmatched", "Hold in the unmatched queue"

    kind = models.CharField(max_length=16, choices=Kind.choices)
    name = models.CharField(max_length=120)
    slug = models.SlugField(
        max_length=64, unique=True, null=True, blank=True, help_text="Webhook sources: the <source> in the URL."
    )
    address = models.CharField(
        max_length=320, blank=True, default="",
        help_text="Our own address on the channel (mailbox address, E.164 number, handle): decides direction.",
    )  # fmt: skip
    credentials = EncryptedTextField(blank=True, default="", help_text="JSON, encrypted at rest.")
    config = models.JSONField(default=dict, blank=True, help_text="Non-secret settings: hosts, ports, folders.")
    unknown_policy = models.CharField(max_length=16, choices=UnknownPolicy.choices, default=UnknownPolicy.CREATE_LEAD)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE, db_index=True)
    cursor = models.JSONField(default=dict, blank=True, help_text="Where the last committed sync stopped.")
    throttle = models.JSONField(default=dict, blank=True, help_text="Per-endpoint rate-limit state.")
    last_sync_at = models.DateTimeField(null=True, blank=True)
    last_success_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True, default="")
    consecutive_failures = models.PositiveIntegerField(default=0)
    next_sync_at = models.DateTimeField(null=True, blank=True, help_text="Back-off: no poll before this time.")
    reported_count = models.BigIntegerField(default=0, help_text="Messages the provider reports holding.")
    stored_count = models.BigIntegerField(default=0, help_text="Messages stored from this account.")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.get_kind_display()})"

    @property
    def coverage(self) -> float | None:
        if not self.reported_count:
            return None
        return min(1.0, self.stored_count / self.reported_count)


class RawEvent(models.Model):
    """What a provider delivered, byte for byte, stored before anything interprets it. Never edited except for
    its processing state, so a fixed normalizer can replay it (``manage.py replay_events``)."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        PROCESSED = "processed", "Processed"
        DEAD = "dead", "Dead letter"
        IGNORED = "ignored", "Ignored"

    id = models.BigAutoField(primary_key=True)
    channel_account = models.ForeignKey(ChannelAccount, on_delete=models.CASCADE, related_name="raw_events")
    provider_event_id = models.CharField(max_length=255)
    event_type = models.CharField(max_length=32, help_text="Selects the normalizer: email, webhook, tweet ...")
    content_type = models.CharField(max_length=64, default="application/json")
    payload = models.BinaryField(help_text="Raw RFC 822 bytes or JSON.")
    meta = models.JSONField(default=dict, blank=True, help_text="Where it came from: folder, UID, headers.")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    received_at = models.DateTimeField(default=timezone.now)
    processed_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True, default="")

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["channel_account", "provider_event_id"], name="rawevent_unique_account_event"
            ),
        ]
        indexes = [
            models.Index(
                fields=["channel_account", "id"], name="rawevent_pending",
                condition=Q(status__in=["pending", "dead"]),
            ),
        ]  # fmt: skip

    def __str__(self) -> str:
        return f"{self.event_type} {self.provider_event_id} ({self.status})"


class Thread(models.Model):
    """A contact's conversation: the main thread (``topic`` empty) or a topic sub-thread.

    Visible to whoever may see the contact. ``awaiting_reply`` is true when the newest message is inbound.
    """

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        WAITING = "waiting", "Waiting for them"
        CLOSED = "closed", "Closed"

    id = models.BigAutoField(primary_key=True)
    contact = models.ForeignKey(Contact, on_delete=models.CASCADE, related_name="threads", db_index=False)
    topic = models.CharField(max_length=200, blank=True, default="")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.OPEN)
    # No index of its own: "thread_assignee" below starts with it, and each index costs every ingest's update.
    assignee = models.ForeignKey(
        User, on_delete=models.SET_NULL, null=True, blank=True, related_name="+", db_index=False
    )
    participants = ArrayField(models.CharField(max_length=320), default=list, blank=True)
    message_count = models.PositiveIntegerField(default=0)
    last_message_at = models.DateTimeField(null=True, blank=True)
    # When the newest message was stored (not sent): unread state compares with this, so late-fetched mail with
    # an old Date header still makes a thread unread.
    last_received_at = models.DateTimeField(null=True, blank=True)
    last_inbound_at = models.DateTimeField(null=True, blank=True)
    last_outbound_at = models.DateTimeField(null=True, blank=True)
    awaiting_reply = models.BooleanField(default=False)
    last_subject = models.CharField(max_length=300, blank=True, default="")
    last_channel = models.CharField(max_length=16, choices=Channel.choices, blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            # One main thread (topic "") per contact: ingest relies on it to create a main thread exactly once.
            models.UniqueConstraint(fields=["contact", "topic"], name="thread_unique_contact_topic"),
        ]
        indexes = [
            models.Index(fields=["-last_message_at", "-id"], name="thread_inbox_order"),
            # Assigned threads only: "assigned to X" and the user's SET_NULL need nothing else ("unassigned" reads
            # the inbox order), and an unassigned thread's update, on every ingested message, skips this index.
            models.Index(
                fields=["assignee", "-last_message_at"], name="thread_assignee", condition=Q(assignee__isnull=False)
            ),
        ]

    def __str__(self) -> str:
        return f"{self.contact_id}: {self.topic or 'main'}"

    @property
    def is_main(self) -> bool:
        return self.topic == ""


class ThreadRead(models.Model):
    """Per-user unread state: the thread is unread for ``user`` when it has a message newer than ``read_at``."""

    thread = models.ForeignKey(Thread, on_delete=models.CASCADE, related_name="reads")
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="+")
    read_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["thread", "user"], name="threadread_unique")]

    def __str__(self) -> str:
        return f"{self.user_id} read {self.thread_id} at {self.read_at:%Y-%m-%d %H:%M}"


class Message(models.Model):
    """One message on any channel. Stored once: ``UNIQUE(channel_account, external_id)`` within an account and
    ``global_key`` across accounts (the same e-mail in two team mailboxes is one message ``seen_by`` both).

    ``thread`` and ``contact`` are empty while the author is unknown and the account's policy holds such
    messages in the unmatched queue.
    """

    class Delivery(models.TextChoices):
        NONE = "", "—"
        QUEUED = "queued", "Queued"
        SENT = "sent", "Sent"
        DELIVERED = "delivered", "Delivered"
        FAILED = "failed", "Failed"

    id = models.BigAutoField(primary_key=True)
    # FK indexes come from the composite indexes below: every extra index costs ingest throughput. The three
    # references are enforced by statement-level triggers (migration 0005) instead of row-level foreign keys: a
    # foreign key runs one lookup per inserted row at commit, the trigger one set-based lookup per statement.
    thread = models.ForeignKey(
        Thread, on_delete=models.CASCADE, null=True, blank=True, related_name="messages", db_index=False,
        db_constraint=False,
    )  # fmt: skip
    contact = models.ForeignKey(
        Contact, on_delete=models.CASCADE, null=True, blank=True, related_name="messages", db_index=False,
        db_constraint=False,
    )  # fmt: skip
    channel_account = models.ForeignKey(
        ChannelAccount, on_delete=models.PROTECT, null=True, blank=True, related_name="messages", db_index=False,
        db_constraint=False,
    )  # fmt: skip
    channel = models.CharField(max_length=16, choices=Channel.choices)
    direction = models.CharField(max_length=8, choices=Direction.choices)
    # Identifiers, not words: compared byte by byte ("C"), which keeps the three indexes that ingest probes and
    # extends for every message free of locale-aware string comparison (many times the cost of a memcmp).
    external_id = models.CharField(max_length=512, db_collation="C")
    global_key = models.CharField(max_length=600, null=True, blank=True, db_collation="C")
    provider_thread_key = models.CharField(max_length=512, blank=True, default="", db_collation="C")
    # Soft references (no database constraint, no index, nothing done on delete): the pipeline resolved them in
    # the same transaction, and each constraint or index would cost every ingested message a lookup or an index
    # insert. The address and name columns keep what the identity said, should the identity later be removed.
    author_identity = models.ForeignKey(
        ContactIdentity, on_delete=models.DO_NOTHING, null=True, blank=True, related_name="+", db_index=False,
        db_constraint=False,
    )  # fmt: skip
    author_address = models.CharField(max_length=320, blank=True, default="", help_text="Normalized.")
    author_name = models.CharField(max_length=200, blank=True, default="")
    recipients = models.JSONField(default=list, blank=True, help_text='[{"kind": "to", "address", "name"}]')
    sent_at = models.DateTimeField()
    subject = models.CharField(max_length=998, blank=True, default="")
    body_text = models.TextField(blank=True, default="", help_text="The full text, quotes and signature kept.")
    body_display = models.TextField(blank=True, default="", help_text="The new part: quotes and signature cut.")
    body_html = models.TextField(blank=True, default="", help_text="Sanitized with nh3 before it is stored.")
    raw_event = models.ForeignKey(
        RawEvent, on_delete=models.DO_NOTHING, null=True, blank=True, related_name="+", db_index=False,
        db_constraint=False,
    )  # fmt: skip
    is_private = models.BooleanField(default=False, help_text="Only private mailboxes saw it.")
    body_visible_to = ArrayField(models.BigIntegerField(), default=list, blank=True)
    seen_by = ArrayField(models.BigIntegerField(), default=list, blank=True, help_text="Channel account ids.")
    delivery = models.CharField(max_length=16, choices=Delivery.choices, blank=True, default="")
    deleted_at = models.DateTimeField(
        null=True, blank=True, help_text="The provider reported it deleted (a tweet, a comment); kept, marked."
    )
    meta = models.JSONField(default=dict, blank=True, help_text="Channel details: headers, duration, outcome.")
    created_by = models.ForeignKey(
        User, on_delete=models.SET_NULL, null=True, blank=True, related_name="+", db_index=False, db_constraint=False
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["channel_account", "external_id"], name="message_unique_account_external"),
            models.UniqueConstraint(fields=["global_key"], name="message_unique_global_key"),
            # A person's messages are found through their threads (the timeline): one with a contact has a thread.
            models.CheckConstraint(
                condition=Q(contact__isnull=True) | Q(thread__isnull=False), name="message_contact_has_thread"
            ),
        ]
        indexes = [
            models.Index(fields=["thread", "-sent_at", "-id"], name="message_thread_order"),
            # Ingest's "which thread is this conversation in": the newest message's thread straight from the index
            # (an index-only probe, no sort, no heap visit once the page is all-visible).
            models.Index(
                fields=["contact", "provider_thread_key", "-id"], name="message_contact_thread_key", include=["thread"]
            ),
            models.Index(
                fields=["channel_account", "-sent_at"], name="message_unmatched", condition=Q(contact__isnull=True)
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_channel_display()} {self.direction} {self.subject[:40]}"

    def body_visible_for(self, user: User) -> bool:
        """Private-mailbox messages show their body only to the mailbox owner(s)."""
        return not self.is_private or (user.is_authenticated and user.pk in self.body_visible_to)


def attachment_path(instance: Attachment, filename: str) -> str:
    return f"attachments/{timezone.now():%Y/%m}/{instance.message_id}/{filename[-120:]}"


class Attachment(models.Model):
    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="attachments")
    file = models.FileField(upload_to=attachment_path, max_length=300, null=True, blank=True)
    name = models.CharField(max_length=255)
    content_type = models.CharField(max_length=127, default="application/octet-stream")
    size = models.BigIntegerField(default=0)
    omitted = models.CharField(max_length=200, blank=True, default="", help_text="Why the bytes were not kept.")

    def __str__(self) -> str:
        return self.name
