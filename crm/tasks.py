"""Cross-cutting periodic tasks."""

from __future__ import annotations

from celery import shared_task


@shared_task(name="crm.tasks.heartbeat", ignore_result=True)
def heartbeat() -> None:
    """Beat schedules it, a worker runs it: a fresh heartbeat proves both are alive (see /healthz)."""
    from crm.health import heartbeat_record

    heartbeat_record()
