"""System checks that guard deploy-time mistakes Django cannot see."""

from __future__ import annotations

from django.conf import settings
from django.core.checks import Error, register
from django.utils.module_loading import autodiscover_modules

# Settings whose value is a countdown or an ETA offset in seconds. Apps that add one name it here or end the
# setting's name with _COUNTDOWN so the check below sees it.
DELAY_SETTINGS = ("CELERY_TASK_RETRY_BACKOFF_MAX",)


def unsafe_delay_errors() -> list[Error]:
    """Every configured countdown/ETA must be shorter than the broker visibility timeout.

    With the Redis transport a message that waits longer than the visibility timeout is handed to a second
    worker, so the task would run twice.
    """
    from crm.celery import app

    timeout = settings.CELERY_VISIBILITY_TIMEOUT
    delays: dict[str, float] = {}
    for name in dir(settings):
        if name in DELAY_SETTINGS or name.endswith("_COUNTDOWN") or name.endswith("_ETA_SECONDS"):
            value = getattr(settings, name)
            if isinstance(value, int | float):
                delays[f"setting {name}"] = value
    for entry_name, entry in getattr(settings, "CELERY_BEAT_SCHEDULE", {}).items():
        options = entry.get("options", {})
        if "countdown" in options:
            delays[f"beat entry {entry_name} countdown"] = options["countdown"]
    # Import every app's tasks module directly: app.loader.import_default_modules() would fire Celery's Django
    # fixup, which runs the system checks again, which call this function: infinite recursion.
    autodiscover_modules("tasks")
    for task_name, task in app.tasks.items():
        if task_name.startswith("celery."):
            continue
        if getattr(task, "retry_backoff", False):
            delays[f"task {task_name} retry_backoff_max"] = getattr(task, "retry_backoff_max", 0) or 0
        delays[f"task {task_name} default_retry_delay"] = getattr(task, "default_retry_delay", 0) or 0
    return [
        Error(
            f"{label} is {value:.0f}s, not shorter than CELERY_VISIBILITY_TIMEOUT={timeout}s; "
            "Redis would redeliver the message and the task would run twice.",
            id="threadline.E001",
        )
        for label, value in sorted(delays.items())
        if value >= timeout
    ]


@register("celery")
def celery_delays_check(app_configs: object, **kwargs: object) -> list[Error]:
    return unsafe_delay_errors()
