"""Form helpers every app's browser views share."""

from __future__ import annotations

from django import forms

from crm.errors import DomainError


def add_service_errors(form: forms.Form, exc: DomainError, *, aliases: dict[str, str] | None = None) -> None:
    """Put a service's field errors on the form's fields (``aliases`` maps service names to form names); an error
    for a field the form does not have, or a refusal without field errors, goes on the form as a whole."""
    aliases = aliases or {}
    placed = False
    for key, errors in exc.fields.items():
        name = aliases.get(key, key)
        for error in errors:
            form.add_error(name if name in form.fields else None, error)
            placed = True
    if not placed:
        form.add_error(None, exc.message)
