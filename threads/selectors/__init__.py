"""Reads of threads, messages and channel accounts, visibility-filtered here and nowhere else.

A thread (and every message in it) is visible to whoever may see its contact. A message still waiting in the
unmatched queue has no contact: it is visible to whoever may see the channel account that received it. A
private mailbox's message shows only that the touch happened (date, channel, direction, subject) to anyone but
the mailbox owner: :func:`hide_private_bodies` blanks the body fields on the instances, so no template or
serializer can leak them by accident.

Lists are keyset-paginated (``(time, id)`` descending, an opaque cursor), never OFFSET, never COUNT(*).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
from collections.abc import Iterable
from dataclasses import dataclass, field

from django.db.models import Exists, OuterRef, Prefetch, Q, QuerySet, Subquery

from accounts.models import User
from accounts.selectors import can_see, visibility_q, visible
from contacts.models import Contact, ContactIdentity
from contacts.selectors.consent import contact_reply_block_reason
from crm.errors import DomainError, NotFound
from threads.connectors import sender_for
from threads.models import Attachment, Channel, ChannelAccount, Direction, Message, RawEvent, Thread, ThreadRead
from threads.selectors.channels import channel_account_list

DEFAULT_LIMIT = 50
MAX_LIMIT = 200
SNIPPET_CHARS = 160

# Which kind of contact identity a reply through an account of this kind is addressed to.
ACCOUNT_IDENTITY_KIND = {
    ChannelAccount.Kind.EMAIL: ContactIdentity.Kind.EMAIL,
    ChannelAccount.Kind.SMS: ContactIdentity.Kind.PHONE,
    ChannelAccount.Kind.TWITTER: ContactIdentity.Kind.TWITTER,
    ChannelAccount.Kind.FACEBOOK: ContactIdentity.Kind.FACEBOOK,
}
CHANNEL_ACCOUNT_KIND = {
    Channel.EMAIL: ChannelAccount.Kind.EMAIL,
    Channel.SMS: ChannelAccount.Kind.SMS,
    Channel.TWITTER: ChannelAccount.Kind.TWITTER,
    Channel.FACEBOOK: ChannelAccount.Kind.FACEBOOK,
}
ASSIGNEE_ANY, ASSIGNEE_ME, ASSIGNEE_NONE = "", "me", "none"


# --- Cursors -------------------------------------------------------------------------------------------------

Cursor = tuple[dt.datetime, int]


def encode_cursor(at: dt.datetime, pk: int) -> str:
    raw = json.dumps([at.isoformat(), pk], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(token: str | None) -> Cursor | None:
    """The cursor of a "Load more" link, or None for the first page. A tampered token is a clear 400."""
    if not token:
        return None
    try:
        padded = token + "=" * (-len(token) % 4)
        at, pk = json.loads(base64.urlsafe_b64decode(padded.encode()))
        parsed = dt.datetime.fromisoformat(at)
        if parsed.tzinfo is None or not isinstance(pk, int) or isinstance(pk, bool):
            raise ValueError("bad cursor parts")
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError):
        raise DomainError(
            "This “Load more” link is invalid; reload the page.", fields={"cursor": ["Invalid cursor."]},
            code="invalid_cursor",
        ) from None  # fmt: skip
    return parsed, pk


def _before_q(cursor: Cursor | None, at_field: str) -> Q:
    if cursor is None:
        return Q()
    at, pk = cursor
    return Q(**{f"{at_field}__lt": at}) | Q(**{at_field: at, "pk__lt": pk})


def _limit(limit: int) -> int:
    return max(1, min(int(limit), MAX_LIMIT))


@dataclass
class Page:
    items: list
    next: str | None  # cursor of the next (older) page; None on the last one


# --- Messages: body visibility --------------------------------------------------------------------------------


def hide_private_bodies(messages: Iterable[Message], user: User) -> None:
    """Flag each message with ``body_visible`` and blank the body of those ``user`` may not read."""
    for message in messages:
        message.body_visible = message.body_visible_for(user)  # type: ignore[attr-defined]
        if not message.body_visible:  # type: ignore[attr-defined]
            message.body_text = message.body_display = message.body_html = ""
            message.recipients = []
            # The prefetched attachments are the body too: names of files say what the message was about.
            if hasattr(message, "_prefetched_objects_cache"):
                message._prefetched_objects_cache["attachments"] = Attachment.objects.none()


def _message_base() -> QuerySet[Message]:
    return Message.objects.select_related("channel_account", "created_by").prefetch_related(
        Prefetch("attachments", queryset=Attachment.objects.order_by("id"))
    )


# --- Threads --------------------------------------------------------------------------------------------------


def thread_list(*, user: User) -> QuerySet[Thread]:
    return visible(Thread.objects.all(), user, prefix="contact__")


def _unread(user: User) -> Exists:
    return ~Exists(
        ThreadRead.objects.filter(thread=OuterRef("pk"), user_id=user.pk, read_at__gte=OuterRef("last_received_at"))
    )


def inbox_threads(
    *,
    user: User,
    channel: str | None = None,
    assignee: str | int | None = None,
    unread: bool = False,
    waiting: bool = False,
    status: str | None = None,
    cursor: str | None = None,
    limit: int = DEFAULT_LIMIT,
) -> Page:
    """Threads with messages that ``user`` may see, newest first, filtered; each with ``is_unread`` and a
    ``snippet`` of its newest message (empty when that body is private to someone else)."""
    limit = _limit(limit)
    newest = Message.objects.filter(thread=OuterRef("pk")).order_by("-sent_at", "-id").values("pk")[:1]
    qs = (
        thread_list(user=user)
        .filter(last_message_at__isnull=False)
        .annotate(is_unread=_unread(user), newest_message_id=Subquery(newest))
    )
    if channel:
        if channel not in Channel.values:
            raise DomainError(f"Unknown channel {channel!r}.", fields={"channel": ["Unknown channel."]})
        # A thread may span channels: EXISTS finds it by any of its messages, not only the newest one's.
        qs = qs.filter(Exists(Message.objects.filter(thread=OuterRef("pk"), channel=channel)))
    if assignee not in (None, ASSIGNEE_ANY, "any"):
        if assignee == ASSIGNEE_ME:
            qs = qs.filter(assignee_id=user.pk)
        elif assignee == ASSIGNEE_NONE:
            qs = qs.filter(assignee__isnull=True)
        elif str(assignee).isdigit():
            qs = qs.filter(assignee_id=int(assignee))
        else:
            raise DomainError("Assignee must be “me”, “none” or a user id.", fields={"assignee": ["Invalid."]})
    if unread:
        qs = qs.filter(is_unread=True)
    if waiting:
        qs = qs.filter(awaiting_reply=True)
    if status:
        if status not in Thread.Status.values:
            raise DomainError(f"Unknown status {status!r}.", fields={"status": ["Unknown status."]})
        qs = qs.filter(status=status)
    qs = qs.filter(_before_q(decode_cursor(cursor), "last_message_at"))
    threads = list(qs.select_related("contact", "assignee").order_by("-last_message_at", "-id")[: limit + 1])
    more = len(threads) > limit
    threads = threads[:limit]
    _attach_snippets(threads, user)
    last = threads[-1] if threads else None
    next_cursor = encode_cursor(last.last_message_at, last.pk) if more and last else None
    return Page(items=threads, next=next_cursor)


def _attach_snippets(threads: list[Thread], user: User) -> None:
    """A snippet of each thread's newest message (whose id the inbox query selected), in one more query."""
    ids = {t.newest_message_id: t for t in threads if t.newest_message_id}  # type: ignore[attr-defined]
    for thread in threads:
        thread.snippet = ""  # type: ignore[attr-defined]
    rows = Message.objects.filter(pk__in=list(ids)).only("id", "body_display", "is_private", "body_visible_to")
    for message in rows:
        if message.body_visible_for(user):
            ids[message.pk].snippet = " ".join(message.body_display[:2000].split())[:SNIPPET_CHARS]


