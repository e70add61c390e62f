"""Parse ``EMAIL_URL`` (smtp://user:pass@host:587/?tls=1, smtps://..., console://, locmem://) into settings."""

from __future__ import annotations

from urllib.parse import parse_qs, unquote, urlparse

_BACKENDS = {
    "smtp": "django.core.mail.backends.smtp.EmailBackend",
    "smtps": "django.core.mail.backends.smtp.EmailBackend",
    "submission": "django.core.mail.backends.smtp.EmailBackend",
    "console": "django.core.mail.backends.console.EmailBackend",
    "locmem": "django.core.mail.backends.locmem.EmailBackend",
    "dummy": "django.core.mail.backends.dummy.EmailBackend",
}


def parse_email_url(url: str) -> dict[str, object]:
    parsed = urlparse(url)
    if parsed.scheme not in _BACKENDS:
        raise ValueError(f"EMAIL_URL scheme {parsed.scheme!r} is not one of {', '.join(sorted(_BACKENDS))}")
    query = {key: values[-1] for key, values in parse_qs(parsed.query).items()}
    default_port = {"smtps": 465, "submission": 587}.get(parsed.scheme, 25)
    return {
        "EMAIL_BACKEND": _BACKENDS[parsed.scheme],
        "EMAIL_HOST": parsed.hostname or "localhost",
        "EMAIL_PORT": parsed.port or default_port,
        "EMAIL_HOST_USER": unquote(parsed.username or ""),
        "EMAIL_HOST_PASSWORD": unquote(parsed.password or ""),
        "EMAIL_USE_SSL": parsed.scheme == "smtps" or query.get("ssl") in {"1", "true"},
        "EMAIL_USE_TLS": parsed.scheme == "submission" or query.get("tls") in {"1", "true"},
    }
