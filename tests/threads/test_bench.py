"""`manage.py bench ingest` at a tiny size: the figures are there, replay inserts nothing, the database is left as
it was (the run commits batch by batch, like a worker, and deletes what it made)."""

from __future__ import annotations

import json

import pytest
from django.core.management import call_command

from accounts.models import Team, User
from contacts.models import Company, Contact, ContactIdentity
from threads.models import ChannelAccount, Message, Thread, ThreadRead

pytestmark = pytest.mark.django_db(transaction=True)

MODELS = (User, Team, Company, Contact, ContactIdentity, ChannelAccount, Message, Thread, ThreadRead)


def _counts() -> dict[str, int]:
    return {m.__name__: m.objects.count() for m in MODELS}


def test_bench_ingest_reports_figures_and_cleans_up(world, capsys: pytest.CaptureFixture[str]) -> None:
    before = _counts()
    call_command("bench", "ingest", "--messages", "600", "--existing", "2000", "--contacts", "100", "--samples", "3")
    figures = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    for key in (
        "bench",
        "messages",
        "msgs_per_s",
        "naive_msgs_per_s",
        "ratio",
        "replay_new_rows",
        "timeline_p95_ms",
        "pg_shared_buffers",
        "pg_max_wal_size",
    ):
        assert key in figures
    assert figures["bench"] == "ingest" and figures["created"] == 600 and figures["existing"] == 2000
    assert figures["replay_new_rows"] == 0
    assert figures["thread_p95_ms"] > 0
    assert _counts() == before


def test_bench_webhooks_accepts_every_signed_delivery_once(world, capsys: pytest.CaptureFixture[str]) -> None:
    from threads.models import RawEvent

    before = {**_counts(), "RawEvent": RawEvent.objects.count()}
    call_command("bench", "webhooks", "--deliveries", "120")
    figures = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert figures["bench"] == "webhooks" and figures["deliveries"] == 120
    assert figures["accepted"] == 120 and figures["statuses"] == {"200": 120}
    assert figures["duplicates_after_redelivery"] == 0
    assert figures["raw_events"] == 120 and figures["messages"] == 120
    assert figures["p95_ms"] > 0 and figures["accepted_per_s"] > 0 and figures["baseline_handshake_p95_ms"] > 0
    assert {**_counts(), "RawEvent": RawEvent.objects.count()} == before
