"""Typed readers for settings that come from the environment.

A secret may also come from a file: ``SECRET_KEY_FILE=/run/secrets/key`` is read when ``SECRET_KEY`` is unset,
which is how Docker and Kubernetes secrets arrive.
"""

from __future__ import annotations

import os
from pathlib import Path


class ImproperlyConfiguredEnv(Exception):
    """An environment variable holds a value that cannot be parsed."""


def env_str(name: str, default: str = "") -> str:
    value = os.environ.get(name)
    if value is None:
        file_path = os.environ.get(f"{name}_FILE")
        if file_path:
            return Path(file_path).read_text().strip()
        return default
    return value


def env_bool(name: str, default: bool = False) -> bool:
    raw = env_str(name, "")
    if raw == "":
        return default
    lowered = raw.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfiguredEnv(f"{name}={raw!r} is not a boolean (use true or false)")


def env_int(name: str, default: int) -> int:
    raw = env_str(name, "")
    if raw == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ImproperlyConfiguredEnv(f"{name}={raw!r} is not an integer") from exc


def env_list(name: str, default: list[str] | None = None) -> list[str]:
    raw = env_str(name, "")
    if raw == "":
        return list(default or [])
    return [item.strip() for item in raw.split(",") if item.strip()]