def thread_get(*, user: User, pk: int) -> Thread:
    thread = (
        thread_list(user=user).select_related("contact", "assignee").annotate(is_unread=_unread(user)).filter(pk=pk)
    ).first()
    if thread is None:
        raise NotFound("No such thread.")
    return thread


def thread_messages(*, user: User, thread: Thread, before: str | None = None, limit: int = DEFAULT_LIMIT) -> Page:
    """A page of the thread's messages, oldest first for reading; ``next`` is the cursor of the older page."""
    limit = _limit(limit)
    qs = (
        _message_base()
        .filter(thread=thread)
        .filter(visibility_q(user, prefix="thread__contact__"))
        .filter(_before_q(decode_cursor(before), "sent_at"))
        .order_by("-sent_at", "-id")
    )
    rows = list(qs[: limit + 1])
    more = len(rows) > limit
    rows = rows[:limit]
    hide_private_bodies(rows, user)
    oldest = rows[-1] if rows else None
    next_cursor = encode_cursor(oldest.sent_at, oldest.pk) if more and oldest else None
    rows.reverse()
    return Page(items=rows, next=next_cursor)


def message_get(*, user: User, pk: int) -> Message:
    """A message in a thread the user may see, or an unmatched one from an account the user may see."""
    in_thread = visibility_q(user, prefix="thread__contact__")
    unmatched = Q(contact__isnull=True, thread__isnull=True) & Q(
        channel_account__in=visible(ChannelAccount.objects.all(), user).values("pk")
    )
    message = _message_base().select_related("thread").filter(pk=pk).filter(in_thread | unmatched).first()
    if message is None:
        raise NotFound("No such message.")
    hide_private_bodies([message], user)
    return message


