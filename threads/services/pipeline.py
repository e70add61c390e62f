"""The one ingestion pipeline for every channel:

    connector → RawEvent (stored first) → normalize → ingest_batch()

- ``raw_events_store`` commits what a provider delivered before anything interprets it, so a crash or a bad
  normalizer loses nothing. ``UNIQUE(channel_account, provider_event_id)`` makes a re-fetch store nothing new.
- ``raw_events_process`` normalizes pending events (claimed with ``SKIP LOCKED`` so two workers never take the
  same one), dead-letters those that fail with their error, and hands the rest to ``ingest_batch`` — in one
  transaction with the cursor, so a cursor only advances with the messages it covers.
- ``ingest_batch`` is set-based: identity resolution in one query, thread keying in two, messages through COPY into
  a staging table and one ``INSERT … SELECT … ON CONFLICT DO NOTHING RETURNING``, then one UPDATE each for
  threads, contacts, raw events and the cursor. Replaying anything inserts nothing.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import nh3
from django.core.files.base import ContentFile
from django.db import DatabaseError, connection, transaction
from django.db.models import F
from django.utils import timezone

from accounts.models import Visibility
from accounts.selectors import user_team_ids
from contacts.models import Contact, ContactIdentity
from contacts.services import contact_search_refresh
from crm.sql import NULL, array_literal, copy_rows, copy_text, int_array, is_retryable
from threads.connectors import NormalizedMessage, NormalizeError, Party, RawEventIn, normalizer_for
from threads.events import IngestedMessage, messages_ingested
from threads.models import Attachment, ChannelAccount, Direction, Message, RawEvent, Thread

log = logging.getLogger(__name__)

MAX_ERROR_CHARS = 4000
BODY_MAX_CHARS = 1_000_000  # a body longer than this is cut (the raw event keeps every byte)


@dataclass
class IngestResult:
    created: list[int] = field(default_factory=list)  # new message ids
    duplicates: int = 0  # already stored (same account) or seen by another account
    unmatched: int = 0  # stored without a contact (unknown author, "unmatched" policy)
    leads_created: int = 0
    dead: int = 0  # raw events dead-lettered (raw_events_process only)
    deleted: int = 0  # messages newly marked deleted by the provider
    edited: int = 0  # stored messages whose text the provider's edit replaced

    def merge(self, other: IngestResult) -> None:
        self.created += other.created
        self.duplicates += other.duplicates
        self.unmatched += other.unmatched
        self.leads_created += other.leads_created
        self.dead += other.dead
        self.deleted += other.deleted
        self.edited += other.edited


# --- Raw events ------------------------------------------------------------------------------------------------


def raw_events_store(*, account: ChannelAccount, events: Sequence[RawEventIn]) -> list[int]:
    """Insert raw events, skipping those already stored. Returns the ids of the new ones. Commits on its own
    (autocommit) unless the caller holds a transaction."""
    if not events:
        return []
    now = timezone.now()
    seen: set[str] = set()
    rows = []
    for event in events:
        if event.provider_event_id in seen:
            continue
        seen.add(event.provider_event_id)
        rows.append(
            RawEvent(
                channel_account=account, provider_event_id=event.provider_event_id[:255],
                event_type=event.event_type, content_type=event.content_type, payload=event.payload,
                meta=event.meta, received_at=now,
            )
        )  # fmt: skip
    ids: list[int] = []
    with connection.cursor() as cursor:
        for chunk_start in range(0, len(rows), 500):
            chunk = rows[chunk_start : chunk_start + 500]
            values = []
            params: list[Any] = []
            for r in chunk:
                values.append("(%s, %s, %s, %s, %s, %s, 'pending', %s, 0, '')")
                params += [r.channel_account_id, r.provider_event_id, r.event_type, r.content_type, r.payload,
                           _json(r.meta), r.received_at]  # fmt: skip
            cursor.execute(
                "INSERT INTO threads_rawevent (channel_account_id, provider_event_id, event_type, content_type, "  # noqa: S608
                "payload, meta, status, received_at, attempts, error) VALUES " + ", ".join(values)
                + " ON CONFLICT (channel_account_id, provider_event_id) DO NOTHING RETURNING id",
                params,
            )  # fmt: skip
            ids += [row[0] for row in cursor.fetchall()]
    return ids


def _json(value: Any) -> str:
    return json.dumps(value, default=str)


def _error_text(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"
    return text[:MAX_ERROR_CHARS]


def raw_events_process(
    *,
    account: ChannelAccount,
    raw_event_ids: Iterable[int] | None = None,
    cursor: dict[str, Any] | None = None,
    include_processed: bool = False,
    limit: int = 1000,
) -> IngestResult:
    """Normalize and ingest raw events of ``account`` in one transaction, then advance ``cursor`` in the same one.

    Without ``raw_event_ids`` it takes up to ``limit`` pending events (oldest first). ``include_processed`` is
    for replay: stored events are normalized again and ingested, which inserts only what a fix now reads.
    """
    result = IngestResult()
    with transaction.atomic():
        qs = RawEvent.objects.filter(channel_account=account)
        if raw_event_ids is not None:
            qs = qs.filter(pk__in=list(raw_event_ids))
        if not include_processed:
            qs = qs.filter(status=RawEvent.Status.PENDING)
        events = list(qs.select_for_update(skip_locked=True).order_by("pk")[:limit])
        normalized: list[NormalizedMessage] = []
        per_event: dict[int, list[NormalizedMessage]] = {}
        dead: dict[int, str] = {}
        ignored: list[int] = []
        for event in events:
            try:
                messages = normalizer_for(event.event_type)(event, account)
            except NormalizeError as exc:
                dead[event.pk] = str(exc)[:MAX_ERROR_CHARS]
                continue
            except Exception as exc:  # a normalizer bug must not sink the batch; the event is kept for replay
                log.exception("normalizer %s failed on raw event %s", event.event_type, event.pk)
                dead[event.pk] = _error_text(exc)
                continue
            if not messages:
                ignored.append(event.pk)
            for message in messages:
                message.raw_event_id = event.pk
            per_event[event.pk] = messages
            normalized += messages
        try:
            result.merge(_ingest_retrying(account, normalized))
        except DatabaseError as exc:
            if is_retryable(exc):
                raise  # still losing to other writers: nothing here is wrong with the data (see _ingest_retrying)
            # One event's data broke the set-based insert (e.g. a value the database refuses). Find it: ingest
            # event by event, each in its own savepoint, and dead-letter only the ones that fail.
            log.warning("batch ingest failed for account %s; retrying event by event", account.pk, exc_info=True)
            for event_id, messages in per_event.items():
                try:
                    result.merge(_ingest_retrying(account, messages))
                except DatabaseError as exc:
                    if is_retryable(exc):
                        raise
                    dead[event_id] = _error_text(exc)
        now = timezone.now()
        done = [pk for pk in per_event if pk not in dead and pk not in ignored]
        if done:
            RawEvent.objects.filter(pk__in=done).update(
                status=RawEvent.Status.PROCESSED, processed_at=now, error="", attempts=F("attempts") + 1
            )
        if ignored:
            RawEvent.objects.filter(pk__in=ignored).update(
                status=RawEvent.Status.IGNORED, processed_at=now, error="", attempts=F("attempts") + 1
            )
        for pk, error in dead.items():
            RawEvent.objects.filter(pk=pk).update(
                status=RawEvent.Status.DEAD, processed_at=None, error=error, attempts=F("attempts") + 1
            )
        result.dead = len(dead)
        updates: dict[str, Any] = {}
        if cursor is not None:
            updates["cursor"] = cursor
        if result.created:
            updates["stored_count"] = F("stored_count") + len(result.created)
        if updates:
            ChannelAccount.objects.filter(pk=account.pk).update(**updates)
            if cursor is not None:
                account.cursor = cursor
    return result


def raw_events_drain(*, account: ChannelAccount, cursor: dict[str, Any] | None = None) -> IngestResult:
    """Process every pending raw event of the account, batch by batch (each batch its own transaction, carrying
    ``cursor``), until none is left: this call's events and any a killed worker left behind."""
    result = IngestResult()
    while True:
        result.merge(raw_events_process(account=account, cursor=cursor))
        if not RawEvent.objects.filter(channel_account=account, status=RawEvent.Status.PENDING).exists():
            return result


