"""Errors a user can cause. Views and the API turn them into a clear message, never a 500."""

from __future__ import annotations

from django.http import Http404


class DomainError(Exception):
    """Base for user-actionable errors. ``fields`` maps a field name to its messages."""

    code = "invalid"
    status = 400

    def __init__(self, message: str, *, fields: dict[str, list[str]] | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.fields = fields or {}
        if code:
            self.code = code


class Conflict(DomainError):
    code = "conflict"
    status = 409


class NotFound(DomainError, Http404):
    """Raised for objects that do not exist *or* that the caller may not see: the two must look the same.

    It is also an Http404, so a browser view that lets it through answers 404 like any missing page.
    """

    code = "not_found"
    status = 404
