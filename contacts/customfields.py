"""Validation of ``Contact.custom_fields`` against the admin-defined CustomFieldDefinition rows.

Every write path (UI form, API, CSV import) calls :func:`clean_custom_fields`, so a value stored in the JSONB
column always has its definition's type: numbers are numbers, dates are ISO strings, choices are listed.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal, InvalidOperation
from typing import Any

from django.core.exceptions import ValidationError

from contacts.models import CustomFieldDefinition

Type = CustomFieldDefinition.Type
_TRUE = {"true", "yes", "y", "1", "on", "x"}
_FALSE = {"false", "no", "n", "0", "off", ""}
_NUMBER_LIMIT = Decimal("1e100")


def active_definitions() -> dict[str, CustomFieldDefinition]:
    return {d.key: d for d in CustomFieldDefinition.objects.filter(is_active=True)}


def _coerce(definition: CustomFieldDefinition, value: Any) -> Any:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    kind = definition.field_type
    if kind == Type.TEXT:
        text = str(value).strip()
        if len(text) > 2000:
            raise ValidationError("is longer than 2,000 characters.")
        return text
    if kind == Type.NUMBER:
        if isinstance(value, bool):
            raise ValidationError("must be a number.")
        try:
            number = Decimal(str(value).strip().replace(",", ""))
        except InvalidOperation:
            raise ValidationError(f"{value!r} is not a number.") from None
        if not number.is_finite():
            raise ValidationError("must be a finite number.")
        if abs(number) >= _NUMBER_LIMIT:
            # 1e5000 is finite, but as an int it has too many digits to serialize to JSON.
            raise ValidationError(f"{str(value).strip()[:40]!r} is too large a number.")
        return int(number) if number == number.to_integral_value() else float(number)
    if kind == Type.DATE:
        if isinstance(value, dt.date):
            return value.isoformat()
        try:
            return dt.date.fromisoformat(str(value).strip()).isoformat()
        except ValueError:
            raise ValidationError(f"{value!r} is not a date (use YYYY-MM-DD).") from None
    if kind == Type.BOOLEAN:
        if isinstance(value, bool):
            return value
        lowered = str(value).strip().lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise ValidationError(f"{value!r} is not yes or no.")
    if kind == Type.CHOICE:
        text = str(value).strip()
        for choice in definition.choices:
            if choice.lower() == text.lower():
                return choice
        raise ValidationError(f"{text!r} is not one of: {', '.join(definition.choices)}.")
    raise ValidationError(f"unknown field type {kind!r}.")  # pragma: no cover - choices guard this


def clean_custom_fields(
    values: dict[str, Any] | None,
    *,
    existing: dict[str, Any] | None = None,
    definitions: dict[str, CustomFieldDefinition] | None = None,
) -> dict[str, Any]:
    """Return ``existing`` updated with ``values``, each coerced to its definition's type.

    Raises ValidationError keyed ``custom_fields.<key>`` for unknown keys, bad values and missing required fields.
    A value of None or "" removes the key. Keys of definitions an admin deactivated are kept as they were.
    """
    if values is not None and not isinstance(values, dict):
        raise ValidationError({"custom_fields": ["must be an object of field: value."]})
    definitions = definitions if definitions is not None else active_definitions()
    result = dict(existing or {})
    errors: dict[str, list[str]] = {}
    for key, raw in (values or {}).items():
        definition = definitions.get(key)
        if definition is None:
            errors[f"custom_fields.{key}"] = ["is not a defined custom field."]
            continue
        try:
            value = _coerce(definition, raw)
        except ValidationError as exc:
            errors[f"custom_fields.{key}"] = [f"{definition.label} {m}" for m in exc.messages]
            continue
        if value is None:
            result.pop(key, None)
        else:
            result[key] = value
    for key, definition in definitions.items():
        if definition.required and key not in result and f"custom_fields.{key}" not in errors:
            errors[f"custom_fields.{key}"] = [f"{definition.label} is required."]
    if errors:
        raise ValidationError(errors)
    return result