def ingest_fetched(
    *, account: ChannelAccount, events: Sequence[RawEventIn], cursor: dict[str, Any] | None
) -> IngestResult:
    """What a poller calls per fetched page: store the raw events (committed first), then process every pending
    event of the account with the new cursor, atomically."""
    raw_events_store(account=account, events=events)
    result = raw_events_drain(account=account, cursor=cursor)
    if cursor is not None and not events:
        ChannelAccount.objects.filter(pk=account.pk).update(cursor=cursor)
    return result


def raw_events_retry(*, raw_event_ids: Iterable[int]) -> int:
    """Put dead-lettered events back in the queue (after a fix); the processing task picks them up."""
    ids = list(raw_event_ids)
    accounts = set(
        RawEvent.objects.filter(pk__in=ids, status=RawEvent.Status.DEAD).values_list("channel_account_id", flat=True)
    )
    count = RawEvent.objects.filter(pk__in=ids, status=RawEvent.Status.DEAD).update(
        status=RawEvent.Status.PENDING, error=""
    )
    if accounts:
        from threads.tasks import raw_events_process_task

        for account_id in accounts:
            transaction.on_commit(lambda a=account_id: raw_events_process_task.delay(a))
    return count


def raw_events_replay(
    *, account: ChannelAccount | None = None, statuses: Sequence[str] = ("processed", "dead", "ignored"),
    chunk: int = 1000,
) -> IngestResult:  # fmt: skip
    """Re-normalize stored raw events (after a normalizer fix). Keyset over ids, one transaction per chunk;
    stored messages are never duplicated (ON CONFLICT), so only what now reads differently lands."""
    result = IngestResult()
    accounts = [account] if account else list(ChannelAccount.objects.order_by("pk"))
    for acc in accounts:
        last_id = 0
        while True:
            ids = list(
                RawEvent.objects.filter(channel_account=acc, pk__gt=last_id, status__in=list(statuses))
                .order_by("pk")
                .values_list("pk", flat=True)[:chunk]
            )
            if not ids:
                break
            last_id = ids[-1]
            result.merge(raw_events_process(account=acc, raw_event_ids=ids, include_processed=True, limit=chunk))
    return result


