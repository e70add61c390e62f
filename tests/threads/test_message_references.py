"""Message → thread, contact and channel account are enforced by statement-level triggers (threads migration 0005)
instead of row-level foreign keys. They must refuse everything a foreign key refuses, including the race between an
uncommitted ingest and a concurrent delete."""

from __future__ import annotations

import threading

import psycopg2
import pytest
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from contacts.services import contact_delete
from threads.models import Message, Thread
from threads.services.pipeline import ingest_batch

from .factories import ChannelAccountFactory, inbound_email


def _message(thread: Thread | None, account, **overrides) -> Message:  # type: ignore[no-untyped-def]
    fields = {
        "thread": thread, "contact_id": thread.contact_id if thread else None, "channel_account": account,
        "channel": "email", "direction": "inbound", "external_id": f"x{Message.objects.count()}@example.com",
        "sent_at": timezone.now(),
    }  # fmt: skip
    fields.update(overrides)
    fields.setdefault("global_key", f"email:{fields['external_id']}")
    return Message.objects.create(**fields)


@pytest.fixture
def setup(world):  # type: ignore[no-untyped-def]
    account = ChannelAccountFactory(owner=world.a1, team=world.team_a)
    thread = Thread.objects.create(contact=world.a1_shared)
    return world, account, thread


@pytest.mark.django_db
@pytest.mark.parametrize("field", ["thread_id", "contact_id", "channel_account_id"])
def test_a_message_pointing_nowhere_is_refused(setup, field: str) -> None:  # type: ignore[no-untyped-def]
    _, account, thread = setup
    with pytest.raises(IntegrityError, match=f"threads_message.{field}=999999999"), transaction.atomic():
        _message(thread, account, **{field: 999_999_999})
    assert not Message.objects.exists()


@pytest.mark.django_db
def test_moving_a_message_to_a_missing_thread_is_refused(setup) -> None:  # type: ignore[no-untyped-def]
    _, account, thread = setup
    message = _message(thread, account)
    with pytest.raises(IntegrityError, match="points to no thread"), transaction.atomic():
        Message.objects.filter(pk=message.pk).update(thread_id=999_999_999)
    message.refresh_from_db()
    assert message.thread_id == thread.pk


@pytest.mark.django_db
def test_raw_deletes_of_referenced_rows_are_refused(setup) -> None:  # type: ignore[no-untyped-def]
    """Checked at commit, like Django's deferred foreign keys (the ORM may delete a thread before its messages)."""
    world, account, thread = setup
    _message(thread, account)
    # A contact without threads of its own, so only the message's reference can stop its delete (a message with a
    # contact needs a thread: this one borrows another contact's, which nothing but this test would do).
    _message(thread, account, contact_id=world.b1_shared.pk)
    for table, pk in (
        ("threads_thread", thread.pk), ("contacts_contact", world.b1_shared.pk), ("threads_channelaccount", account.pk),
    ):  # fmt: skip
        with (
            pytest.raises(IntegrityError, match="still referenced"),
            transaction.atomic(),
            connection.cursor() as cursor,
        ):
            cursor.execute(f"DELETE FROM {table} WHERE id = %s", [pk])  # noqa: S608
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # what the commit would check
    assert Message.objects.count() == 2


@pytest.mark.django_db
def test_a_message_with_a_contact_has_a_thread(setup) -> None:  # type: ignore[no-untyped-def]
    """The timeline finds a person's messages through their threads; the check constraint guarantees none hides."""
    world, account, _ = setup
    with pytest.raises(IntegrityError, match="message_contact_has_thread"), transaction.atomic():
        _message(None, account, contact_id=world.a1_shared.pk)
    _message(None, account)  # unmatched: neither
    assert Message.objects.count() == 1


@pytest.mark.django_db
def test_orm_cascades_still_work(setup) -> None:  # type: ignore[no-untyped-def]
    world, account, thread = setup
    _message(thread, account)
    contact_delete(contact=world.a1_shared, actor=world.admin)
    assert not Message.objects.exists() and not Thread.objects.filter(pk=thread.pk).exists()


@pytest.mark.django_db(transaction=True)
def test_a_delete_racing_an_uncommitted_ingest_fails_instead_of_orphaning(setup) -> None:  # type: ignore[no-untyped-def]
    """The ingest locks the thread it wrote into; a DELETE of that thread waits for the ingest's commit, then sees
    the committed message and is refused, as a deferred foreign key would refuse it."""
    _, account, thread = setup
    settings = connection.settings_dict
    outcome: dict[str, object] = {}
    started = threading.Event()

    def delete_thread() -> None:
        other = psycopg2.connect(
            dbname=settings["NAME"], user=settings["USER"], host=settings["HOST"], port=settings["PORT"] or 5432,
            password=settings["PASSWORD"],
        )  # fmt: skip
        try:
            with other, other.cursor() as cursor:
                cursor.execute("SET lock_timeout = '20s'")
                started.set()
                cursor.execute("DELETE FROM threads_thread WHERE id = %s", [thread.pk])
            outcome["deleted"] = True
        except psycopg2.Error as exc:
            outcome["error"] = exc.pgcode
        finally:
            other.close()

    with transaction.atomic():
        message = inbound_email("ann@example.com")
        message.thread_id, message.contact_id = thread.pk, thread.contact_id
        assert ingest_batch(account=account, messages=[message]).created
        worker = threading.Thread(target=delete_thread)
        worker.start()
        started.wait(5)
        worker.join(0.5)
        assert worker.is_alive(), "the delete must wait for the ingest's lock"
    worker.join(20)
    assert outcome == {"error": "23503"}  # foreign_key_violation
    assert Thread.objects.filter(pk=thread.pk).exists()
    assert Message.objects.filter(thread=thread).count() == 1
