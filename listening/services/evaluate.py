"""Evaluation: run the current engine over new thread messages and new public posts, store the mentions in bulk,
then run the rules' actions. Everything of one batch is one transaction, so a retried task stores nothing twice
(the unique constraints on posts and mentions are what stop duplicates) and fires no action twice (actions only
run for mentions this transaction inserted).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from django.db import connection, transaction
from django.utils import timezone

from contacts.models import Contact
from crm.sql import NULL, copy_array, copy_rows, copy_text, copy_value
from listening.models import ListeningSource, Mention
from listening.query import Document, Engine, Match, highlight_snippet, sentiment
from listening.services.actions import NewMention, actions_run
from listening.services.documents import (
    clean_handle,
    message_document,
    message_is_listened,
    message_values,
    post_text,
)
from listening.services.engine_cache import engine_current
from listening.services.results import EvaluateResult
from threads.connectors import PublicPost
from threads.models import Message

SENTIMENT_MAX_CHARS = 10_000
TERM_MAX_CHARS = 200

# --- Mentions -----------------------------------------------------------------------------------------------------

_MENTION_STAGING = "listening_mention_staging"
_MENTION_DDL = f"""
CREATE TEMP TABLE IF NOT EXISTS {_MENTION_STAGING} (
    seq integer, rule_id bigint, post_id bigint, message_id bigint, contact_id bigint, channel varchar(20),
    snippet text, matched_terms varchar(200)[], highlights jsonb, sentiment_score double precision,
    sentiment varchar(8), lang varchar(8), latitude double precision, longitude double precision,
    occurred_at timestamptz
) ON COMMIT DELETE ROWS
"""
_MENTION_COLUMNS = (
    "seq", "rule_id", "post_id", "message_id", "contact_id", "channel", "snippet", "matched_terms", "highlights",
    "sentiment_score", "sentiment", "lang", "latitude", "longitude", "occurred_at",
)  # fmt: skip
# The join skips a rule deleted since the engine was built; the EXISTS skips a message deleted meanwhile (its
# foreign key would otherwise fail the whole batch at commit).
_MENTION_INSERT = f"""
INSERT INTO listening_mention (rule_id, post_id, message_id, contact_id, channel, snippet, matched_terms, highlights,
    sentiment_score, sentiment, lang, latitude, longitude, occurred_at, created_at)
SELECT s.rule_id, s.post_id, s.message_id, s.contact_id, s.channel, s.snippet, s.matched_terms, s.highlights,
    s.sentiment_score, s.sentiment, s.lang, s.latitude, s.longitude, s.occurred_at, %s
