"""docker-compose.yml has the production shape; no Docker engine runs here, so its structure is what we check."""

from __future__ import annotations

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def test_compose_defines_every_service_with_a_health_check() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    for name in ("postgres", "redis", "web", "worker", "beat"):
        assert "healthcheck" in services[name], name
    for name in ("web", "worker", "beat"):
        assert services[name]["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}
        env = services[name]["environment"]
        assert env["DEBUG"] == "false" and env["DATABASE_URL"].startswith("postgres://")
    assert services["beat"]["command"][:4] == ["celery", "-A", "crm", "beat"]
    assert services["migrate"]["command"] == ["python", "-m", "crm.supervisor", "--prepare"]


def test_compose_sizes_postgres_for_ingest() -> None:
    """The ingest benchmark's figures assume these (README "PostgreSQL for ingest"); the defaults are overridable."""
    command = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]["postgres"]["command"]
    settings = dict(arg.split("=", 1) for arg in command if "=" in arg)
    assert settings["shared_buffers"] == "${PG_SHARED_BUFFERS:-2GB}"
    assert settings["max_wal_size"] == "${PG_MAX_WAL_SIZE:-8GB}"
    assert settings["checkpoint_timeout"] == "15min"
