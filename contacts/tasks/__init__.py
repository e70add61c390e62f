"""Celery tasks of contacts. Celery autodiscovers this package; each area has its own module."""

from contacts.tasks import duplicates, imports  # noqa: F401  (registers the tasks)
