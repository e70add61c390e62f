"""Registers the calendar area's My day panel ("Time to get in touch"). Imported once from ActivitiesConfig.ready()."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from crm.panels import Panel, register_panel


def _prompts_context(request: HttpRequest) -> dict[str, Any]:
    from activities.views.calendar import prompts_panel_context

    return prompts_panel_context(request)


register_panel(
    Panel(
        key="touch-prompts",
        title="Time to get in touch",
        template="activities/_myday_prompts.html",
        context=_prompts_context,
        order=20,
    )
)