# --- ingest_batch ----------------------------------------------------------------------------------------------

_COLUMNS = (
    "thread_id", "contact_id", "channel_account_id", "channel", "direction", "external_id", "global_key",
    "provider_thread_key", "author_identity_id", "author_address", "author_name", "recipients", "sent_at",
    "subject", "body_text", "body_display", "body_html", "raw_event_id", "is_private", "body_visible_to",
    "seen_by", "delivery", "meta", "created_by_id", "created_at",
)  # fmt: skip
_STAGING_DDL = """
CREATE TEMP TABLE IF NOT EXISTS threads_ingest_staging (
    seq integer, thread_id bigint, contact_id bigint, channel_account_id bigint, channel varchar(16),
    direction varchar(8), external_id varchar(512), global_key varchar(600), provider_thread_key varchar(512),
    author_identity_id bigint, author_address varchar(320), author_name varchar(200), recipients jsonb,
    sent_at timestamptz, subject varchar(998), body_text text, body_display text, body_html text,
    raw_event_id bigint, is_private boolean, body_visible_to bigint[], seen_by bigint[], delivery varchar(16),
    meta jsonb, created_by_id bigint, created_at timestamptz, participants text
)
"""

# The batch's one write statement. The INSERT's RETURNING rows are the new messages only (ON CONFLICT DO NOTHING
# skipped the rest), so the thread and contact updates beside it count each message once, whatever is replayed.
# Doing them in SQL from those rows, rather than from aggregates built in Python, spares building eight array
# literals per batch and two round trips.
# - Threads: count, last message (its subject and channel; the later of equal times, as ids follow the batch
#   order), last inbound and outbound times, waiting-for-reply and status, and the participants (rewritten only
#   when a new one appears: an unchanged array keeps the row's TOAST value).
# - Contacts: last_touch_at moves only forwards (an old message imported late must not make a recent touch look
#   older).
# The thread and contact UPDATEs take their row locks in the order their plan visits the rows: two batches sharing
# threads or contacts can deadlock, and the victim is tried again (_ingest_retrying; the benchmark's workers too).
_INSERT_SQL = f"""
WITH ins AS (
    INSERT INTO threads_message ({", ".join(_COLUMNS)})
    SELECT {", ".join(_COLUMNS)} FROM threads_ingest_staging ORDER BY seq
    ON CONFLICT DO NOTHING
    RETURNING id, global_key, contact_id, thread_id, direction, channel, sent_at, subject
), agg AS (
    SELECT thread_id AS id, count(*) AS n, max(sent_at) AS last,
           max(sent_at) FILTER (WHERE direction = 'inbound') AS lin,
           max(sent_at) FILTER (WHERE direction <> 'inbound') AS lout,
           (array_agg(left(subject, 300) ORDER BY sent_at DESC, id DESC))[1] AS subject,
           (array_agg(channel ORDER BY sent_at DESC, id DESC))[1] AS channel
    FROM ins WHERE thread_id IS NOT NULL GROUP BY thread_id
), parts AS (
    SELECT i.thread_id AS id, (array_agg(DISTINCT left(p, 320)))[1:50] AS parts
    FROM ins i JOIN threads_ingest_staging s ON s.global_key = i.global_key
    CROSS JOIN LATERAL unnest(string_to_array(s.participants, chr(31))) AS p
    WHERE i.thread_id IS NOT NULL AND p <> ''
    GROUP BY i.thread_id
), threads AS (
    UPDATE threads_thread t SET
        message_count = t.message_count + v.n,
        last_received_at = clock_timestamp(),
        last_message_at = GREATEST(t.last_message_at, v.last),
        last_inbound_at = GREATEST(t.last_inbound_at, v.lin),
        last_outbound_at = GREATEST(t.last_outbound_at, v.lout),
        last_subject = CASE WHEN t.last_message_at IS NULL OR v.last >= t.last_message_at
                            THEN v.subject ELSE t.last_subject END,
        last_channel = CASE WHEN t.last_message_at IS NULL OR v.last >= t.last_message_at
                            THEN v.channel ELSE t.last_channel END,
        awaiting_reply = COALESCE(GREATEST(t.last_inbound_at, v.lin), '-infinity')
                         > COALESCE(GREATEST(t.last_outbound_at, v.lout), '-infinity'),
        status = CASE
            WHEN v.lin IS NOT NULL AND v.lin > COALESCE(t.last_message_at, '-infinity') THEN 'open'
            WHEN v.lout IS NOT NULL AND v.lout >= COALESCE(GREATEST(t.last_inbound_at, v.lin), '-infinity')
                 AND t.status = 'open' THEN 'waiting'
            ELSE t.status END,
        participants = CASE WHEN v.parts IS NULL OR v.parts::varchar[] <@ t.participants THEN t.participants
            ELSE ARRAY(SELECT DISTINCT x FROM unnest(t.participants || v.parts::varchar[]) AS x ORDER BY x) END
    FROM (SELECT agg.*, parts.parts FROM agg LEFT JOIN parts USING (id)) AS v
    WHERE t.id = v.id
), contacts AS (
    UPDATE contacts_contact c SET last_touch_at = v.at
    FROM (SELECT contact_id, max(sent_at) AS at FROM ins WHERE contact_id IS NOT NULL GROUP BY contact_id) AS v
    WHERE c.id = v.contact_id AND (c.last_touch_at IS NULL OR c.last_touch_at < v.at)
)
SELECT id, global_key, contact_id, thread_id, direction, channel FROM ins ORDER BY id
"""  # noqa: S608 - column names are ours


