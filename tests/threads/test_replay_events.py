"""manage.py replay_events: an unchanged normalizer stores nothing again; a fixed one lands what it now reads."""

from __future__ import annotations

from collections.abc import Iterator
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from tests.threads.factories import ChannelAccountFactory
from threads import connectors
from threads.connectors import NormalizedMessage, NormalizeError, Party, RawEventIn, register_normalizer
from threads.models import ChannelAccount, Message, RawEvent, Thread
from threads.services import raw_events_process, raw_events_store

pytestmark = pytest.mark.django_db

SAMPLES = Path(__file__).parent / "mail_samples"
EVENT_TYPE = "test_fixable"


@pytest.fixture
def account(world) -> ChannelAccount:
    return ChannelAccountFactory(owner=world.a1, team=world.team_a, address="sales@ourco.example")


@pytest.fixture
def fixable() -> Iterator[None]:
    """A custom event type whose normalizer a test can break and fix; unregistered afterwards."""
    yield
    connectors._NORMALIZERS.pop(EVENT_TYPE, None)


def replay(*args: str) -> str:
    out = StringIO()
    call_command("replay_events", *args, stdout=out)
    return out.getvalue()


def test_replay_after_import_stores_nothing_new(account, tmp_path) -> None:
    out = StringIO()
    samples = [str(SAMPLES / n) for n in ("plain.eml", "nested.eml", "alternative.eml", "html_only.eml")]
    call_command("import_mail", "--account", str(account.pk), *samples, str(tmp_path), stdout=out)
    (tmp_path / "bad.eml").write_bytes(b"Subject: no sender\n\nx\n")
    call_command("import_mail", "--account", str(account.pk), str(tmp_path), stdout=out)
    counts = (Message.objects.count(), Thread.objects.count(), RawEvent.objects.count())
    assert counts[0] == 4
    output = replay("--account", str(account.pk))
    assert "Created: 0. Duplicates: 4. Dead: 1." in output
    assert replay().endswith("Created: 0. Duplicates: 4. Dead: 1.\n")  # every account
    assert (Message.objects.count(), Thread.objects.count(), RawEvent.objects.count()) == counts
    assert list(RawEvent.objects.values_list("status", flat=True).distinct().order_by("status")) == [
        "dead",
        "processed",
    ]


def test_replay_after_a_fix_lands_the_dead_lettered_event(world, account, fixable) -> None:
    def broken(event: RawEvent, account: ChannelAccount) -> list[NormalizedMessage]:
        raise NormalizeError("field 'text' missing")

    def fixed(event: RawEvent, account: ChannelAccount) -> list[NormalizedMessage]:
        author = Party("email", "fixed@customer.example", "", "from")
        return [NormalizedMessage(channel="email", direction="inbound", external_id=f"fix-{event.provider_event_id}",
                                  sent_at=timezone.now(), author=author, counterparts=[author],
                                  body_text=bytes(event.payload).decode())]  # fmt: skip

    register_normalizer(EVENT_TYPE, broken)
    raw_events_store(account=account, events=[RawEventIn("ev-1", EVENT_TYPE, b"hello", content_type="text/plain")])
    raw_events_process(account=account)
    event = RawEvent.objects.get(provider_event_id="ev-1")
    assert event.status == RawEvent.Status.DEAD and "field 'text' missing" in event.error
    assert "Created: 0. Duplicates: 0. Dead: 1." in replay("--status", "dead")  # still broken: still dead

    register_normalizer(EVENT_TYPE, fixed)
    assert "Created: 1. Duplicates: 0. Dead: 0." in replay("--account", str(account.pk), "--status", "dead")
    event.refresh_from_db()
    assert event.status == RawEvent.Status.PROCESSED and event.error == ""
    message = Message.objects.get(external_id="fix-ev-1")
    assert message.body_text == "hello" and message.raw_event_id == event.pk and message.contact is not None
    assert "Created: 0. Duplicates: 1." in replay("--status", "processed,dead")


def test_bad_options_are_clear_errors(account) -> None:
    with pytest.raises(CommandError, match="Unknown status pending"):
        replay("--status", "pending")
    with pytest.raises(CommandError, match="Unknown status"):
        replay("--status", ",")
    with pytest.raises(CommandError, match="No channel account with id 424242"):
        replay("--account", "424242")
