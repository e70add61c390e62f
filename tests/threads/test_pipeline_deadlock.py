"""A batch that loses a deadlock to another writer is tried again in its savepoint instead of failing the sync or
dead-lettering good events. The deadlock here is real: another connection holds the thread the batch updates, then
waits for the batch's uncommitted message."""

from __future__ import annotations

import logging
import threading
import time

import psycopg2
import pytest
from django.db import connection, transaction
from django.utils import timezone

from contacts.models import ContactIdentity
from threads.models import Message, Thread
from threads.services.pipeline import _ingest_retrying

from .factories import ChannelAccountFactory, inbound_email

pytestmark = pytest.mark.django_db(transaction=True)


def _connect():  # type: ignore[no-untyped-def]
    settings = connection.settings_dict
    return psycopg2.connect(
        dbname=settings["NAME"], user=settings["USER"], host=settings["HOST"], port=settings["PORT"] or 5432,
        password=settings["PASSWORD"],
    )  # fmt: skip


def test_a_deadlock_victim_batch_is_tried_again_and_stores_nothing_twice(world, caplog) -> None:  # type: ignore[no-untyped-def]
    ContactIdentity.objects.create(
        contact=world.a1_shared, kind="email", value="ann@example.com", normalized="ann@example.com"
    )
    thread = Thread.objects.create(contact=world.a1_shared)
    account = ChannelAccountFactory(owner=world.a1, team=world.team_a)
    other_account = ChannelAccountFactory(owner=world.a2, team=world.team_a)
    message = inbound_email("ann@example.com")
    key = message.key()
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        batch_pid = cursor.fetchone()[0]
    locked, outcome = threading.Event(), {}

    def other_writer() -> None:
        """Holds the thread, waits until the batch waits for it, then writes the same mail (seen by another
        mailbox): now each waits for the other."""
        other = _connect()
        try:
            with other, other.cursor() as cursor:
                cursor.execute("UPDATE threads_thread SET status = status WHERE id = %s", [thread.pk])
                locked.set()
                deadline = time.monotonic() + 20
                while time.monotonic() < deadline:
                    cursor.execute("SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", [batch_pid])
                    if cursor.fetchone()[0] == "Lock":
                        break
                    time.sleep(0.02)
                cursor.execute(
                    "INSERT INTO threads_message (channel_account_id, channel, direction, external_id, global_key, "
                    "provider_thread_key, author_address, author_name, recipients, sent_at, subject, body_text, "
                    "body_display, body_html, is_private, body_visible_to, seen_by, delivery, meta, created_at) "
                    "VALUES (%s, 'email', 'inbound', %s, %s, '', '', '', '[]', now(), '', '', '', '', false, '{}', "
                    "ARRAY[%s]::bigint[], '', '{}', now())",
                    [other_account.pk, message.external_id, key, other_account.pk],
                )
            outcome["committed"] = True
        except psycopg2.Error as exc:
            outcome["error"] = exc.pgcode
        finally:
            other.close()

    worker = threading.Thread(target=other_writer)
    worker.start()
    assert locked.wait(10)
    message.thread_id, message.contact_id = thread.pk, world.a1_shared.pk
    started = timezone.now()
    with caplog.at_level(logging.INFO, logger="threads.services.pipeline"), transaction.atomic():
        result = _ingest_retrying(account, [message])
    worker.join(20)
    assert outcome == {"committed": True}  # the batch was the victim (it waited first), the other writer went on
    assert "lost to a concurrent writer" in caplog.text and "deadlock" in caplog.text
    # Tried again after the other writer committed: the mail is already stored, so nothing new.
    assert result.created == [] and result.duplicates == 1
    assert Message.objects.filter(global_key=key).count() == 1
    assert Message.objects.get(global_key=key).seen_by == [other_account.pk, account.pk]  # one mail, two mailboxes
    assert (timezone.now() - started).total_seconds() < 15