def _sanitize_html(html: str) -> str:
    if not html:
        return ""
    # nh3 (ammonia) keeps formatting, drops scripts, event handlers, javascript: URLs and unknown tags.
    return nh3.clean(html[:BODY_MAX_CHARS], link_rel="noopener noreferrer nofollow")


def _parties(message: NormalizedMessage) -> list[Party]:
    if message.counterparts:
        return message.counterparts
    if message.direction == Direction.INBOUND and message.author:
        return [message.author]
    return []


def _resolve_identities(parties: Iterable[Party]) -> dict[tuple[str, str], tuple[int, int]]:
    """(kind, address) → (identity id, contact id) for every party that is a known identity. One query."""
    keys = sorted({(p.kind, p.address) for p in parties if p.address})  # index order: neighbouring probes
    if not keys:
        return {}
    kinds, addresses = zip(*keys, strict=True)
    with connection.cursor() as cursor:
        cursor.execute(
            # One index probe per address (LIMIT 1 keeps the planner from hashing the whole identity table).
            "SELECT k.kind, k.normalized, i.id, i.contact_id "
            "FROM unnest(%s::varchar[], %s::varchar[]) AS k(kind, normalized) "
            "CROSS JOIN LATERAL (SELECT id, contact_id FROM contacts_contactidentity "
            "WHERE kind = k.kind AND normalized = k.normalized LIMIT 1) i",
            [array_literal(kinds), array_literal(addresses)],
        )
        return {(kind, normalized): (iid, cid) for kind, normalized, iid, cid in cursor.fetchall()}


