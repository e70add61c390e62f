"""Thread operations: mark read, assign, close, reopen, topics, move, split, merge, and matching unmatched messages.

Every operation checks that the actor may see the thread (``NotFound`` otherwise, indistinguishable from a missing
one) and runs in one transaction. Moving messages between threads leaves the threads' aggregate fields stale;
:func:`thread_recompute` rebuilds them from the messages in one statement.

Topics and replies: the pipeline routes a new message by ``provider_thread_key`` to the thread of the latest
message with that key, so once a conversation is moved into a topic its later replies follow it there.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from accounts.models import User
from accounts.selectors import can_see, visible
from contacts.models import Contact, ContactIdentity
from contacts.services import identity_attach
from crm.errors import DomainError, NotFound
from threads.events import messages_matched
from threads.models import Channel, ChannelAccount, Direction, Message, Thread, ThreadRead

TOPIC_MAX = 200
PARTICIPANTS_MAX = 50

# One statement for any number of threads: each thread's aggregates from its messages (a lateral scan of the
# (thread, sent_at, id) index). Participants are the customer side: inbound authors and outbound recipients.
_RECOMPUTE_SQL = """
UPDATE threads_thread t SET
    message_count = COALESCE(a.n, 0),
    last_message_at = a.last,
    last_received_at = a.received,
    last_inbound_at = a.lin,
    last_outbound_at = a.lout,
    awaiting_reply = COALESCE(a.lin > COALESCE(a.lout, '-infinity'::timestamptz), false),
    last_subject = COALESCE(left(a.subject, 300), ''),
    last_channel = COALESCE(a.channel, ''),
    participants = COALESCE(p.parts, '{}')
