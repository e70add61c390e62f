"""Signal receivers of the plans area: an inbound message from a contact stops their running plans."""

from __future__ import annotations

from typing import Any

from django.dispatch import receiver

from threads.events import message_ingested


@receiver(message_ingested, dispatch_uid="activities.plans.stop_on_reply")
def stop_plans_on_reply(sender: Any, *, contact_id: int | None = None, direction: str = "", **kwargs: Any) -> None:
    if direction != "inbound" or not contact_id:
        return
    from activities.services.plans import plan_runs_stop_for_contact

    plan_runs_stop_for_contact(contact_id=contact_id)
