"""Tasks: the beat jobs of reminders, digest, touch prompts and cadence learning. Each is one idempotent call."""

from __future__ import annotations

from celery import shared_task


@shared_task(name="activities.tasks.calendar.touch_prompts_scan_task")
def touch_prompts_scan_task() -> int:
    from activities.services.calendar import touch_prompts_scan

    return touch_prompts_scan()


@shared_task(name="activities.tasks.calendar.cadence_learn_task")
def cadence_learn_task() -> int:
    from activities.services.calendar import cadence_learn

    return cadence_learn()


@shared_task(name="activities.tasks.calendar.reminders_send_task")
def reminders_send_task() -> int:
    from activities.services.calendar import reminders_send

    return reminders_send()


@shared_task(name="activities.tasks.calendar.digest_send_task", bind=True, max_retries=6)
def digest_send_task(self) -> int:  # type: ignore[no-untyped-def]
    from activities.services.calendar import DigestNotSent, digest_send
    from crm.celery import bounded_countdown

    try:
        return digest_send()
    except DigestNotSent as exc:
        # Only the digests that did not go out are sent again (each user's claim rolled back with its failure).
        raise self.retry(exc=exc, countdown=bounded_countdown(300 * 2**self.request.retries)) from exc
