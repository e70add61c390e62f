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


@shared_task(name="activities.tasks.calendar.digest_send_task")
def digest_send_task() -> int:
    from activities.services.calendar import digest_send

    return digest_send()
