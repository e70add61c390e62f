"""Tasks: the duplicate finder."""

from __future__ import annotations

from celery import shared_task


# One SQL statement over every contact: about a minute per million contacts, so it gets more than the default
# time limit (still well under the broker's visibility timeout, so a running scan is never handed out twice).
@shared_task(
    name="contacts.tasks.duplicates.duplicates_find_task", ignore_result=True, soft_time_limit=1800, time_limit=1900
)
def duplicates_find_task(contact_ids: list[int] | None = None) -> int:
    """Scheduled daily by beat and started on demand. Idempotent: the finder upserts, so a redelivery is harmless."""
    from contacts.services.duplicates import duplicates_find

    return duplicates_find(contact_ids=contact_ids)
