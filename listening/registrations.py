"""How listening plugs into the apps below it: the threads ``messages_ingested`` event, the contact timeline
(mentions, and the person's public posts), merge and unmerge, GDPR, My day, and its source fetchers.

Imported once from ListeningConfig.ready().
"""

from __future__ import annotations

import logging
from typing import Any

from django.db import transaction
from django.db.models import Q
from django.http import HttpRequest
from django.urls import reverse

from contacts.models import Contact
from contacts.registry import (
    MergeHandler,
    PersonalDataSource,
    TimelineEntry,
    TimelineQuery,
    TimelineSource,
    register_merge_handler,
    register_personal_data_source,
    register_timeline_source,
)
from contacts.selectors.timeline import keyset_before_q
from crm.panels import Panel, register_panel
from listening import selectors
from listening.models import Mention, Post
from listening.services.documents import message_is_listened
from listening.sources import rss, social  # noqa: F401  (fetchers register at import)
from threads.events import IngestedMessage, messages_ingested, messages_matched

log = logging.getLogger(__name__)

MENTION_SOURCE = "mention"
POST_SOURCE = "post"


# --- threads: messages_ingested ---------------------------------------------------------------------------------


def on_messages_ingested(sender: Any, messages: list[IngestedMessage], **kwargs: Any) -> None:
    """Enqueue the evaluation of the new messages listening hears (inbound, and logged calls and notes), after the
    commit that stored them, in chunks of at most 500 ids. Never raises: ingestion must not fail because the
    broker hiccups (the error is logged with the ids)."""
    from listening.tasks import EVALUATE_CHUNK, mentions_evaluate_messages_task

    ids = [m.message_id for m in messages if message_is_listened(m.direction, m.channel)]
    for start in range(0, len(ids), EVALUATE_CHUNK):
        chunk = ids[start : start + EVALUATE_CHUNK]

        def enqueue(chunk: list[int] = chunk) -> None:
            try:
                # A short argsrepr: Celery would otherwise render all 500 ids for its logs and events, per task.
                mentions_evaluate_messages_task.apply_async(
                    (chunk,), argsrepr=f"([{len(chunk)} message ids {chunk[0]}…{chunk[-1]}],)"
                )
            except Exception:
                log.exception("listening: could not enqueue the evaluation of messages %s", chunk)

        transaction.on_commit(enqueue)


messages_ingested.connect(on_messages_ingested, dispatch_uid="listening.on_messages_ingested")


def on_messages_matched(sender: Any, message_ids: list[int], contact_id: int, **kwargs: Any) -> None:
    from listening.services.evaluate import mentions_contact_set

    mentions_contact_set(message_ids=message_ids, contact_id=contact_id)


messages_matched.connect(on_messages_matched, dispatch_uid="listening.on_messages_matched")


# --- Timeline ---------------------------------------------------------------------------------------------------


def mention_timeline(query: TimelineQuery) -> list[TimelineEntry]:
    """The person's mentions the user may see (the caller checked the contacts are visible), newest first."""
    rows = list(
        selectors.mention_queryset(user=query.user)
        .filter(contact_id__in=query.contact_ids)
        .filter(keyset_before_q(query.before, source=MENTION_SOURCE, at_field="occurred_at"))
        .select_related("rule")
        .order_by("-occurred_at", "-id")[: query.limit]
    )
    selectors.mentions_prepare(rows, query.user)
    entries = []
    for m in rows:
        entries.append(
            TimelineEntry(
                at=m.occurred_at, source=MENTION_SOURCE, id=m.pk, kind="mention",
                title=f"Mentioned ({m.rule.name}) on {m.channel} · {m.get_sentiment_display().lower()}",
                body=m.snippet[:500], url=f"{reverse('listening:mentions')}?rule={m.rule_id}&contact={m.contact_id}",
                extra={"sentiment": m.sentiment, "rule_id": m.rule_id, "private": getattr(m, "text_hidden", False)},
            )
        )  # fmt: skip
    return entries


