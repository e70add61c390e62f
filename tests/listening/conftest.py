"""Fixtures of the listening tests. Each test starts with no compiled engine in this process: a rolled-back test
must not leave its rules behind in the per-process cache."""

from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def _fresh_engine() -> Iterator[None]:
    from listening.services import engine_reset

    engine_reset()
    yield
    engine_reset()
