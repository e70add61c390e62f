"""Events the threads app emits. Higher apps (activities, listening) subscribe; threads never imports them.

``message_ingested`` is sent once per newly stored message, after the transaction that stored it commits
(senders use ``transaction.on_commit``), with keyword arguments:

- ``message_id``: int
- ``contact_id``: int | None (the resolved author or recipient)
- ``direction``: "inbound" or "outbound"
- ``channel``: "email", "sms", "twitter", "facebook", "call", "meeting", "in_person", ...

Activities stops a contact's running plans on an inbound message; listening runs its rules over the text.
"""

from __future__ import annotations

from django.dispatch import Signal

message_ingested = Signal()
