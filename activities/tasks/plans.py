"""Celery tasks for activity plans: thin, idempotent, take ids."""

from __future__ import annotations

from celery import shared_task
from django.db import InterfaceError, OperationalError


@shared_task(
    name="activities.plan_assignment",
    ignore_result=True,
    autoretry_for=(OperationalError, InterfaceError),  # transient; committed chunks are not redone
    max_retries=5,
    retry_backoff=True,
    retry_backoff_max=300,
)
def plan_assignment_task(assignment_id: int) -> None:
    """Assign a plan to a large set of contacts in chunks; progress is on the PlanAssignment row."""
    from activities.services.plans import plan_assignment_process

    plan_assignment_process(assignment_id=assignment_id)