_SOCIAL_KINDS = ("twitter", "facebook")


def _resolve_social_handles(parties: Iterable[Party], known: dict[tuple[str, str], tuple[int, int]]) -> None:
    """A social user's numeric id is the stable key; the handle is a label that can change.

    - An identity someone entered as ``@handle`` is upgraded to the numeric id the first time a message shows both,
      so it keeps matching after the person renames themselves.
    - An identity found by id whose stored handle differs gets the new handle; older messages keep the handle
      they were written under in their author fields.
    """
    social = {
        (p.kind, p.address): p.handle
        for p in parties
        if p.kind in _SOCIAL_KINDS and p.handle and p.address and not p.address.startswith("@")
    }
    if not social:
        return
    missing = {key: "@" + handle.lower() for key, handle in social.items() if key not in known}
    with connection.cursor() as cursor:
        if missing:
            kinds = [k for k, _ in missing]
            handles = list(missing.values())
            cursor.execute(
                "SELECT i.kind, i.normalized, i.id, i.contact_id FROM contacts_contactidentity i "
                "JOIN unnest(%s::varchar[], %s::varchar[]) AS k(kind, normalized) "
                "ON i.kind = k.kind AND i.normalized = k.normalized",
                [kinds, handles],
            )
            by_handle = {(kind, normalized): (iid, cid) for kind, normalized, iid, cid in cursor.fetchall()}
            for (kind, address), handle_key in missing.items():
                hit = by_handle.get((kind, handle_key))
                if hit is None:
                    continue
                cursor.execute(
                    "UPDATE contacts_contactidentity SET normalized = %s WHERE id = %s "
                    "AND NOT EXISTS (SELECT 1 FROM contacts_contactidentity WHERE kind = %s AND normalized = %s)",
                    [address, hit[0], kind, address],
                )
                known[(kind, address)] = hit
        ids = {known[key][0]: handle for key, handle in social.items() if key in known}
        if ids:
            cursor.execute(
                "UPDATE contacts_contactidentity i SET handle = k.handle, value = k.handle "
                "FROM unnest(%s::bigint[], %s::varchar[]) AS k(id, handle) "
                "WHERE i.id = k.id AND i.handle IS DISTINCT FROM k.handle",
                [list(ids), list(ids.values())],
            )


def _lead_name(party: Party) -> tuple[str, str]:
    name = (party.name or "").strip()
    if not name:
        local = party.handle or party.address.split("@")[0].lstrip("@+")
        name = local.replace(".", " ").replace("_", " ").strip().title() or party.address
    first, _, last = name.partition(" ")
    return first[:120], last[:120]


def _create_leads(account: ChannelAccount, parties: list[Party]) -> dict[tuple[str, str], tuple[int, int]]:
    """New lead contacts for unknown counterparts, owned like the account that met them.

    Two workers may meet the same stranger at once: a transaction-level advisory lock per address serializes
    them, and the second finds the identity the first created.
    """
    unique: dict[tuple[str, str], Party] = {}
    for party in parties:
        unique.setdefault((party.kind, party.address), party)
    keys = sorted(unique)
    with connection.cursor() as cursor:
        for kind, address in keys:
            cursor.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [f"identity:{kind}:{address}"])
    found = _resolve_identities(unique.values())
    missing = [unique[k] for k in keys if k not in found]
    if not missing:
        return found
    team_ids = user_team_ids(account.owner) if account.owner_id else []
    team_id = account.team_id or (team_ids[0] if team_ids else None)
    now = timezone.now()
    contacts = []
    for party in missing:
        first, last = _lead_name(party)
        contacts.append(
            Contact(
                first_name=first, last_name=last, owner_id=account.owner_id, team_id=team_id,
                visibility=Visibility.PRIVATE if account.visibility == Visibility.PRIVATE else Visibility.TEAM,
                lifecycle_stage=Contact.Stage.LEAD, created_at=now,
                notes=f"Created from a message on {account.name}.",
            )
        )  # fmt: skip
    Contact.objects.bulk_create(contacts)
    identities = [
        ContactIdentity(
            contact_id=contact.pk, kind=party.kind, value=party.handle or party.address, normalized=party.address,
            handle=party.handle, is_primary=True, source=f"channel:{account.kind}",
        )
        for party, contact in zip(missing, contacts, strict=True)
    ]  # fmt: skip
    ContactIdentity.objects.bulk_create(identities)
    contact_search_refresh(contact_ids=[c.pk for c in contacts])
    for identity in identities:
        found[(identity.kind, identity.normalized)] = (identity.pk, identity.contact_id)
    return found