FROM {_MENTION_STAGING} s JOIN listening_listeningrule r ON r.id = s.rule_id
WHERE s.message_id IS NULL OR EXISTS (SELECT 1 FROM threads_message m WHERE m.id = s.message_id)
ORDER BY s.seq
ON CONFLICT DO NOTHING
RETURNING id, rule_id, contact_id, channel, occurred_at, snippet, message_id
"""  # noqa: S608 - table names are constants


@dataclass
class _Target:
    """What a mention copies from the post or message it is about."""

    post_id: int | None
    message_id: int | None
    contact_id: int | None
    channel: str
    occurred_at: dt.datetime
    private: bool = False


def _mention_lines(target: _Target, doc: Document, matches: list[Match], seq: int) -> list[list[str]]:
    score, label = doc.sentiment_score, doc.sentiment_label
    if score is None or label is None:
        score, label = sentiment(doc.text[:SENTIMENT_MAX_CHARS])
    lang = doc.lang or str(doc.extra.get("lang") or "")
    snippets: dict[tuple[tuple[int, int], ...], tuple[str, list[list[int]]]] = {}
    common = [
        NULL if target.post_id is None else str(target.post_id),
        NULL if target.message_id is None else str(target.message_id),
        NULL if target.contact_id is None else str(target.contact_id),
        copy_text(target.channel[:20]),
    ]
    tail = [
        repr(float(score)), label, copy_text(lang[:8]), copy_value(doc.latitude), copy_value(doc.longitude),
        target.occurred_at.isoformat(),
    ]  # fmt: skip
    lines = []
    for i, match in enumerate(matches):
        cached = snippets.get(match.spans)
        if cached is None:
            snippet, highlights = highlight_snippet(doc.text, match.spans)
            cached = snippets[match.spans] = (snippet, [list(h) for h in highlights])
        lines.append(
            [
                str(seq + i), str(match.rule_id), *common, copy_text(cached[0]),
                copy_array(t[:TERM_MAX_CHARS] for t in match.terms), copy_value(cached[1]), *tail,
            ]
        )  # fmt: skip
    return lines


def _store_mentions(lines: list[list[str]], private_messages: set[int], now: dt.datetime) -> list[NewMention]:
    if not lines:
        return []
    copy_rows(_MENTION_STAGING, _MENTION_DDL, _MENTION_COLUMNS, lines)
    with connection.cursor() as cursor:
        cursor.execute(_MENTION_INSERT, [now])
        rows = cursor.fetchall()
    return [
        NewMention(
            id=r[0], rule_id=r[1], contact_id=r[2], channel=r[3], occurred_at=r[4], snippet=r[5],
            private=r[6] is not None and r[6] in private_messages,
        )
        for r in rows
    ]  # fmt: skip


def _evaluate(
    engine: Engine, items: Sequence[tuple[_Target, Document]], now: dt.datetime, result: EvaluateResult
) -> list[NewMention]:
    lines: list[list[str]] = []
    # A private mailbox's text must not reach an activity's notes: the actions learn which mentions those are.
    private_messages: set[int] = set()
    for target, doc in items:
        result.evaluated += 1
        matches = engine.match(doc)
        if matches:
            lines.extend(_mention_lines(target, doc, matches, len(lines)))
            if target.private and target.message_id is not None:
                private_messages.add(target.message_id)
    new = _store_mentions(lines, private_messages, now)
    result.mentions.extend(m.id for m in new)
    return new


def _run_actions(new: list[NewMention], now: dt.datetime, result: EvaluateResult) -> None:
    if not new:
        return
    outcome = actions_run(mentions=new, now=now)
    result.alerts += outcome.alerts
    result.activities += outcome.activities
    result.tagged += outcome.tagged


# --- Messages -----------------------------------------------------------------------------------------------------


@transaction.atomic
def mentions_evaluate_messages(*, message_ids: list[int]) -> EvaluateResult:
    """Run the current engine over stored thread messages; store mentions and run actions. Idempotent: a message
    evaluated twice stores each of its mentions once and fires their actions once."""
    result = EvaluateResult()
    ids = sorted({int(i) for i in message_ids})
    if not ids:
        return result
    engine = engine_current()
    now = timezone.now()
    rows = list(message_values(Message.objects.filter(pk__in=ids, deleted_at__isnull=True)))
    items = []
    for row in rows:
        if not message_is_listened(row["direction"], row["channel"]):
            continue
        doc = message_document(row)
        if not doc.text.strip():
            continue
        target = _Target(
            post_id=None, message_id=row["id"], contact_id=row["contact_id"], channel=row["channel"],
            occurred_at=row["sent_at"], private=row["is_private"],
        )  # fmt: skip
        items.append((target, doc))
    _run_actions(_evaluate(engine, items, now, result), now, result)
    return result


# --- Posts --------------------------------------------------------------------------------------------------------

_POST_STAGING = "listening_post_staging"
_POST_DDL = f"""
CREATE TEMP TABLE IF NOT EXISTS {_POST_STAGING} (
    seq integer, external_id varchar(512), channel varchar(20), url varchar(2000), author_name varchar(200),
    author_handle varchar(200), author_kind varchar(16), author_address varchar(320), contact_id bigint,
    title varchar(1000), text text, lang varchar(8), latitude double precision, longitude double precision,
    place varchar(200), posted_at timestamptz, deleted_at timestamptz, meta jsonb
) ON COMMIT DELETE ROWS
"""
_POST_COLUMNS = (
    "seq", "external_id", "channel", "url", "author_name", "author_handle", "author_kind", "author_address",
    "contact_id", "title", "text", "lang", "latitude", "longitude", "place", "posted_at", "deleted_at", "meta",
)  # fmt: skip
_POST_INSERT = f"""
INSERT INTO listening_post (source_id, external_id, channel, url, author_name, author_handle, author_kind,
    author_address, contact_id, title, text, lang, latitude, longitude, place, posted_at, fetched_at, deleted_at, meta)
SELECT %s, external_id, channel, url, author_name, author_handle, author_kind, author_address, contact_id, title,
    text, lang, latitude, longitude, place, posted_at, %s, deleted_at, meta
