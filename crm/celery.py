"""The Celery app. Config comes from Django settings under the CELERY_ namespace."""

from __future__ import annotations

import os

from celery import Celery, Task
from celery.signals import beat_init, worker_init

from crm.env import env_int

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "crm.settings")


class ThreadlineTask(Task):
    """Base task: acknowledged after it runs, retries bounded and backing off up to a ceiling.

    The ceiling stays below the broker visibility timeout (checked at start-up by crm.checks), so a retried
    message is never redelivered a second time by Redis while it waits.
    """

    acks_late = True
    reject_on_worker_lost = True
    max_retries = env_int("CELERY_TASK_DEFAULT_MAX_RETRIES", 5)
    default_retry_delay = env_int("CELERY_TASK_DEFAULT_RETRY_DELAY", 30)
    retry_backoff = True
    retry_backoff_max = env_int("CELERY_TASK_RETRY_BACKOFF_MAX", 600)
    retry_jitter = True


def bounded_countdown(seconds: float) -> int:
    """Clamp a provider-requested wait (e.g. a rate-limit reset) below the broker visibility timeout."""
    from django.conf import settings

    ceiling = settings.CELERY_VISIBILITY_TIMEOUT - 60
    return int(max(1, min(seconds, ceiling)))


app = Celery("crm", task_cls=ThreadlineTask)
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


def _fail_on_unsafe_delays(**_: object) -> None:
    from crm.checks import unsafe_delay_errors

    errors = unsafe_delay_errors()
    if errors:
        raise SystemExit("threadline: refusing to start Celery:\n  " + "\n  ".join(e.msg for e in errors))


worker_init.connect(_fail_on_unsafe_delays, weak=False)
beat_init.connect(_fail_on_unsafe_delays, weak=False)