FROM unnest(%s::bigint[]) AS ids(id)
LEFT JOIN LATERAL (
    SELECT count(*) AS n, max(m.sent_at) AS last, max(m.created_at) AS received,
           max(m.sent_at) FILTER (WHERE m.direction = 'inbound') AS lin,
           max(m.sent_at) FILTER (WHERE m.direction = 'outbound') AS lout,
           (array_agg(m.subject ORDER BY m.sent_at DESC, m.id DESC))[1] AS subject,
           (array_agg(m.channel ORDER BY m.sent_at DESC, m.id DESC))[1] AS channel
    FROM threads_message m WHERE m.thread_id = ids.id
) a ON true
LEFT JOIN LATERAL (
    SELECT array_agg(x ORDER BY x) AS parts FROM (
        SELECT DISTINCT x FROM (
            SELECT m.author_address AS x FROM threads_message m
            WHERE m.thread_id = ids.id AND m.direction = 'inbound' AND m.author_address <> ''
            UNION
            SELECT left(r->>'address', 320) FROM threads_message m
            CROSS JOIN LATERAL jsonb_array_elements(
                CASE WHEN jsonb_typeof(m.recipients) = 'array' THEN m.recipients ELSE '[]'::jsonb END) r
            WHERE m.thread_id = ids.id AND m.direction = 'outbound' AND COALESCE(r->>'address', '') <> ''
        ) u ORDER BY x LIMIT %s
    ) d
) p ON true
WHERE t.id = ids.id
"""

# The contact identity kind an unmatched message's author address is, by the channel it arrived on.
CHANNEL_IDENTITY_KIND = {
    Channel.EMAIL: ContactIdentity.Kind.EMAIL,
    Channel.SMS: ContactIdentity.Kind.PHONE,
    Channel.CALL: ContactIdentity.Kind.PHONE,
    Channel.VOICEMAIL: ContactIdentity.Kind.PHONE,
    Channel.TWITTER: ContactIdentity.Kind.TWITTER,
    Channel.FACEBOOK: ContactIdentity.Kind.FACEBOOK,
    Channel.SKYPE: ContactIdentity.Kind.SKYPE,
    Channel.IM: ContactIdentity.Kind.IM,
}


def thread_recompute(thread_ids: Iterable[int]) -> None:
    """Rebuild message_count, last_* times, awaiting_reply, last_subject, last_channel and participants of the
    given threads from their messages, in one statement. Empty threads get zeros and NULLs."""
    ids = sorted({int(pk) for pk in thread_ids if pk})
    if ids:
        with connection.cursor() as cursor:
            cursor.execute(_RECOMPUTE_SQL, [ids, PARTICIPANTS_MAX])


def _check(thread: Thread, actor: User) -> None:
    if not can_see(actor, thread, prefix="contact__"):
        raise NotFound("No such thread.")


def _clean_topic(topic: str) -> str:
    cleaned = " ".join((topic or "").split())
    if not cleaned:
        raise DomainError("Give the topic a name.", fields={"topic": ["Required."]}, code="topic_required")
    if len(cleaned) > TOPIC_MAX:
        raise DomainError(
            f"A topic name has at most {TOPIC_MAX} characters.", fields={"topic": ["Too long."]}, code="topic_too_long"
        )
    return cleaned


def _locked(thread: Thread) -> Thread:
    # Row lock: two people moving messages into/out of the same thread serialize here, so the recompute that
    # follows sees the final set of messages.
    return Thread.objects.select_for_update().get(pk=thread.pk)


# --- Single-thread state --------------------------------------------------------------------------------------


@transaction.atomic
def thread_mark_read(*, thread: Thread, user: User) -> ThreadRead:
    _check(thread, user)
    now = timezone.now()
    # A message stamped in the future (a sender's clock ahead of ours) must not keep the thread unread forever.
    read_at = max(now, thread.last_received_at) if thread.last_received_at else now
    ThreadRead.objects.bulk_create(
        [ThreadRead(thread=thread, user=user, read_at=read_at)],
        update_conflicts=True, unique_fields=["thread", "user"], update_fields=["read_at"],
    )  # fmt: skip
    return ThreadRead.objects.get(thread=thread, user=user)


@transaction.atomic
def thread_assign(*, thread: Thread, actor: User, assignee: User | None) -> Thread:
    """Give the thread to ``assignee`` (None: unassign). They must be able to see the contact."""
    _check(thread, actor)
    if assignee is not None:
        if not assignee.is_active:
            raise DomainError(f"{assignee} is not an active user.", fields={"assignee": ["Inactive user."]})
        if not can_see(assignee, thread.contact):
            raise DomainError(
                f"{assignee} cannot see {thread.contact.display_name}; share the contact with them first.",
                fields={"assignee": ["Cannot see this contact."]}, code="assignee_cannot_see",
            )  # fmt: skip
    Thread.objects.filter(pk=thread.pk).update(assignee=assignee)
    thread.assignee = assignee
    return thread


@transaction.atomic
def thread_close(*, thread: Thread, actor: User) -> Thread:
    _check(thread, actor)
    Thread.objects.filter(pk=thread.pk).update(status=Thread.Status.CLOSED)
    thread.status = Thread.Status.CLOSED
    return thread


@transaction.atomic
def thread_reopen(*, thread: Thread, actor: User) -> Thread:
    _check(thread, actor)
    Thread.objects.filter(pk=thread.pk).update(status=Thread.Status.OPEN)
    thread.status = Thread.Status.OPEN
    return thread


# --- Topics ---------------------------------------------------------------------------------------------------


@transaction.atomic
def thread_main_get_or_create(*, actor: User, contact: Contact) -> Thread:
    """The contact's main thread, created (exactly once, by the unique constraint) if the contact has none."""
    if not can_see(actor, contact):
        raise NotFound("No such contact.")
    thread, _ = Thread.objects.get_or_create(contact=contact, topic="")
    return thread


@transaction.atomic
def thread_create_topic(*, actor: User, contact: Contact, topic: str) -> Thread:
    """The contact's topic thread named ``topic``, created if missing (a second call returns the same one)."""
    if not can_see(actor, contact):
        raise NotFound("No such contact.")
    thread, _ = Thread.objects.get_or_create(contact=contact, topic=_clean_topic(topic))
    return thread


