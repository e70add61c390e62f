"""Channel credentials are encrypted at rest with FIELD_ENCRYPTION_KEY, and keys can rotate."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured

from crm.fields import decrypt_text, encrypt_text


def test_round_trip_and_ciphertext_hides_secret(settings) -> None:
    settings.FIELD_ENCRYPTION_KEY = [Fernet.generate_key().decode()]
    token = encrypt_text("page-access-token-123")
    assert "page-access-token-123" not in token
    assert decrypt_text(token) == "page-access-token-123"


def test_rotation_keeps_old_values_readable(settings) -> None:
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.FIELD_ENCRYPTION_KEY = [old]
    token = encrypt_text("secret")
    settings.FIELD_ENCRYPTION_KEY = [new, old]
    assert decrypt_text(token) == "secret"
    settings.FIELD_ENCRYPTION_KEY = [new]
    with pytest.raises(ImproperlyConfigured, match="Cannot decrypt"):
        decrypt_text(token)


def test_bad_key_is_a_clear_configuration_error(settings) -> None:
    settings.FIELD_ENCRYPTION_KEY = ["not-a-key"]
    with pytest.raises(ImproperlyConfigured, match="Fernet keys"):
        encrypt_text("x")
