"""``manage.py import_mail --account ID PATH…``: import .eml files, mbox files and Maildir folders.

Every message goes the way a polled one does: a RawEvent keyed by the hash of its bytes, then the normalizer and
ingest, so re-running an import stores nothing new (raw events dedupe by hash, messages by Message-ID) and a mail
the normalizer cannot read is dead-lettered, not lost. mbox files are read message by message (``mailbox`` keeps
only a table of offsets), so a 2 GB export never sits in memory.
"""

from __future__ import annotations

import hashlib
import mailbox
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from threads.connectors import RawEventIn
from threads.models import ChannelAccount, RawEvent
from threads.services.pipeline import IngestResult, ingest_fetched

BATCH_MESSAGES = 500
BATCH_BYTES = 64 * 1024 * 1024  # a batch of 500 mails with big attachments must not hold gigabytes at once
SHOW_ERRORS = 5
# mbox writers quote body lines starting "From " as ">From " (and mboxrd quotes ">From " as ">>From "); one level
# comes off again so the stored bytes are the mail that was sent, and hash like the same mail fetched over IMAP.
_MBOX_QUOTED_FROM = re.compile(rb"^>(>*From )", re.MULTILINE)


@dataclass
class ImportSummary:
    files: int = 0
    read: int = 0
    created: int = 0
    duplicates: int = 0
    dead: int = 0
    unreadable: int = 0  # messages the mailbox library could not hand over (a truncated mbox, a vanished file)
    skipped_files: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def _is_maildir(path: Path) -> bool:
    return path.is_dir() and all((path / sub).is_dir() for sub in ("cur", "new", "tmp"))


def _is_mbox(path: Path) -> bool:
    try:
        with path.open("rb") as fh:
            return fh.read(5) == b"From "
    except OSError:
        return False


def _check_readable(path: Path) -> None:
    if not path.exists():
        raise CommandError(f"{path}: no such file or directory.")
    if not os.access(path, os.R_OK) or (path.is_dir() and not os.access(path, os.X_OK)):
        raise CommandError(f"{path}: not readable (check its permissions).")
    if not path.is_dir() and not path.is_file():
        raise CommandError(f"{path}: not a regular file or directory.")


