"""Normalization of identities: the one place that decides when two addresses are "the same"."""

from __future__ import annotations

import re

import phonenumbers
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_email

from contacts.models import ContactIdentity

Kind = ContactIdentity.Kind

_HANDLE_RE = re.compile(r"^@?([A-Za-z0-9_.]{1,50})$")


def normalize_email(value: str) -> str:
    cleaned = value.strip().strip("<>").strip()
    if cleaned.lower().startswith("mailto:"):
        cleaned = cleaned[7:]
    try:
        validate_email(cleaned)
    except ValidationError:
        raise ValidationError(f"{value!r} is not a valid e-mail address.", code="invalid_email") from None
    return cleaned.lower()


def normalize_phone(value: str, region: str | None = None) -> str:
    region = region or settings.PHONENUMBER_DEFAULT_REGION
    try:
        number = phonenumbers.parse(value, region)
    except phonenumbers.NumberParseException:
        raise ValidationError(f"{value!r} is not a phone number.", code="invalid_phone") from None
    if not phonenumbers.is_possible_number(number):
        raise ValidationError(f"{value!r} is not a possible phone number.", code="invalid_phone")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def normalize_social(value: str) -> tuple[str, str]:
    """Return (normalized, handle). A numeric user id is the stable key; a handle alone is lower-cased."""
    cleaned = value.strip()
    for prefix in ("https://", "http://", "www.", "twitter.com/", "x.com/", "facebook.com/", "linkedin.com/in/"):
        if cleaned.lower().startswith(prefix):
            cleaned = cleaned[len(prefix) :]
    cleaned = cleaned.strip("/")
    if cleaned.isdigit():
        return cleaned, ""
    match = _HANDLE_RE.match(cleaned)
    if not match:
        raise ValidationError(f"{value!r} is not a valid handle or user id.", code="invalid_handle")
    handle = match.group(1)
    return "@" + handle.lower(), handle


def normalize_identity(kind: str, value: str) -> tuple[str, str]:
    """Return (normalized, handle) for ``value`` of ``kind`` or raise ValidationError with a readable message."""
    if not value or not value.strip():
        raise ValidationError("An identity needs a value.", code="required")
    if kind == Kind.EMAIL:
        return normalize_email(value), ""
    if kind == Kind.PHONE:
        return normalize_phone(value), ""
    if kind in (Kind.TWITTER, Kind.FACEBOOK, Kind.LINKEDIN):
        return normalize_social(value)
    if kind == Kind.WEBSITE:
        cleaned = value.strip().lower().removeprefix("https://").removeprefix("http://").removeprefix("www.")
        return cleaned.rstrip("/"), ""
    if kind not in Kind.values:
        raise ValidationError(f"Unknown identity kind {kind!r}.", code="invalid_kind")
    return value.strip().lower(), ""


def phone_search_prefixes(text: str) -> list[str]:
    """E.164 prefixes a user may mean when typing digits in any format: "(555) 12", "+44 20", "0044 20"."""
    digits = re.sub(r"\D", "", text)
    if len(digits) < 3:
        return []
    prefixes = {"+" + digits}
    if text.strip().startswith("00"):
        prefixes.add("+" + digits[2:])
    region_code = phonenumbers.country_code_for_region(settings.PHONENUMBER_DEFAULT_REGION)
    national = digits[1:] if digits.startswith("0") else digits
    prefixes.add(f"+{region_code}{national}")
    return sorted(prefixes)
