"""Celery tasks of listening: thin and idempotent; the work is in listening.services.

- ``mentions_evaluate_messages_task`` runs the rules over messages threads just ingested (enqueued by the
  ``messages_ingested`` receiver in listening.registrations, in chunks of at most 500 ids);
- ``sources_fetch_due_task`` (beat, every minute) enqueues a fetch of each source whose interval or back-off
  allows; ``source_fetch_task`` fetches one under a per-source advisory lock;
- ``spike_scan_task`` (beat, every 15 minutes) and ``mention_digests_send_task`` (beat, daily).
"""

from __future__ import annotations

import logging

from celery import shared_task
from django.db import OperationalError, connection
from django.utils import timezone

log = logging.getLogger(__name__)

EVALUATE_CHUNK = 500


@shared_task(name="listening.tasks.mentions_evaluate_messages_task", autoretry_for=(OperationalError,))
def mentions_evaluate_messages_task(message_ids: list[int]) -> int:
    """Returns how many mentions were stored. Safe to run twice: the second run stores and fires nothing, so a
    transient database error (a deadlock, a lost connection) is retried with the default bounded back-off."""
    from listening.services import mentions_evaluate_messages

    return len(mentions_evaluate_messages(message_ids=list(message_ids)).mentions)


@shared_task(name="listening.tasks.source_fetch_task")
def source_fetch_task(source_id: int, force: bool = False) -> str:
    """``force``: the caller already decided the source is due (the due scan claimed it)."""
    from listening.services import source_fetch

    outcome, _ = source_fetch(source_id, force=force)
    if outcome == "more":
        # A page limit was hit: the rest of the backlog follows as soon as a worker is free.
        source_fetch_task.apply_async((source_id,), {"force": True}, countdown=5)
    return outcome


@shared_task(name="listening.tasks.sources_fetch_due_task")
def sources_fetch_due_task() -> int:
    """Claim every due source by moving its ``next_fetch_at`` one interval on (so an overlapping beat or a slow
    worker does not enqueue it twice), then enqueue the fetches. The fetch sets the real next time."""
    from listening.services.sources import POLLED_KINDS

    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE listening_listeningsource SET next_fetch_at = %s + make_interval(secs => fetch_interval_s) "
            "WHERE status IN ('active', 'failing') AND kind = ANY(%s) "
            "AND (next_fetch_at IS NULL OR next_fetch_at <= %s) RETURNING id",
            [timezone.now(), [str(k) for k in POLLED_KINDS], timezone.now()],
        )
        ids = [row[0] for row in cursor.fetchall()]
    for source_id in ids:
        source_fetch_task.delay(source_id, force=True)
    return len(ids)


@shared_task(name="listening.tasks.spike_scan_task")
def spike_scan_task() -> int:
    from listening.services import spike_scan

    return spike_scan()


@shared_task(name="listening.tasks.mention_digests_send_task")
def mention_digests_send_task() -> int:
    from listening.services import mention_digests_send

    return mention_digests_send()