def _thread_by_key(pairs: set[tuple[int, str]]) -> dict[tuple[int, str], int]:
    """(contact id, provider thread key) → the thread its latest message sits in. One lateral index probe each."""
    if not pairs:
        return {}
    contact_ids, keys = zip(*sorted(pairs), strict=True)  # index order: neighbouring probes
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT k.cid, k.key, m.thread_id FROM unnest(%s::bigint[], %s::varchar[]) AS k(cid, key) "
            "CROSS JOIN LATERAL (SELECT thread_id FROM threads_message WHERE contact_id = k.cid "
            "AND provider_thread_key = k.key AND thread_id IS NOT NULL ORDER BY id DESC LIMIT 1) m",
            [int_array(contact_ids), array_literal(keys)],
        )
        return {(cid, key): tid for cid, key, tid in cursor.fetchall()}


def _main_threads(contact_ids: set[int]) -> dict[int, int]:
    """contact id → main thread id, creating missing main threads (exactly once, by the partial unique index)."""
    if not contact_ids:
        return {}
    ids = sorted(contact_ids)
    now = timezone.now()
    with connection.cursor() as cursor:
        ids_literal = int_array(ids)
        cursor.execute(
            "INSERT INTO threads_thread (contact_id, topic, status, participants, message_count, awaiting_reply, "
            "last_subject, last_channel, created_at) SELECT c, '', 'open', '{}', 0, false, '', '', %s "
            "FROM unnest(%s::bigint[]) AS c WHERE NOT EXISTS (SELECT 1 FROM threads_thread t "
            "WHERE t.contact_id = c AND t.topic = '') ON CONFLICT DO NOTHING",
            [now, ids_literal],
        )
        cursor.execute(
            "SELECT contact_id, id FROM threads_thread WHERE contact_id = ANY(%s::bigint[]) AND topic = ''",
            [ids_literal],
        )
        return dict(cursor.fetchall())


def _valid_hints(hints: set[int]) -> dict[int, int]:
    """thread id → contact id, for thread ids our own outbound Message-IDs encoded."""
    if not hints:
        return {}
    return dict(Thread.objects.filter(pk__in=hints).values_list("pk", "contact_id"))


INGEST_ATTEMPTS = 3


def _ingest_retrying(account: ChannelAccount, messages: Sequence[NormalizedMessage]) -> IngestResult:
    """``ingest_batch`` in a savepoint, tried again when the database picks it as a deadlock victim.

    Two batches that share threads or contacts (the same mail in two team mailboxes, a customer writing on two
    channels) update those rows in whatever order their plans visit them, so they can deadlock. The victim's
    savepoint is rolled back, which releases what the batch locked, and the other batch goes on; trying again then
    succeeds. A retryable error that persists is raised, never dead-lettered: the whole transaction rolls back,
    the events stay pending, and the next sync (or the sweep for lost tasks) takes them again.
    """
    attempt = 1
    while True:
        try:
            with transaction.atomic():
                return ingest_batch(account=account, messages=messages)
        except DatabaseError as exc:
            if attempt >= INGEST_ATTEMPTS or not is_retryable(exc):
                raise
            log.info("ingest for account %s lost to a concurrent writer (%s); trying again", account.pk, exc)
            attempt += 1