@transaction.atomic
def thread_set_topic(*, thread: Thread, actor: User, topic: str) -> Thread:
    """Rename a topic thread. The main thread stays the main thread (use split to start a topic from it)."""
    _check(thread, actor)
    if thread.is_main:
        raise DomainError(
            "The main conversation has no topic name; split messages into a topic instead.", code="main_thread"
        )
    cleaned = _clean_topic(topic)
    if Thread.objects.filter(contact_id=thread.contact_id, topic=cleaned).exclude(pk=thread.pk).exists():
        raise DomainError(
            f"{thread.contact.display_name} already has a topic “{cleaned}”; merge the two instead.",
            fields={"topic": ["Already exists."]}, code="topic_exists",
        )  # fmt: skip
    Thread.objects.filter(pk=thread.pk).update(topic=cleaned)
    thread.topic = cleaned
    return thread


def _target_thread(contact_id: int, topic: str) -> Thread:
    """The contact's thread for ``topic`` ("" = main), created if missing."""
    cleaned = _clean_topic(topic) if topic.strip() else ""
    thread, _ = Thread.objects.get_or_create(contact_id=contact_id, topic=cleaned)
    return thread


# --- Moving messages ------------------------------------------------------------------------------------------


@transaction.atomic
def message_move_to_topic(*, actor: User, message: Message, topic: str, whole_conversation: bool = False) -> Thread:
    """Move ``message`` into the contact's topic thread ``topic`` (created if missing; "" = the main thread).

    With ``whole_conversation`` every message of the contact sharing its ``provider_thread_key`` moves too. Later
    replies of the conversation follow it there (the pipeline routes by that key).
    """
    if message.thread_id is None or message.contact_id is None:
        raise DomainError("Match this message to a contact before moving it.", code="unmatched_message")
    source = Thread.objects.select_related("contact").get(pk=message.thread_id)
    _check(source, actor)
    target = _locked(_target_thread(message.contact_id, topic))
    ids = [message.pk]
    if whole_conversation and message.provider_thread_key:
        ids = list(
            Message.objects.filter(contact_id=message.contact_id, provider_thread_key=message.provider_thread_key)
            .exclude(thread=target)
            .values_list("pk", flat=True)
        )
    moved_from = set(Message.objects.filter(pk__in=ids).values_list("thread_id", flat=True))
    Message.objects.filter(pk__in=ids).update(thread=target)
    thread_recompute([*moved_from, target.pk])
    _drop_empty_topics(moved_from - {target.pk})
    target.refresh_from_db()
    return target


def _drop_empty_topics(thread_ids: Iterable[int]) -> None:
    """A topic thread whose every message moved away is gone; the main thread always stays."""
    Thread.objects.filter(pk__in=list(thread_ids), message_count=0).exclude(topic="").delete()


@transaction.atomic
def thread_split(*, actor: User, thread: Thread, message_ids: Iterable[int], topic: str) -> Thread:
    """Move the chosen messages of ``thread`` into the contact's topic ``topic`` (created if missing)."""
    _check(thread, actor)
    ids = sorted({int(pk) for pk in message_ids})
    if not ids:
        raise DomainError("Choose the messages to split off.", fields={"message_ids": ["Required."]})
    found = set(Message.objects.filter(pk__in=ids, thread=thread).values_list("pk", flat=True))
    if len(found) != len(ids):
        raise DomainError(
            "Some of the chosen messages are not in this thread; reload the page.",
            fields={"message_ids": ["Not in this thread."]}, code="foreign_messages",
        )  # fmt: skip
    target = _target_thread(thread.contact_id, _clean_topic(topic))
    if target.pk == thread.pk:
        raise DomainError("These messages are already in that topic.", fields={"topic": ["Same thread."]})
    _locked(thread)
    _locked(target)
    Message.objects.filter(pk__in=ids).update(thread=target)
    thread_recompute([thread.pk, target.pk])
    _drop_empty_topics([thread.pk])
    target.refresh_from_db()
    return target


