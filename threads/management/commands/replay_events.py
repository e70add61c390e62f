"""``manage.py replay_events [--account ID] [--status processed,dead,ignored]``: re-normalize stored raw events.

Run it after a normalizer fix. Messages already stored are never duplicated (the pipeline inserts ON CONFLICT DO
NOTHING), so only what now reads differently lands: a dead-lettered mail the fix can read, or a message a fixed
normalizer now finds in an event it used to ignore.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from threads.models import ChannelAccount, RawEvent
from threads.services.pipeline import raw_events_replay


class Command(BaseCommand):
    help = "Re-normalize stored raw events after a normalizer fix; stores only what is new."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--account", type=int, help="Only this ChannelAccount id (default: every account).")
        parser.add_argument(
            "--status", default="processed,dead,ignored",
            help="Comma-separated raw event statuses to replay (processed, dead, ignored).",
        )  # fmt: skip

    def handle(self, *args: Any, **options: Any) -> None:
        statuses = [s.strip().lower() for s in options["status"].split(",") if s.strip()]
        allowed = {RawEvent.Status.PROCESSED, RawEvent.Status.DEAD, RawEvent.Status.IGNORED}
        wrong = [s for s in statuses if s not in allowed]
        if wrong or not statuses:
            raise CommandError(
                f"Unknown status {', '.join(wrong) or '(none)'}; use any of: processed, dead, ignored. "
                "Pending events are processed by the worker, not replayed."
            )
        account = None
        if options["account"] is not None:
            account = ChannelAccount.objects.filter(pk=options["account"]).first()
            if account is None:
                raise CommandError(f"No channel account with id {options['account']}.")
        result = raw_events_replay(account=account, statuses=statuses)
        self.stdout.write(
            f"Replayed {', '.join(statuses)} events{f' of account {account.pk}' if account else ''}. "
            f"Created: {len(result.created)}. Duplicates: {result.duplicates}. Dead: {result.dead}."
        )
