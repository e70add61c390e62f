"""Celery tasks of activities; each area has its own module."""

from activities.tasks import calendar, plans  # noqa: F401  (registers the tasks)