@transaction.atomic
def thread_merge(*, actor: User, source: Thread, target: Thread) -> Thread:
    """Move every message of ``source`` into ``target`` and delete ``source``. Returns the surviving thread.

    Both must belong to the same contact. The main thread is never deleted: merging the main thread into a topic
    folds the topic into the main thread instead (the same messages end up together either way, and the
    contact keeps the main thread that new conversations land in).
    """
    _check(source, actor)
    _check(target, actor)
    if source.pk == target.pk:
        raise DomainError("A thread cannot be merged with itself.", fields={"target": ["Same thread."]})
    if source.contact_id != target.contact_id:
        raise DomainError(
            "Only threads of the same contact can be merged; merge the contacts first.",
            fields={"target": ["Another contact's thread."]}, code="different_contacts",
        )  # fmt: skip
    if source.is_main:
        source, target = target, source
    _locked(target)
    _locked(source)
    Message.objects.filter(thread=source).update(thread=target)
    updates: dict[str, object] = {}
    if target.assignee_id is None and source.assignee_id is not None:
        updates["assignee_id"] = source.assignee_id
    if updates:
        Thread.objects.filter(pk=target.pk).update(**updates)
    Thread.objects.filter(pk=source.pk).delete()
    thread_recompute([target.pk])
    return Thread.objects.select_related("contact", "assignee").get(pk=target.pk)


# --- Unmatched queue ------------------------------------------------------------------------------------------


@transaction.atomic
def unmatched_assign(*, actor: User, message: Message, contact: Contact) -> Thread:
    """Say who wrote an unmatched message: its author's address becomes an identity of ``contact`` and every
    unmatched message from (or to) that address moves into the contact's main thread."""
    if message.contact_id is not None:
        raise DomainError("This message is already matched to a contact.", code="already_matched")
    if (
        message.channel_account_id is None
        or not visible(ChannelAccount.objects.filter(pk=message.channel_account_id), actor).exists()
    ):
        raise NotFound("No such message.")
    if not can_see(actor, contact):
        raise NotFound("No such contact.")
    inbound = message.direction == Direction.INBOUND
    address = message.author_address if inbound else next(
        (r.get("address", "") for r in message.recipients if isinstance(r, dict) and r.get("address")), ""
    )  # fmt: skip
    if not address:
        raise DomainError("This message has no address to attach to a contact.", code="no_address")
    kind = CHANNEL_IDENTITY_KIND.get(message.channel, ContactIdentity.Kind.OTHER)
    try:
        identity = identity_attach(contact=contact, actor=actor, kind=kind, value=address, source="unmatched")
    except ValidationError as exc:
        raise DomainError(
            f"{address} cannot be stored as a {kind} identity: {' '.join(exc.messages)}", code="invalid_identity"
        ) from None
    main = _locked(_target_thread(contact.pk, ""))
    held = Message.objects.filter(contact__isnull=True, thread__isnull=True).filter(
        Q(direction=Direction.INBOUND, author_address=identity.normalized)
        | Q(direction=Direction.OUTBOUND, recipients__contains=[{"address": identity.normalized}])
    )
    ids = list(held.values_list("pk", flat=True))
    Message.objects.filter(pk__in=ids, direction=Direction.INBOUND).update(
        thread=main, contact=contact, author_identity=identity
    )
    Message.objects.filter(pk__in=ids, direction=Direction.OUTBOUND).update(thread=main, contact=contact)
    thread_recompute([main.pk])
    with connection.cursor() as cursor:
        # Only forwards, like ingest: an old message matched late must not make a recent touch look older.
        cursor.execute(
            "UPDATE contacts_contact c SET last_touch_at = m.at FROM (SELECT max(sent_at) AS at FROM threads_message "
            "WHERE id = ANY(%s)) m WHERE c.id = %s AND m.at IS NOT NULL "
            "AND (c.last_touch_at IS NULL OR c.last_touch_at < m.at)",
            [ids, contact.pk],
        )
    main.refresh_from_db()
    transaction.on_commit(lambda: messages_matched.send(sender=Message, message_ids=ids, contact_id=contact.pk))
    return main