class Command(BaseCommand):
    help = "Import e-mail from .eml files, mbox files and Maildir folders into a channel account."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--account", type=int, required=True, help="ChannelAccount id (an e-mail account).")
        parser.add_argument("paths", nargs="+", help=".eml file, mbox file, Maildir folder or folder of .eml files")
        parser.add_argument("--batch-size", type=int, default=BATCH_MESSAGES, help="Messages per transaction.")

    def handle(self, *args: Any, **options: Any) -> None:
        account = ChannelAccount.objects.filter(pk=options["account"]).first()
        if account is None:
            raise CommandError(f"No channel account with id {options['account']}.")
        if account.kind != ChannelAccount.Kind.EMAIL:
            raise CommandError(f"Channel account {account.pk} ({account.name}) is not an e-mail account.")
        paths = [Path(p) for p in options["paths"]]
        for path in paths:  # all up front: a typo in the third path must not leave a half-done import
            _check_readable(path)
        summary = ImportSummary()
        batch_size = max(1, options["batch_size"])
        batch: list[RawEventIn] = []
        batch_bytes = 0
        for raw, source in self._messages(paths, summary):
            summary.read += 1
            digest = hashlib.sha256(raw).hexdigest()
            batch.append(
                RawEventIn(
                    provider_event_id=f"sha256:{digest}", event_type="email", payload=raw,
                    content_type="message/rfc822", meta={"source": "import", "file": source[-200:]},
                )
            )  # fmt: skip
            batch_bytes += len(raw)
            if len(batch) >= batch_size or batch_bytes >= BATCH_BYTES:
                self._flush(account, batch, summary)
                batch, batch_bytes = [], 0
        self._flush(account, batch, summary)
        self._report(summary)

    def _messages(self, paths: list[Path], summary: ImportSummary) -> Iterator[tuple[bytes, str]]:
        for path in paths:
            if _is_maildir(path):
                yield from self._maildir(path, summary)
            elif path.is_dir():
                for child in sorted(path.iterdir()):
                    if child.is_file() and _is_mbox(child):
                        yield from self._mbox(child, summary)
                    elif child.is_file() and child.suffix.lower() == ".eml":
                        yield from self._eml(child, summary)
                    elif _is_maildir(child):
                        yield from self._maildir(child, summary)
                    else:
                        summary.skipped_files.append(str(child))
            elif _is_mbox(path):
                yield from self._mbox(path, summary)
            else:
                yield from self._eml(path, summary)

    def _eml(self, path: Path, summary: ImportSummary) -> Iterator[tuple[bytes, str]]:
        summary.files += 1
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise CommandError(f"{path}: cannot be read ({exc.strerror or exc}).") from exc
        yield raw, str(path)

    def _mbox(self, path: Path, summary: ImportSummary) -> Iterator[tuple[bytes, str]]:
        summary.files += 1
        box = mailbox.mbox(str(path), create=False)
        try:
            for key in box.iterkeys():
                try:
                    # get_bytes, not the parsed message: no re-serialization by the email package.
                    raw = _MBOX_QUOTED_FROM.sub(rb"\1", box.get_bytes(key))
                except Exception as exc:
                    summary.unreadable += 1
                    self._note(summary, f"{path} message {key}: {type(exc).__name__}: {exc}")
                    continue
                yield raw, f"{path}#{key}"
        finally:
            box.close()

    def _maildir(self, path: Path, summary: ImportSummary) -> Iterator[tuple[bytes, str]]:
        summary.files += 1
        box = mailbox.Maildir(str(path), factory=None, create=False)
        for key in sorted(box.iterkeys()):
            try:
                raw = box.get_bytes(key)
            except Exception as exc:  # a message moved or deleted by a running mail client while we read
                summary.unreadable += 1
                self._note(summary, f"{path} message {key}: {type(exc).__name__}: {exc}")
                continue
            yield raw, f"{path}#{key}"

    @staticmethod
    def _note(summary: ImportSummary, error: str) -> None:
        if len(summary.errors) < SHOW_ERRORS:
            summary.errors.append(error[:300])

    def _flush(self, account: ChannelAccount, batch: list[RawEventIn], summary: ImportSummary) -> None:
        if not batch:
            return
        keys = list(dict.fromkeys(e.provider_event_id for e in batch))
        known = set(
            RawEvent.objects.filter(channel_account=account, provider_event_id__in=keys).values_list(
                "provider_event_id", flat=True
            )
        )
        # Identical bytes seen before (an earlier run, or twice in this batch) are duplicates before any parsing.
        summary.duplicates += len(batch) - len(keys) + len(known)
        result: IngestResult = ingest_fetched(account=account, events=batch, cursor=None)
        summary.created += len(result.created)
        summary.duplicates += result.duplicates
        summary.dead += result.dead
        fresh = [k for k in keys if k not in known]
        if result.dead and fresh and len(summary.errors) < SHOW_ERRORS:
            dead = RawEvent.objects.filter(
                channel_account=account, provider_event_id__in=fresh, status=RawEvent.Status.DEAD
            ).values_list("meta", "error")[: SHOW_ERRORS - len(summary.errors)]
            for meta, error in dead:
                self._note(summary, f"{(meta or {}).get('file', '?')}: {error}")

    def _report(self, s: ImportSummary) -> None:
        self.stdout.write(
            f"Files: {s.files}. Messages read: {s.read}. New messages: {s.created}. Duplicates: {s.duplicates}. "
            f"Dead-lettered: {s.dead}." + (f" Unreadable: {s.unreadable}." if s.unreadable else "")
        )
        if s.skipped_files:
            shown = ", ".join(s.skipped_files[:SHOW_ERRORS])
            more = f" and {len(s.skipped_files) - SHOW_ERRORS} more" if len(s.skipped_files) > SHOW_ERRORS else ""
            self.stdout.write(f"Skipped (not .eml, mbox or Maildir): {shown}{more}")
        for error in s.errors:
            self.stderr.write(f"  {error}")
        if s.dead:
            self.stdout.write(
                "Dead-lettered messages are kept as raw events; fix and run `manage.py replay_events --status dead`."
            )
