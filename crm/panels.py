"""Registry of My day panels.

My day gathers what each app knows is due for a user: activities, touch prompts, birthdays, unanswered
messages, listening alerts. crm cannot import those apps (they sit above it), so each registers a panel here
from its AppConfig.ready(), and the My day view renders whatever is registered, in ``order``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.http import HttpRequest


@dataclass(frozen=True)
class Panel:
    key: str
    title: str
    template: str
    context: Callable[[HttpRequest], dict[str, Any]]
    order: int = 100


_PANELS: dict[str, Panel] = {}


def register_panel(panel: Panel) -> None:
    _PANELS[panel.key] = panel


def panels() -> list[Panel]:
    return sorted(_PANELS.values(), key=lambda p: (p.order, p.key))