def ingest_batch(*, account: ChannelAccount | None, messages: Sequence[NormalizedMessage]) -> IngestResult:
    """Store normalized messages exactly once, in their contacts' threads. Must run inside a transaction (the
    caller's, so the cursor commits with the messages). Emits ``messages_ingested`` after commit."""
    result = IngestResult()
    if not messages:
        return result
    with connection.cursor() as cursor:
        # For the rest of the caller's transaction (SET LOCAL): the batch's sort stays in memory (a batch of long
        # mails is larger than the default 4 MB), and the planner probes a batch's few thousand threads, contacts
        # and identities by index instead of hashing whole tables, which it prefers under the default cost of a
        # random page read (4, priced for spinning disks; the working set here is in memory).
        cursor.execute("SET LOCAL work_mem = '64MB'; SET LOCAL random_page_cost = 1.1")
    # 1. Identity resolution: one query for every party of the batch.
    needs_contact = [m for m in messages if m.contact_id is None]
    batch_parties = [p for m in needs_contact for p in [*_parties(m), *([m.author] if m.author else [])]]
    known = _resolve_identities(batch_parties)
    _resolve_social_handles(batch_parties, known)
    strangers: list[tuple[NormalizedMessage, Party]] = []
    for m in needs_contact:
        parties = _parties(m)
        if parties and not any((p.kind, p.address) in known for p in parties):
            strangers.append((m, parties[0]))
    if strangers and account is not None and account.unknown_policy == ChannelAccount.UnknownPolicy.CREATE_LEAD:
        # A message already stored (a re-fetch, a late copy after its deletion tombstone) creates no lead: only
        # the few strangers' messages are looked up, so the common path pays nothing.
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT global_key FROM threads_message WHERE global_key = ANY(%s)",
                [[m.key()[:600] for m, _ in strangers]],
            )
            stored = {row[0] for row in cursor.fetchall()}
        unknown_first = [party for m, party in strangers if m.key()[:600] not in stored]
        if unknown_first:
            before = len(known)
            known.update(_create_leads(account, unknown_first))
            result.leads_created = len(known) - before
    # 2. Thread keying: our own encoded thread, else the conversation's thread, else the contact's main thread.
    contact_of: list[int | None] = []
    author_identity: list[int | None] = []
    for m in messages:
        cid = m.contact_id
        if cid is None:
            for p in _parties(m):
                hit = known.get((p.kind, p.address))
                if hit:
                    cid = hit[1]
                    break
        contact_of.append(cid)
        author_hit = known.get((m.author.kind, m.author.address)) if m.author else None
        author_identity.append(author_hit[0] if author_hit and m.direction == Direction.INBOUND else None)
    hints = _valid_hints({m.thread_hint for m in messages if m.thread_hint and not m.thread_id})
    pairs = {
        (cid, m.provider_thread_key)
        for m, cid in zip(messages, contact_of, strict=True)
        if cid and m.provider_thread_key and not m.thread_id
    }
    by_key = _thread_by_key(pairs)
    thread_of: list[int | None] = []
    need_main: set[int] = set()
    for m, cid in zip(messages, contact_of, strict=True):
        tid = m.thread_id
        if tid is None and cid is not None:
            if m.thread_hint and hints.get(m.thread_hint) == cid:
                tid = m.thread_hint
            else:
                tid = by_key.get((cid, m.provider_thread_key)) if m.provider_thread_key else None
            if tid is None:
                need_main.add(cid)
        thread_of.append(tid)
    mains = _main_threads(need_main)
    thread_of = [
        tid if tid is not None else (mains.get(cid) if cid is not None else None)
        for tid, cid in zip(thread_of, contact_of, strict=True)
    ]
    # 3. COPY into staging; one statement inserts (ON CONFLICT DO NOTHING) and updates the new messages' threads
    # and contacts.
    private = account is not None and account.visibility == Visibility.PRIVATE
    visible_to = [account.owner_id] if private and account.owner_id else []
    seen_by = [account.pk] if account is not None else []
    now = timezone.now()
    # One tab-separated line per message, built with as little per-value work as possible: this loop is the
    # pipeline's only per-message Python.
    acc = str(account.pk) if account is not None else NULL
    private_s = "t" if private else "f"
    visible_s = int_array(visible_to)
    seen_s = int_array(seen_by)
    now_s = now.isoformat()
    lines = []
    append = lines.append
    with_attachments: dict[str, NormalizedMessage] = {}
    for seq, (m, cid, tid, aid) in enumerate(zip(messages, contact_of, thread_of, author_identity, strict=True)):
        author = m.author
        counterparts = m.counterparts
        parties = counterparts if m.direction == Direction.OUTBOUND else [p for p in counterparts if p is not author]
        recipients = (
            _json([{"kind": p.role, "address": p.address, "name": p.name} for p in parties]) if parties else "[]"
        )
        participants = "\x1f".join([p.address for p in _parties(m)])  # the thread's, by the unit separator
        key = m.key()[:600]
        if m.attachments:
            with_attachments.setdefault(key, m)
        append((
            str(seq), NULL if tid is None else str(tid), NULL if cid is None else str(cid), acc, m.channel,
            m.direction, copy_text(m.external_id[:512]), copy_text(key), copy_text(m.provider_thread_key[:512]),
            NULL if aid is None else str(aid), copy_text(author.address[:320]) if author else "",
            copy_text(author.name[:200]) if author else "", copy_text(recipients), m.sent_at.isoformat(),
            copy_text(m.subject[:998]), copy_text(m.body_text[:BODY_MAX_CHARS]),
            copy_text(m.body_display[:BODY_MAX_CHARS]), copy_text(_sanitize_html(m.body_html)) if m.body_html else "",
            NULL if m.raw_event_id is None else str(m.raw_event_id), private_s, visible_s, seen_s, m.delivery,
            copy_text(_json(m.meta)) if m.meta else "{}", NULL if m.created_by_id is None else str(m.created_by_id),
            now_s, copy_text(participants),
        ))  # fmt: skip
    copy_rows("threads_ingest_staging", _STAGING_DDL, ("seq", *_COLUMNS, "participants"), lines)
    with connection.cursor() as cursor:
        cursor.execute(_INSERT_SQL)
        stored = cursor.fetchall()
        if account is not None and len(stored) < len(messages):
            # Seen before: by this account (a re-fetch, nothing to do) or by another one (record the sighting,
            # and open the body to this account's eyes).
            cursor.execute(
                "UPDATE threads_message m SET seen_by = array_append(m.seen_by, %s::bigint), "
                "is_private = m.is_private AND %s, "
                "body_visible_to = CASE WHEN %s THEN array_cat(m.body_visible_to, %s::bigint[]) "
                "ELSE m.body_visible_to END "
                "FROM (SELECT DISTINCT global_key FROM threads_ingest_staging) s "
                "WHERE m.global_key = s.global_key AND NOT (%s::bigint = ANY(m.seen_by))",
                [account.pk, private, private, visible_to, account.pk],
            )
        edits = [
            (m.key()[:600], m.body_text[:BODY_MAX_CHARS], m.body_display[:BODY_MAX_CHARS])
            for m in messages
            if m.edited and not m.deleted  # also when the original came in this same batch
        ]
        if edits:
            # In processing order (raw events are processed by id), so the last edit received wins; earlier texts
            # are kept in meta["edits"]. A message deleted at the provider keeps the text it had.
            for key, text, display in edits:
                cursor.execute(
                    "UPDATE threads_message SET body_text = %s, body_display = %s, meta = meta || jsonb_build_object("
                    "'edited_at', %s::text, 'edits', COALESCE(meta->'edits', '[]'::jsonb) || to_jsonb(body_text)) "
                    "WHERE global_key = %s AND deleted_at IS NULL AND body_text IS DISTINCT FROM %s",
                    [text, display, now.isoformat(), key, text],
                )
                result.edited += cursor.rowcount
        deleted_keys = [m.key()[:600] for m in messages if m.deleted]
        if deleted_keys:
            # After the insert, so a deletion that arrives before its message leaves a marked tombstone.
            cursor.execute(
                "UPDATE threads_message SET deleted_at = %s WHERE global_key = ANY(%s) AND deleted_at IS NULL",
                [now, deleted_keys],
            )
            result.deleted = cursor.rowcount
    result.duplicates = len(messages) - len(stored)
    # 4. Attachments, and the event: only for what is new.
    result.created = [mid for mid, *_ in stored]
    result.unmatched = sum(1 for row in stored if row[2] is None)
    if with_attachments:
        _store_attachments([(mid, with_attachments[key]) for mid, key, *_ in stored if key in with_attachments])
    if stored:
        payload = [
            IngestedMessage(mid, cid, tid, direction, channel) for mid, _, cid, tid, direction, channel in stored
        ]
        transaction.on_commit(lambda: messages_ingested.send(sender=Message, messages=payload))
    return result


def _store_attachments(rows: list[tuple[int, NormalizedMessage]]) -> None:
    objs = []
    for mid, m in rows:
        for a in m.attachments:
            att = Attachment(message_id=mid, name=a.name[:255] or "attachment", content_type=a.content_type[:127],
                             size=a.size, omitted=a.omitted[:200])  # fmt: skip
            if a.data is not None:
                digest = hashlib.sha256(a.data).hexdigest()[:12]
                att.file.save(f"{digest}-{_safe_name(a.name)}", ContentFile(a.data), save=False)
            objs.append(att)
    if objs:
        Attachment.objects.bulk_create(objs)


def _safe_name(name: str) -> str:
    keep = "".join(c if c.isalnum() or c in "._-" else "_" for c in name)
    return keep[-100:] or "attachment"