def attachment_get(*, user: User, pk: int) -> Attachment:
    """An attachment whose message ``user`` may read in full (a private mailbox's files stay private)."""
    attachment = Attachment.objects.filter(pk=pk).only("id", "message_id").first()
    if attachment is None:
        raise NotFound("No such attachment.")
    message = message_get(user=user, pk=attachment.message_id)
    if not message.body_visible:  # type: ignore[attr-defined]
        raise NotFound("No such attachment.")
    return Attachment.objects.get(pk=pk)


def contact_threads(*, user: User, contact: Contact) -> list[Thread]:
    """The contact's main thread first, then its topics, most recent first."""
    if not can_see(user, contact):
        raise NotFound("No such contact.")
    threads = list(Thread.objects.filter(contact=contact).select_related("assignee"))
    far_past = dt.datetime.min.replace(tzinfo=dt.UTC)
    threads.sort(key=lambda t: (t.topic != "", -(t.last_message_at or far_past).timestamp(), -t.pk))
    return threads


def unmatched_messages(*, user: User, cursor: str | None = None, limit: int = DEFAULT_LIMIT) -> Page:
    """Messages from unknown authors held by accounts whose policy is "unmatched", newest first."""
    limit = _limit(limit)
    accounts = visible(ChannelAccount.objects.all(), user).values("pk")
    qs = (
        _message_base()
        .filter(contact__isnull=True, thread__isnull=True, channel_account__in=accounts)
        .filter(_before_q(decode_cursor(cursor), "sent_at"))
        .order_by("-sent_at", "-id")
    )
    rows = list(qs[: limit + 1])
    more = len(rows) > limit
    rows = rows[:limit]
    hide_private_bodies(rows, user)
    last = rows[-1] if rows else None
    return Page(items=rows, next=encode_cursor(last.sent_at, last.pk) if more and last else None)


# --- Channel accounts (lists and lookups live in threads.selectors.channels) ----------------------------------


def account_dead_letters(account: ChannelAccount, *, limit: int = 100) -> list[RawEvent]:
    """Dead-lettered raw events of an account, newest first, without their (possibly large) payloads."""
    return list(
        RawEvent.objects.filter(channel_account=account, status=RawEvent.Status.DEAD)
        .defer("payload")
        .order_by("-id")[:limit]
    )


