"""How threads plugs into the apps below it: the contact timeline, merge and unmerge, GDPR, and My day.

Imported once from ThreadsConfig.ready().
"""

from __future__ import annotations

from typing import Any

from django.db.models import Q
from django.http import HttpRequest
from django.urls import reverse

from accounts.selectors import visibility_q
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
from contacts.selectors.timeline import keyset_before_sql
from crm.panels import Panel, register_panel
from crm.sql import int_array
from threads.models import Attachment, Direction, Message, RawEvent, Thread
from threads.services.conversations import thread_recompute

SOURCE = "message"


# --- Timeline -----------------------------------------------------------------------------------------------


def message_timeline(query: TimelineQuery) -> list[TimelineEntry]:
    """Every message with the person, newest first. The caller already checked the contacts are visible; a
    private mailbox's message shows that the touch happened (date, channel, subject), not its body."""
    # Through the people's threads, newest first in each (``message_thread_order``), at most ``limit`` from each,
    # then merged: bounded by limit x threads however long a history is. There is no (contact, sent_at) index on
    # messages on purpose: it would cost every ingested message one more random index insert. A message with a
    # contact always has a thread of that contact (a check constraint, and every move keeps them together).
    keyset, keyset_params = keyset_before_sql(query.before, source=SOURCE, at_col="m.sent_at", id_col="m.id")
    qs = Message.objects.raw(
        f"""
        SELECT m.* FROM threads_thread t CROSS JOIN LATERAL (
            SELECT m.id, m.thread_id, m.channel, m.direction, m.subject, m.body_display, m.sent_at, m.author_name,
                   m.author_address, m.is_private, m.body_visible_to, m.delivery
            FROM threads_message m WHERE m.thread_id = t.id AND {keyset}
            ORDER BY m.sent_at DESC, m.id DESC LIMIT %s
        ) m
        WHERE t.contact_id = ANY(%s::bigint[])
        ORDER BY m.sent_at DESC, m.id DESC LIMIT %s
        """,  # noqa: S608 - the keyset fragment is ours, its values are parameters
        [*keyset_params, query.limit, int_array(query.contact_ids), query.limit],
    )
    entries = []
    for m in qs:
        who = m.author_name or m.author_address
        if m.direction == Direction.INBOUND:
            title = f"{m.get_channel_display()} from {who}" if who else m.get_channel_display()
        else:
            title = f"{m.get_channel_display()} (outbound)"
        if m.subject:
            title += f": {m.subject[:200]}"
        visible_body = m.body_visible_for(query.user)
        entries.append(
            TimelineEntry(
                at=m.sent_at, source=SOURCE, id=m.pk, kind=f"message_{m.channel}", title=title,
                body=m.body_display[:500] if visible_body else "",
                url=(reverse("threads:detail", args=[m.thread_id]) + f"#m{m.pk}") if m.thread_id else "",
                extra={"direction": m.direction, "private": not visible_body, "delivery": m.delivery},
            )
        )  # fmt: skip
    return entries


# --- Merge --------------------------------------------------------------------------------------------------


def threads_move(primary: Contact, duplicate: Contact) -> tuple[dict[str, Any], list[str]]:
    """The duplicate's conversation joins the survivor's: its main thread's messages move into the survivor's
    main thread, its topic threads move over (renamed on a clash), and every message follows the person."""
    message_ids = list(Message.objects.filter(contact=duplicate).values_list("pk", flat=True))
    Message.objects.filter(pk__in=message_ids).update(contact=primary)
    record: dict[str, Any] = {"messages": message_ids, "main_messages": [], "dup_main": None, "threads": [],
                              "renamed": {}}  # fmt: skip
    primary_main = Thread.objects.filter(contact=primary, topic="").first()
    dup_main = Thread.objects.filter(contact=duplicate, topic="").first()
    if dup_main is not None and primary_main is not None:
        moved = list(Message.objects.filter(thread=dup_main).values_list("pk", flat=True))
        Message.objects.filter(pk__in=moved).update(thread=primary_main)
        record["main_messages"] = moved
        record["dup_main"] = {"status": dup_main.status, "assignee_id": dup_main.assignee_id}
        dup_main.delete()
    elif dup_main is not None:
        Thread.objects.filter(pk=dup_main.pk).update(contact=primary)
        record["threads"].append(dup_main.pk)
    primary_topics = set(Thread.objects.filter(contact=primary).values_list("topic", flat=True))
    for thread in Thread.objects.filter(contact=duplicate).exclude(topic=""):
        topic = thread.topic
        if topic in primary_topics:
            topic = f"{thread.topic} ({duplicate.display_name})"[:200]
            record["renamed"][str(thread.pk)] = thread.topic
        Thread.objects.filter(pk=thread.pk).update(contact=primary, topic=topic)
        record["threads"].append(thread.pk)
    if primary_main is not None:
        thread_recompute([primary_main.pk])
    return record, []


