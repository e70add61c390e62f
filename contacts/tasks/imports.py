"""Tasks: CSV imports."""

from __future__ import annotations

from celery import shared_task
from django.db import InterfaceError, OperationalError

# Below the soft time limit: a long file is processed in slices, each re-queueing the next.
SLICE_SECONDS = 120.0


@shared_task(
    name="contacts.import_job",
    ignore_result=True,
    autoretry_for=(OperationalError, InterfaceError),  # transient: the database went away or timed out
    max_retries=5,
    retry_backoff=True,
    retry_backoff_max=300,
)
def import_job_task(job_id: int) -> None:
    """Process an import job. A duplicate delivery finds the job claimed or done and does nothing harmful."""
    from contacts.models import ImportJob
    from contacts.services.imports import import_job_process

    job = import_job_process(job_id=job_id, max_seconds=SLICE_SECONDS)
    if job.status == ImportJob.Status.RUNNING:
        import_job_task.delay(job_id)