def post_timeline(query: TimelineQuery) -> list[TimelineEntry]:
    """The person's recent public posts, from sources the user may see."""
    rows = (
        selectors.post_list_for_contacts(user=query.user, contact_ids=query.contact_ids)
        .filter(keyset_before_q(query.before, source=POST_SOURCE, at_field="posted_at"))
        .only("id", "channel", "url", "title", "text", "posted_at", "deleted_at", "author_name", "author_handle")
        .order_by("-posted_at", "-id")[: query.limit]
    )
    entries = []
    for post in rows:
        title = f"Public post on {post.channel}" + (f": {post.title[:200]}" if post.title else "")
        if post.deleted_at:
            title += " (deleted)"
        url = post.url if post.url.lower().startswith(("http://", "https://")) else ""
        entries.append(
            TimelineEntry(
                at=post.posted_at, source=POST_SOURCE, id=post.pk, kind=f"post_{post.channel}", title=title,
                body=post.text[:500], url=url, extra={"deleted": post.deleted_at is not None},
            )
        )  # fmt: skip
    return entries


# --- Merge --------------------------------------------------------------------------------------------------------


def listening_move(primary: Contact, duplicate: Contact) -> tuple[dict[str, Any], list[str]]:
    """Mentions and public posts of the duplicate follow the person to the survivor."""
    mention_ids = list(Mention.objects.filter(contact=duplicate).values_list("pk", flat=True))
    post_ids = list(Post.objects.filter(contact=duplicate).values_list("pk", flat=True))
    Mention.objects.filter(pk__in=mention_ids).update(contact=primary)
    Post.objects.filter(pk__in=post_ids).update(contact=primary)
    return {"mentions": mention_ids, "posts": post_ids}, []


def listening_restore(primary: Contact, duplicate: Contact, record: dict[str, Any]) -> list[str]:
    # Only rows still on the survivor go back: one re-pointed since (a later merge) is left where it is now.
    Mention.objects.filter(pk__in=record.get("mentions", []), contact=primary).update(contact=duplicate)
    Post.objects.filter(pk__in=record.get("posts", []), contact=primary).update(contact=duplicate)
    return []


# --- Personal data ------------------------------------------------------------------------------------------------


def _person_posts(contact: Contact) -> Q:
    """Posts the person wrote: resolved to them, or by one of their identities (stored before anyone knew)."""
    q = Q(contact=contact)
    for kind, address in contact.identities.values_list("kind", "normalized"):
        q |= Q(contact__isnull=True, author_kind=kind, author_address=address)
    return q


def _iso(row: dict[str, Any]) -> dict[str, Any]:
    return {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in row.items()}


def listening_export(contact: Contact) -> dict[str, Any]:
    post_fields = ["id", "source_id", "external_id", "channel", "url", "author_name", "author_handle", "title",
                   "text", "lang", "latitude", "longitude", "place", "posted_at", "deleted_at"]  # fmt: skip
    posts = Post.objects.filter(_person_posts(contact)).order_by("posted_at", "id").values(*post_fields)
    mentions = (
        Mention.objects.filter(Q(contact=contact) | Q(post__in=Post.objects.filter(_person_posts(contact))))
        .order_by("occurred_at", "id")
        .values("id", "rule__name", "post_id", "message_id", "channel", "snippet", "matched_terms", "sentiment",
                "sentiment_score", "lang", "occurred_at")
    )  # fmt: skip
    return {"posts": [_iso(p) for p in posts], "mentions": [_iso(m) for m in mentions]}


def listening_erase(contact: Contact) -> int:
    """Delete the person's public posts (their mentions go with them) and every mention about them."""
    mentions, _ = Mention.objects.filter(contact=contact).delete()
    posts, _ = Post.objects.filter(_person_posts(contact)).delete()
    return mentions + posts


# --- My day -------------------------------------------------------------------------------------------------------


def my_day_panel_context(request: HttpRequest) -> dict[str, Any]:
    return selectors.my_listening_alerts(user=request.user)


register_timeline_source(TimelineSource(key=MENTION_SOURCE, label="Mentions", fetch=mention_timeline))
register_timeline_source(TimelineSource(key=POST_SOURCE, label="Public posts", fetch=post_timeline))
register_merge_handler(MergeHandler(key="listening", move=listening_move, restore=listening_restore, order=70))
# Before threads (40): the counts are listening's own, not rows threads' message deletion cascaded away.
register_personal_data_source(
    PersonalDataSource(key="listening", export=listening_export, erase=listening_erase, order=30)
)
register_panel(
    Panel(
        key="listening", title="Listening alerts", template="listening/_myday_alerts.html",
        context=my_day_panel_context, order=40,
    )
)  # fmt: skip