def threads_restore(primary: Contact, duplicate: Contact, record: dict[str, Any]) -> list[str]:
    Message.objects.filter(pk__in=record.get("messages", [])).update(contact=duplicate)
    touched: list[int] = []
    for pk in record.get("threads", []):
        topic = record.get("renamed", {}).get(str(pk))
        updates: dict[str, Any] = {"contact": duplicate}
        if topic is not None:
            updates["topic"] = topic
        Thread.objects.filter(pk=pk).update(**updates)
    if record.get("dup_main") is not None:
        main = Thread.objects.create(contact=duplicate, topic="", status=record["dup_main"]["status"],
                                     assignee_id=record["dup_main"]["assignee_id"])  # fmt: skip
        Message.objects.filter(pk__in=record.get("main_messages", [])).update(thread=main)
        touched.append(main.pk)
    primary_main = Thread.objects.filter(contact=primary, topic="").values_list("pk", flat=True).first()
    if primary_main:
        touched.append(primary_main)
    thread_recompute(touched)
    # Messages that arrived after the merge stay with the survivor: they were addressed to the merged identity.
    return []


# --- Personal data ------------------------------------------------------------------------------------------


def _person_messages(contact: Contact) -> Q:
    """The person's messages, and unmatched ones from their addresses (held before anyone knew who wrote)."""
    addresses = list(contact.identities.values_list("normalized", flat=True))
    q = Q(contact=contact)
    if addresses:
        q |= Q(contact__isnull=True, author_address__in=addresses)
    return q


def threads_export(contact: Contact) -> dict[str, Any]:
    fields = ["id", "thread_id", "channel", "direction", "sent_at", "subject", "body_text", "author_address",
              "author_name", "recipients", "delivery"]  # fmt: skip
    messages = Message.objects.filter(_person_messages(contact)).order_by("sent_at", "id").values(*fields)
    threads = Thread.objects.filter(contact=contact).order_by("id").values("id", "topic", "status", "created_at")

    def clean(row: dict[str, Any]) -> dict[str, Any]:
        return {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in row.items()}

    attachments = Attachment.objects.filter(message__in=Message.objects.filter(_person_messages(contact)))
    return {
        "threads": [clean(t) for t in threads],
        "messages": [clean(m) for m in messages],
        "attachments": list(attachments.values("id", "message_id", "name", "content_type", "size")),
    }


def threads_erase(contact: Contact) -> int:
    """Delete the person's messages (with attachment files), threads, and the raw provider events behind them."""
    messages = Message.objects.filter(_person_messages(contact))
    raw_ids = list(messages.exclude(raw_event_id=None).values_list("raw_event_id", flat=True))
    for attachment in Attachment.objects.filter(message__in=messages).exclude(file=""):
        attachment.file.delete(save=False)
    count, _ = messages.delete()
    threads, _ = Thread.objects.filter(contact=contact).delete()
    raws, _ = RawEvent.objects.filter(pk__in=raw_ids).delete()
    return count + threads + raws


# --- My day ---------------------------------------------------------------------------------------------------


def waiting_threads(request: HttpRequest, limit: int = 20) -> list[Thread]:
    """Threads whose newest message is inbound, assigned to me, or unassigned and about a contact I own."""
    user = request.user
    qs = (
        Thread.objects.filter(awaiting_reply=True)
        .exclude(status=Thread.Status.CLOSED)
        .filter(Q(assignee=user) | Q(assignee__isnull=True, contact__owner=user))
        .filter(visibility_q(user, prefix="contact__"))
        .select_related("contact")
        .order_by("-last_inbound_at", "-id")
    )
    return list(qs[:limit])


def my_day_panel_context(request: HttpRequest) -> dict[str, Any]:
    return {"threads": waiting_threads(request)}


register_timeline_source(TimelineSource(key=SOURCE, label="Messages", fetch=message_timeline))
register_merge_handler(MergeHandler(key="threads", move=threads_move, restore=threads_restore, order=40))
register_personal_data_source(PersonalDataSource(key="threads", export=threads_export, erase=threads_erase, order=40))
register_panel(
    Panel(
        key="threads", title="Waiting for your reply", template="threads/_myday_waiting.html",
        context=my_day_panel_context, order=20,
    )
)  # fmt: skip