FROM {_POST_STAGING} ORDER BY seq
ON CONFLICT (source_id, external_id) DO NOTHING
RETURNING id, external_id
"""  # noqa: S608 - table names are constants


def post_external_id(value: str) -> str:
    """Provider ids longer than the column are hashed, not cut: two long URLs sharing a prefix stay two posts."""
    value = str(value).strip().replace("\x00", "")
    if len(value) <= 512:
        return value
    return value[:440] + "#sha256:" + hashlib.sha256(value.encode()).hexdigest()


def _resolve_authors(keys: set[tuple[str, str]]) -> dict[tuple[str, str], tuple[int, bool]]:
    """(kind, normalized address) → (contact id, is a customer), for every author of the batch in one query."""
    if not keys:
        return {}
    kinds, addresses = zip(*sorted(keys), strict=True)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT i.kind, i.normalized, i.contact_id, c.lifecycle_stage FROM contacts_contactidentity i "
            "JOIN contacts_contact c ON c.id = i.contact_id "
            "WHERE (i.kind, i.normalized) IN (SELECT * FROM unnest(%s::varchar[], %s::varchar[]))",
            [list(kinds), list(addresses)],
        )
        return {(k, a): (cid, stage == Contact.Stage.CUSTOMER) for k, a, cid, stage in cursor.fetchall()}


@transaction.atomic
def posts_ingest(*, source: ListeningSource, posts: Sequence[PublicPost]) -> EvaluateResult:
    """Store public posts once each (UNIQUE(source, external_id)), then evaluate the new ones. Idempotent.

    Authors are resolved to contacts through their identity (kind, normalized address) in one query. A post the
    provider reports deleted is stored (or kept) marked ``deleted_at``, never dropped, and is not evaluated.
    Runs in the caller's transaction when there is one, so a fetch's cursor commits with its posts."""
    result = EvaluateResult()
    if not posts:
        return result
    now = timezone.now()
    by_id: dict[str, PublicPost] = {}
    deleted: set[str] = set()
    for post in posts:
        key = post_external_id(post.external_id)
        if not key:
            continue
        if post.deleted:
            deleted.add(key)
        by_id.setdefault(key, post)
    authors = _resolve_authors(
        {(p.author.kind, p.author.address) for p in by_id.values() if p.author is not None and p.author.address}
    )
    lines = []
    resolved: dict[str, tuple[int, bool] | None] = {}
    for seq, (key, post) in enumerate(by_id.items()):
        author = post.author
        hit = authors.get((author.kind, author.address)) if author is not None else None
        resolved[key] = hit
        lines.append(
            [
                str(seq), copy_text(key), copy_text(post.channel[:20]), copy_text(post.url[:2000]),
                copy_text((author.name if author else "")[:200]),
                copy_text(clean_handle(author.handle if author else "")[:200]),
                copy_text((author.kind if author else "")[:16]), copy_text((author.address if author else "")[:320]),
                NULL if hit is None else str(hit[0]), copy_text(post.title[:1000]), copy_text(post.text),
                copy_text(post.lang[:8].lower()), copy_value(post.latitude), copy_value(post.longitude),
                copy_text(post.place[:200]), post.posted_at.isoformat(), now.isoformat() if key in deleted else NULL,
                copy_value(post.meta) if post.meta else "{}",
            ]
        )  # fmt: skip
    copy_rows(_POST_STAGING, _POST_DDL, _POST_COLUMNS, lines)
    with connection.cursor() as cursor:
        cursor.execute(_POST_INSERT, [source.pk, now])
        inserted = dict((external_id, pk) for pk, external_id in cursor.fetchall())
        known_deleted = [k for k in deleted if k not in inserted]
        if known_deleted:
            cursor.execute(
                "UPDATE listening_post SET deleted_at = %s WHERE source_id = %s AND external_id = ANY(%s) "
                "AND deleted_at IS NULL",
                [now, source.pk, known_deleted],
            )
            result.posts_deleted = cursor.rowcount
    result.posts_created = len(inserted)
    result.posts_duplicate = len(by_id) - len(inserted)
    items = []
    for key, pk in inserted.items():
        if key in deleted:
            continue
        post = by_id[key]
        hit = resolved[key]
        author = post.author
        doc = Document(
            text=post_text(post.title, post.text), kind="post", channel=post.channel, source_id=source.pk,
            lang=post.lang[:8].lower(), author_handle=clean_handle((author.handle or author.address) if author else ""),
            author_contact_id=hit[0] if hit else None, author_is_customer=bool(hit and hit[1]),
            latitude=post.latitude, longitude=post.longitude,
        )  # fmt: skip
        if not doc.text.strip():
            continue
        target = _Target(
            post_id=pk, message_id=None, contact_id=hit[0] if hit else None, channel=post.channel[:20],
            occurred_at=post.posted_at,
        )  # fmt: skip
        items.append((target, doc))
    if items:
        engine = engine_current()
        _run_actions(_evaluate(engine, items, now, result), now, result)
    return result


def mentions_contact_set(*, message_ids: list[int], contact_id: int) -> int:
    """Messages that were unmatched when their mentions were stored now belong to a contact: so do the mentions
    (their timeline, the contact filter of the feed, the visibility that follows the contact)."""
    return Mention.objects.filter(message_id__in=message_ids, contact__isnull=True).update(contact_id=contact_id)
