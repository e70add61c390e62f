"""Reads for the import wizard. An import is visible to its owner and to admins (and managers, by the policy)."""

from __future__ import annotations

from django.db.models import QuerySet

from accounts.models import User
from accounts.selectors import visible
from contacts.models import ImportJob, ImportRowError
from crm.errors import NotFound


def import_job_list(*, user: User) -> QuerySet[ImportJob]:
    return visible(ImportJob.objects.defer("data"), user).select_related("owner").order_by("-id")


def import_job_get(*, user: User, pk: int, with_data: bool = False) -> ImportJob:
    qs = visible(ImportJob.objects.all(), user)
    if not with_data:
        qs = qs.defer("data")
    job = qs.select_related("owner").filter(pk=pk).first()
    if job is None:
        raise NotFound("No such import.")
    return job


def import_row_errors(*, job: ImportJob, limit: int = 50) -> list[ImportRowError]:
    return list(job.row_errors.order_by("row_number")[:limit])