# --- Replying -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReplyRecipient:
    kind: str  # ContactIdentity kind
    address: str  # normalized
    label: str

    @property
    def value(self) -> str:
        return f"{self.kind}:{self.address}"


@dataclass
class ReplyOptions:
    accounts: list[ChannelAccount] = field(default_factory=list)
    recipients: list[ReplyRecipient] = field(default_factory=list)
    default_account: ChannelAccount | None = None
    default_recipient: ReplyRecipient | None = None
    subject: str = ""
    blocked: dict[int, str] = field(default_factory=dict)  # account id → why the contact may not be sent to there

    @property
    def has_twitter(self) -> bool:
        return any(a.kind == ChannelAccount.Kind.TWITTER for a in self.accounts)

    def recipients_for(self, account: ChannelAccount) -> list[ReplyRecipient]:
        kind = ACCOUNT_IDENTITY_KIND.get(account.kind)
        return [r for r in self.recipients if r.kind == kind]


def reply_subject(subject: str) -> str:
    subject = subject.strip()
    if not subject:
        return ""
    return subject if subject.lower().startswith(("re:", "re :")) else f"Re: {subject}"[:998]


def reply_options(*, user: User, thread: Thread) -> ReplyOptions:
    """Where ``user`` can answer this thread from, and to which of the contact's addresses.

    Accounts: visible to the user, active or failing (a failing one may recover; paused and needs-re-auth ones
    cannot send), of a kind with a sender. The default is the channel and address of the latest inbound
    message: reply through the channel they wrote on.
    """
    accounts = [
        a
        for a in channel_account_list(user=user).filter(
            status__in=[ChannelAccount.Status.ACTIVE, ChannelAccount.Status.FAILING],
            kind__in=list(ACCOUNT_IDENTITY_KIND),
        )
        if sender_for(a.kind) is not None
    ]
    kinds = {ACCOUNT_IDENTITY_KIND[a.kind] for a in accounts}
    identities = ContactIdentity.objects.filter(contact_id=thread.contact_id, kind__in=kinds).order_by(
        "kind", "-is_primary", "id"
    )
    recipients = [
        ReplyRecipient(i.kind, i.normalized, f"{i.get_kind_display()}: {i.value}{f' ({i.label})' if i.label else ''}")
        for i in identities
    ]
    options = ReplyOptions(accounts=accounts, recipients=recipients)
    if not accounts:
        return options
    reasons = {kind: contact_reply_block_reason(thread.contact, kind) for kind in {a.kind for a in accounts}}
    options.blocked = {a.pk: reasons[a.kind] for a in accounts if reasons[a.kind]}
    latest = latest_inbound(thread=thread)
    if latest is not None:
        options.subject = reply_subject(latest.subject) if latest.channel == Channel.EMAIL else ""
        kind = CHANNEL_ACCOUNT_KIND.get(latest.channel)
        same = [a for a in accounts if a.pk == latest.channel_account_id] or [a for a in accounts if a.kind == kind]
        if same:
            options.default_account = same[0]
            options.default_recipient = next(
                (r for r in options.recipients_for(same[0]) if r.address == latest.author_address), None
            )
    if options.default_account is None:
        options.default_account = next((a for a in accounts if options.recipients_for(a)), accounts[0])
    if options.default_recipient is None:
        options.default_recipient = next(iter(options.recipients_for(options.default_account)), None)
    if not options.subject and options.default_account.kind == ChannelAccount.Kind.EMAIL:
        options.subject = reply_subject(thread.last_subject)
    return options


def latest_inbound(*, thread: Thread, channel: str | None = None) -> Message | None:
    """The newest inbound message of the thread (on ``channel``): what a reply answers."""
    qs = Message.objects.filter(thread=thread, direction=Direction.INBOUND)
    if channel:
        qs = qs.filter(channel=channel)
    return qs.order_by("-sent_at", "-id").first()


def topic_threads(*, thread: Thread) -> list[Thread]:
    """The other threads of the same contact (merge targets). The caller has already checked ``thread``."""
    return list(Thread.objects.filter(contact_id=thread.contact_id).exclude(pk=thread.pk).order_by("topic", "id"))
