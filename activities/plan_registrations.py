"""Signal receivers of the plans area: an inbound message from a contact stops their running plans."""

from __future__ import annotations

from typing import Any

from django.dispatch import receiver

from threads.events import IngestedMessage, messages_ingested


@receiver(messages_ingested, dispatch_uid="activities.plans.stop_on_reply")
def stop_plans_on_reply(sender: Any, *, messages: list[IngestedMessage], **kwargs: Any) -> None:
    contact_ids = {m.contact_id for m in messages if m.direction == "inbound" and m.contact_id}
    if not contact_ids:
        return
    from activities.services.plans import plan_runs_stop_for_contacts

    plan_runs_stop_for_contacts(contact_ids=sorted(contact_ids))
