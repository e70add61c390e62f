"""Model fields shared by every app. ``EncryptedTextField`` keeps channel credentials encrypted at rest."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import models

_PREFIX = "fernet:"


@lru_cache(maxsize=4)
def _fernet(keys: tuple[str, ...]) -> MultiFernet:
    if not keys:
        raise ImproperlyConfigured("FIELD_ENCRYPTION_KEY is not set; channel credentials cannot be stored.")
    try:
        return MultiFernet([Fernet(key.encode()) for key in keys])
    except (ValueError, TypeError) as exc:
        raise ImproperlyConfigured(
            "FIELD_ENCRYPTION_KEY must be Fernet keys (urlsafe base64 of 32 bytes), comma-separated. "
            "Generate one with: python -c "
            '"from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"'
        ) from exc


def encrypt_text(value: str) -> str:
    return _PREFIX + _fernet(tuple(settings.FIELD_ENCRYPTION_KEY)).encrypt(value.encode()).decode()


def decrypt_text(token: str) -> str:
    if not token.startswith(_PREFIX):
        raise ImproperlyConfigured("An encrypted column holds a value that was not written by EncryptedTextField.")
    try:
        return _fernet(tuple(settings.FIELD_ENCRYPTION_KEY)).decrypt(token[len(_PREFIX) :].encode()).decode()
    except InvalidToken as exc:
        # The key changed without rotation (old key dropped from FIELD_ENCRYPTION_KEY): say so, never return junk.
        raise ImproperlyConfigured(
            "Cannot decrypt a stored credential with any FIELD_ENCRYPTION_KEY; keep the old key listed after the "
            "new one while rotating."
        ) from exc


class EncryptedTextField(models.TextField):
    """Text encrypted with Fernet (AES-128-CBC + HMAC) before it reaches the database.

    Several keys in FIELD_ENCRYPTION_KEY allow rotation: the first encrypts, every key decrypts.
    The column cannot be searched or indexed, by design.
    """

    def from_db_value(self, value: str | None, expression: Any, connection: Any) -> str | None:
        if value is None or value == "":
            return value
        return decrypt_text(value)

    def get_prep_value(self, value: Any) -> str | None:
        value = super().get_prep_value(value)
        if value is None or value == "":
            return value
        return encrypt_text(value)
