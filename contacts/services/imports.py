"""CSV import: upload (detect encoding and delimiter), map columns, then process in resumable chunks.

How a row finds "its" contact, so that re-running the same file never creates duplicates:

1. By identity: every mapped e-mail, phone, handle ... is normalized and looked up in ContactIdentity (one query
   per chunk). A row whose identities belong to two different contacts is an error (merge them first).
2. Rows without any identity are matched by (lower first name, lower last name, lower company name) among the
   contacts the importer can see.
3. Earlier rows of the same file count too: a later row carrying an address an earlier row already created is a
   duplicate of it.

A matched row is updated or skipped (the user's choice); an unmatched row creates a contact owned by the importer.
Each chunk of rows is written with bulk statements, and ``ImportJob.next_row`` and the counters advance in the
same transaction as the chunk's writes, so a crash loses nothing and a resumed job repeats nothing.
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import hashlib
import io
import itertools
import json
import logging
import re
import time
import zoneinfo
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from django.conf import settings
from django.contrib.postgres.search import SearchVectorField
from django.core.exceptions import ValidationError
from django.db import InterfaceError, OperationalError, connection, models, transaction
from django.db.models import F, Model
from django.db.models.functions import Coalesce, Lower, Now
from django.utils import timezone

from accounts.models import User, Visibility
from accounts.selectors import visible
from contacts.customfields import active_definitions, clean_custom_fields
from contacts.identities import normalize_identity
from contacts.models import (
    Company,
    Contact,
    ContactIdentity,
    CustomFieldDefinition,
    ImportJob,
    ImportRowError,
    LifeEvent,
)
from contacts.services import company_search_refresh, contact_search_refresh
from crm.errors import DomainError
from crm.sql import array_literal

logger = logging.getLogger(__name__)

CHUNK_SIZE = 1000
RAW_CELL_LIMIT = 1000  # characters of a cell kept in the error report
NOTES_MAX = 100_000  # notes have no column limit, but a 10 MB note is a broken file, not a note
# A 10 MB cell must parse (and then fail its row with "cell too long") instead of crashing the reader.
csv.field_size_limit(max(csv.field_size_limit(), 256 * 1024 * 1024))

Status = ImportJob.Status

# Contact fields a column may map to, with their labels for the mapping page.
CONTACT_TARGETS: dict[str, str] = {
    "first_name": "First name",
    "last_name": "Last name",
    "title": "Title",
    "company": "Company (by name)",
    "lifecycle_stage": "Lifecycle stage",
    "tier": "Tier",
    "tags": "Tags (comma or semicolon separated)",
    "street": "Street",
    "city": "City",
    "region": "Region",
    "postal_code": "Postal code",
    "country": "Country (2-letter code)",
    "birthday": "Birthday",
    "notes": "Notes",
    "language": "Language",
    "time_zone": "Time zone",
}
_TEXT_FIELDS = ("first_name", "last_name", "title", "street", "city", "region", "postal_code", "language")

# Header spellings (lower-cased, punctuation removed) that map to a target without the user choosing.
_GUESSES: dict[str, str] = {
    "firstname": "first_name", "first": "first_name", "givenname": "first_name", "forename": "first_name",
    "lastname": "last_name", "last": "last_name", "surname": "last_name", "familyname": "last_name",
    "title": "title", "jobtitle": "title", "position": "title", "role": "title",
    "company": "company", "companyname": "company", "organization": "company", "organisation": "company",
    "org": "company", "employer": "company", "account": "company",
    "stage": "lifecycle_stage", "lifecyclestage": "lifecycle_stage", "status": "lifecycle_stage",
    "tier": "tier", "tags": "tags", "labels": "tags",
    "street": "street", "address": "street", "streetaddress": "street", "address1": "street",
    "city": "city", "town": "city", "region": "region", "state": "region", "province": "region",
    "postalcode": "postal_code", "postcode": "postal_code", "zip": "postal_code", "zipcode": "postal_code",
    "country": "country", "countrycode": "country", "birthday": "birthday", "dateofbirth": "birthday",
    "dob": "birthday", "birthdate": "birthday", "notes": "notes", "note": "notes", "comments": "notes",
    "language": "language", "timezone": "time_zone", "tz": "time_zone",
    "email": "identity:email", "emailaddress": "identity:email", "mail": "identity:email",
    "workemail": "identity:email", "homeemail": "identity:email", "primaryemail": "identity:email",
    "phone": "identity:phone", "phonenumber": "identity:phone", "mobile": "identity:phone",
    "mobilephone": "identity:phone", "cell": "identity:phone", "cellphone": "identity:phone",
    "telephone": "identity:phone", "tel": "identity:phone", "workphone": "identity:phone",
    "homephone": "identity:phone", "twitter": "identity:twitter", "x": "identity:twitter",
    "twitterhandle": "identity:twitter", "facebook": "identity:facebook", "linkedin": "identity:linkedin",
    "skype": "identity:skype", "website": "identity:website", "url": "identity:website", "web": "identity:website",
}  # fmt: skip
_DATE_FORMATS = ("%d %b %Y", "%d %B %Y", "%b %d %Y", "%B %d %Y", "%b %d, %Y", "%B %d, %Y", "%d-%b-%Y")


# --- Upload -----------------------------------------------------------------------------------------------


def _decode(data: bytes) -> tuple[str, str]:
    """Return (text, encoding name). BOMs decide; otherwise strict UTF-8, then cp1252 (Excel on Windows)."""
    if data.startswith(codecs.BOM_UTF8):
        candidates = ["utf-8-sig"]
    elif data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        candidates = ["utf-16"]
    else:
        candidates = ["utf-8", "cp1252"]
    for encoding in candidates:
        try:
            text = data.decode(encoding)
        except UnicodeDecodeError:
            continue
        if "\x00" in text:
            # A NUL never occurs in a text CSV: it is a binary file or UTF-16 without a BOM.
            break
        return text, encoding
    raise DomainError(
        "This file is not a readable CSV text file. Save it as CSV (UTF-8) from your spreadsheet and upload again.",
        code="bad_encoding",
    )


def _sniff_delimiter(text: str) -> str:
    sample = "\n".join(text[: 64 * 1024].splitlines()[:20])
    try:
        return csv.Sniffer().sniff(sample, delimiters=",;\t|").delimiter
    except csv.Error:
        return ","


def _reader(text: str, delimiter: str) -> Iterator[list[str]]:
    return csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)


def import_job_create(*, actor: User, file_name: str, data: bytes) -> ImportJob:
    """Store an uploaded CSV as a DRAFT job with its encoding, delimiter, headers and row count."""
    max_bytes = settings.IMPORT_MAX_BYTES
    if len(data) > max_bytes:
        raise DomainError(
            f"The file is {len(data) / 1_048_576:.1f} MB; the limit is {max_bytes / 1_048_576:.0f} MB. "
            "Split it into smaller files.",
            code="file_too_large",
        )
    if not data.strip():
        raise DomainError("The file is empty.", code="empty_file")
    text, encoding = _decode(data)
    delimiter = _sniff_delimiter(text)
    rows = _reader(text, delimiter)
    try:
        headers = next(rows, None)
        total = sum(1 for _ in rows)
    except csv.Error as exc:
        raise DomainError(f"The file is not valid CSV: {exc}.", code="bad_csv") from None
    headers = [h.strip() for h in headers or []]
    if not any(headers):
        raise DomainError("The first line must be a header row naming each column.", code="no_header")
    if any(not h for h in headers):
        blank = [str(i + 1) for i, h in enumerate(headers) if not h]
        raise DomainError(f"Column(s) {', '.join(blank)} have no header. Name every column.", code="blank_header")
    lowered = [h.lower() for h in headers]
    duplicates = sorted({h for h in headers if lowered.count(h.lower()) > 1})
    if duplicates:
        raise DomainError(f"Duplicate column header(s): {', '.join(duplicates)}. Rename them.", code="duplicate_header")
    if any(len(h) > 200 for h in headers):
        raise DomainError(
            "A column header is longer than 200 characters: is the first line a header?", code="no_header"
        )
    if total == 0:
        raise DomainError("The file has a header row but no data rows.", code="empty_file")
    team = actor.teams.order_by("id").first()
    return ImportJob.objects.create(
        owner=actor, team=team, visibility=Visibility.PRIVATE, file_name=file_name[:255],
        file_sha256=hashlib.sha256(data).hexdigest(), data=data, encoding=encoding, delimiter=delimiter,
        headers=headers, total_rows=total, mapping=guess_mapping(headers),
    )  # fmt: skip


def guess_mapping(headers: list[str]) -> dict[str, str]:
    """A target per header from its name ("E-mail", "Email Address", "Mobile" ...); "" when unsure."""
    definitions = {d.key: d for d in CustomFieldDefinition.objects.filter(is_active=True)}
    mapping: dict[str, str] = {}
    for header in headers:
        key = re.sub(r"[^a-z0-9]", "", header.lower())
        target = _GUESSES.get(key, "")
        if not target and key.endswith("email"):
            target = "identity:email"
        if not target and key.endswith(("phone", "mobile")):
            target = "identity:phone"
        if not target:
            slug = re.sub(r"[^a-z0-9]+", "_", header.lower()).strip("_")
            for candidate in (slug, slug.removeprefix("custom_")):
                if candidate in definitions:
                    target = f"custom:{candidate}"
        mapping[header] = target
    return mapping


def import_targets() -> list[tuple[str, str]]:
    """(value, label) of every target, for the mapping select and API validation."""
    targets = [("", "— ignore this column —")]
    targets += list(CONTACT_TARGETS.items())
    targets += [(f"identity:{k}", f"{label} address/handle") for k, label in ContactIdentity.Kind.choices]
    targets += [
        (f"custom:{d.key}", f"{d.label} (custom field)") for d in CustomFieldDefinition.objects.filter(is_active=True)
    ]
    return targets


# --- Start ------------------------------------------------------------------------------------------------


def _validate_mapping(job: ImportJob, mapping: dict[str, str]) -> dict[str, str]:
    valid = {value for value, _ in import_targets()}
    errors: dict[str, list[str]] = {}
    cleaned: dict[str, str] = {}
    for header in job.headers:
        target = str(mapping.get(header, "") or "")
        if target not in valid:
            errors[header] = [f"{target!r} is not a column you can import into."]
        cleaned[header] = target
    unknown = sorted(set(mapping) - set(job.headers))
    if unknown:
        errors["mapping"] = [f"Not a column of this file: {', '.join(unknown)}."]
    used = [t for t in cleaned.values() if t and not t.startswith("identity:")]
    repeated = sorted({t for t in used if used.count(t) > 1})
    if repeated:
        errors["mapping"] = [f"Several columns map to {', '.join(repeated)}; only identities may repeat."]
    if not any(cleaned.values()):
        errors["mapping"] = ["Map at least one column."]
    if errors:
        raise DomainError("The column mapping is not valid.", fields=errors, code="bad_mapping")
    return cleaned


@transaction.atomic
def import_job_start(*, job: ImportJob, actor: User, mapping: dict[str, str], on_duplicate: str) -> ImportJob:
    """Validate the mapping and queue the job. Only a draft can be started (a second click does nothing)."""
    if on_duplicate not in ImportJob.OnDuplicate.values:
        raise DomainError("Choose what to do with duplicates: update or skip.", fields={"on_duplicate": ["Invalid."]})
    job = ImportJob.objects.select_for_update().get(pk=job.pk)
    if job.status != Status.DRAFT:
        raise DomainError("This import has already been started.", code="already_started")
    job.mapping = _validate_mapping(job, mapping)
    job.on_duplicate = on_duplicate
    job.status = Status.QUEUED
    job.save(update_fields=["mapping", "on_duplicate", "status"])
    _enqueue(job.pk)
    return job


def _enqueue(job_id: int) -> None:
    from contacts.tasks.imports import import_job_task

    transaction.on_commit(lambda: import_job_task.delay(job_id))


@transaction.atomic
def import_job_resume(*, job: ImportJob, actor: User | None = None) -> bool:
    """Re-queue a failed or stuck job; it continues at ``next_row``. Returns False for a finished job."""
    updated = ImportJob.objects.filter(pk=job.pk, status__in=[Status.FAILED, Status.RUNNING, Status.QUEUED]).update(
        status=Status.QUEUED, error=""
    )
    if updated:
        _enqueue(job.pk)
    return bool(updated)


# --- Row validation ---------------------------------------------------------------------------------------


@dataclass
class ParsedRow:
    number: int  # 1-based data row
    raw: dict[str, str]
    fields: dict[str, Any] = field(default_factory=dict)
    company_name: str = ""
    identities: list[tuple[str, str, str, str]] = field(default_factory=list)  # kind, normalized, value, handle
    custom: dict[str, Any] = field(default_factory=dict)
    errors: dict[str, list[str]] = field(default_factory=dict)
    blank: bool = False

    def error(self, column: str, message: str) -> None:
        self.errors.setdefault(column, []).append(message)


@lru_cache(maxsize=1)
def _time_zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def _max_length(name: str) -> int | None:
    return Contact._meta.get_field(name).max_length


def parse_date(text: str) -> dt.date:
    """ISO (2024-03-01) or a date with the month spelled out (1 Mar 2024, March 1, 2024). Never 01/03/2024."""
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        pass
    for fmt in _DATE_FORMATS:
        try:
            return dt.datetime.strptime(text, fmt).date()
        except ValueError:
            continue
    if re.fullmatch(r"\d{1,2}[/.]\d{1,2}[/.]\d{2,4}", text):
        raise ValidationError(f"{text!r} is ambiguous (day/month or month/day?): use 2024-03-01 or 1 Mar 2024.")
    raise ValidationError(f"{text!r} is not a date: use 2024-03-01 or 1 Mar 2024.")


def _choice(text: str, choices: list[tuple[str, str]], label: str) -> str:
    lowered = text.lower()
    for value, name in choices:
        if lowered in (value.lower(), name.lower()):
            return value
    raise ValidationError(f"{text!r} is not a {label}: use one of {', '.join(v for v, _ in choices)}.")


def parse_row(
    number: int, values: list[str], headers: list[str], mapping: dict[str, str], definitions: dict[str, Any]
) -> ParsedRow:
    """Validate one CSV record against the mapping. Never raises: problems land in ``row.errors``."""
    raw = {h: (values[i] if i < len(values) else "") for i, h in enumerate(headers)}
    row = ParsedRow(number=number, raw=raw)
    if not any(v.strip() for v in values):
        row.blank = True
        return row
    if len(values) > len(headers) and any(v.strip() for v in values[len(headers) :]):
        row.error("row", f"has {len(values)} cells but the header has {len(headers)} columns.")
    custom_raw: dict[str, str] = {}
    for header, target in mapping.items():
        if not target:
            continue
        value = raw.get(header, "").strip()
        if target.startswith("identity:"):
            if value:
                kind = target.split(":", 1)[1]
                if len(value) > 320:
                    row.error(header, "cell too long (more than 320 characters).")
                    continue
                try:
                    normalized, handle = normalize_identity(kind, value)
                except ValidationError as exc:
                    row.error(header, " ".join(exc.messages))
                    continue
                if len(normalized) > 320:
                    # Lower-casing can lengthen text ("İ" becomes two characters): the column would refuse it.
                    row.error(header, "cell too long (more than 320 characters once normalized).")
                    continue
                if all(normalized != n or kind != k for k, n, _, _ in row.identities):
                    row.identities.append((kind, normalized, value, handle))
            continue
        if target.startswith("custom:"):
            if len(value) > 2000:
                row.error(header, "cell too long (more than 2,000 characters).")
            else:
                custom_raw[target.split(":", 1)[1]] = value
            continue
        _parse_field(row, header, target, value)
    custom_raw = {k: v for k, v in custom_raw.items() if v}  # an empty cell never erases existing data
    if custom_raw:
        # Only the row's own keys: "required" is checked later, and only for rows that create a contact.
        try:
            row.custom = clean_custom_fields(
                custom_raw, definitions={k: definitions[k] for k in custom_raw if k in definitions}
            )
        except ValidationError as exc:
            by_key = {t.split(":", 1)[1]: h for h, t in mapping.items() if t.startswith("custom:")}
            for key, messages in exc.message_dict.items():
                header = by_key.get(key.removeprefix("custom_fields."), key)
                for message in messages:
                    row.error(header, message)
    if not row.errors and not row.identities and not (row.fields.get("first_name") or row.fields.get("last_name")):
        row.error("row", "needs a name or at least one e-mail, phone or handle.")
    return row


def _parse_field(row: ParsedRow, header: str, target: str, value: str) -> None:
    if not value:
        return  # an empty cell never erases existing data
    try:
        if target in _TEXT_FIELDS or target == "company":
            limit = 200 if target == "company" else _max_length(target)
            if limit and len(value) > limit:
                raise ValidationError(f"cell too long ({len(value):,} characters; at most {limit}).")
            if target == "company":
                row.company_name = value
            else:
                row.fields[target] = value
        elif target == "notes":
            if len(value) > NOTES_MAX:
                raise ValidationError(f"cell too long ({len(value):,} characters; at most {NOTES_MAX:,}).")
            row.fields["notes"] = value
        elif target == "lifecycle_stage":
            row.fields[target] = _choice(value, Contact.Stage.choices, "lifecycle stage")
        elif target == "tier":
            row.fields[target] = _choice(value, Contact.Tier.choices, "tier")
        elif target == "tags":
            tags = sorted({t.strip() for t in re.split(r"[;,]", value) if t.strip()})
            if any(len(t) > 64 for t in tags):
                raise ValidationError("a tag is longer than 64 characters.")
            row.fields["tags"] = tags
        elif target == "country":
            if not re.fullmatch(r"[A-Za-z]{2}", value):
                raise ValidationError(f"{value[:40]!r} is not a 2-letter country code (e.g. DE, US).")
            row.fields["country"] = value.upper()
        elif target == "birthday":
            row.fields["birthday"] = parse_date(value)
        elif target == "time_zone":
            if value not in _time_zones():
                raise ValidationError(f"{value[:80]!r} is not a time zone (e.g. Europe/Berlin).")
            row.fields["time_zone"] = value
    except ValidationError as exc:
        for message in exc.messages:
            row.error(header, message)


def _truncated_raw(raw: dict[str, str]) -> dict[str, str]:
    out = {}
    for key, value in raw.items():
        if len(value) > RAW_CELL_LIMIT:
            value = value[:RAW_CELL_LIMIT] + f" … [truncated: {len(value):,} characters in the file]"
        out[key] = value
    return out


def import_preview(*, job: ImportJob, mapping: dict[str, str] | None = None, limit: int = 10) -> list[ParsedRow]:
    """The first ``limit`` rows validated with ``mapping`` (or the job's), for the mapping page."""
    if job.status != Status.DRAFT:
        raise DomainError("This import has started; the preview is only for imports awaiting their mapping.")
    text, _ = _decode(bytes(job.data))
    records = itertools.islice(_reader(text, job.delimiter), 1, limit + 1)
    definitions = active_definitions()
    # The API passes the client's mapping as is: a target that is not a string means "ignore", not a 500.
    mapping = {h: t for h, t in (mapping or job.mapping).items() if h in job.headers and isinstance(t, str)}
    rows = []
    for number, values in enumerate(records, start=1):
        row = parse_row(number, values, job.headers, mapping, definitions)
        row.raw = _truncated_raw(row.raw)
        rows.append(row)
    return rows


# --- Processing -------------------------------------------------------------------------------------------


class _IdentityRace(Exception):
    """An identity was taken by a concurrent writer between our lookup and our insert: redo the chunk."""


TRANSIENT_DB_ERRORS = (OperationalError, InterfaceError)


def import_job_process(*, job_id: int, max_seconds: float | None = None) -> ImportJob:
    """Process a queued job from ``next_row`` to the end (or until ``max_seconds`` pass; the caller re-queues).

    Safe to run twice at once or after a crash: each chunk locks the job row, re-reads ``next_row`` and commits
    its rows together with the new ``next_row``.
    """
    claimed = ImportJob.objects.filter(pk=job_id, status__in=[Status.QUEUED, Status.RUNNING]).update(
        status=Status.RUNNING, started_at=Coalesce(F("started_at"), Now())
    )
    job = ImportJob.objects.get(pk=job_id)
    if not claimed:
        return job
    started = time.monotonic()
    # The next chunk is parsed in a thread while this one's INSERTs run: psycopg2 releases the GIL while the
    # server works, and parsing (phone numbers, e-mails, dates) is a third of an import's time.
    parser = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"import-{job_id}")
    try:
        text, _ = _decode(bytes(job.data))
        context = _ImportContext(job)
        records = enumerate(itertools.islice(_reader(text, job.delimiter), 1, None))
        position = 0
        ahead: tuple[int, list[tuple[int, list[str]]], Future[list[ParsedRow]]] | None = None
        while True:
            with transaction.atomic():
                # Without the file: it is read once per run, not once per chunk.
                locked = ImportJob.objects.select_for_update().defer("data").get(pk=job_id)
                if locked.status != Status.RUNNING:
                    return locked
                if locked.next_row != position:
                    # Another delivery of this task advanced the job; continue where it stopped.
                    records = enumerate(itertools.islice(_reader(text, job.delimiter), 1 + locked.next_row, None))
                    records = ((i + locked.next_row, values) for i, values in records)
                    position = locked.next_row
                    ahead = None
                if ahead is not None and ahead[0] == position:
                    _, chunk, parsed = ahead
                else:
                    chunk = list(itertools.islice(records, CHUNK_SIZE))
                    parsed = parser.submit(context.parse, chunk)
                following = list(itertools.islice(records, CHUNK_SIZE))
                ahead = (
                    (position + len(chunk), following, parser.submit(context.parse, following)) if following else None
                )
                if chunk:
                    rows = parsed.result()
                    for attempt in range(3):
                        try:
                            with transaction.atomic():
                                counts = context.process_chunk(rows)
                            break
                        except _IdentityRace:
                            if attempt == 2:
                                raise
                            rows = context.parse(chunk)  # process_chunk folds rows together: start afresh
                    position += len(chunk)
                    locked.next_row = position
                    locked.created_count += counts["created"]
                    locked.updated_count += counts["updated"]
                    locked.skipped_count += counts["skipped"]
                    locked.error_count += counts["errors"]
                done = not chunk or position >= locked.total_rows
                fields = ["next_row", "created_count", "updated_count", "skipped_count", "error_count"]
                if done:
                    locked.status = Status.DONE
                    locked.finished_at = timezone.now()
                    locked.data = b""  # data minimization: the file holds personal data and is no longer needed
                    fields += ["status", "finished_at", "data"]
                locked.save(update_fields=fields)
            if done:
                return locked
            if max_seconds is not None and time.monotonic() - started > max_seconds:
                return locked
    except TRANSIENT_DB_ERRORS:
        raise  # the job stays RUNNING at its committed next_row; the task retries
    except Exception as exc:
        logger.exception("import job %s failed", job_id)
        ImportJob.objects.filter(pk=job_id).update(
            status=Status.FAILED, error=f"{type(exc).__name__}: {exc}"[:2000], finished_at=Now()
        )
        return ImportJob.objects.get(pk=job_id)
    finally:
        parser.shutdown(wait=True, cancel_futures=True)


class _ImportContext:
    """What every chunk of one run needs: the importer, the mapping and lookups loaded once."""

    def __init__(self, job: ImportJob) -> None:
        self.job = job
        self.actor = job.owner
        self.team_id = job.team_id
        self.headers = list(job.headers)
        self.mapping = {h: t for h, t in job.mapping.items() if h in self.headers}
        self.update = job.on_duplicate == ImportJob.OnDuplicate.UPDATE
        self.definitions = active_definitions()
        self.required_keys = sorted(k for k, d in self.definitions.items() if d.required)
        self.contact_defaults = _defaults(Contact)
        self.identity_defaults = _defaults(ContactIdentity)
        self.field_names = sorted(
            {t for t in self.mapping.values() if t in CONTACT_TARGETS and t != "company"}
            | ({"company"} if "company" in self.mapping.values() else set())
            | ({"custom_fields"} if any(t.startswith("custom:") for t in self.mapping.values()) else set())
        )

    def _visible_contacts(self) -> Any:
        return visible(Contact.objects.all(), self.actor)

    def parse(self, chunk: list[tuple[int, list[str]]]) -> list[ParsedRow]:
        """Validate a chunk's records. Pure Python and no database: it runs in the parser thread."""
        return [parse_row(index + 1, values, self.headers, self.mapping, self.definitions) for index, values in chunk]

    def process_chunk(self, rows: list[ParsedRow]) -> dict[str, int]:
        counts = {"created": 0, "updated": 0, "skipped": 0, "errors": 0}
        good = [r for r in rows if not r.errors and not r.blank]
        counts["skipped"] += sum(1 for r in rows if r.blank)

        # Who already owns each address: one query for the chunk, with two array parameters instead of a
        # thousand placeholders; the join probes the UNIQUE(kind, normalized) index.
        wanted = {(kind, normalized) for row in good for kind, normalized, _, _ in row.identities}
        owner_of: dict[tuple[str, str], int] = {}
        if wanted:
            kinds, values = zip(*wanted, strict=True)
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT i.kind, i.normalized, i.contact_id FROM contacts_contactidentity i"
                    " JOIN unnest(%s::text[], %s::text[]) AS w(kind, normalized)"
                    " ON i.kind = w.kind AND i.normalized = w.normalized",
                    [list(kinds), list(values)],
                )
                owner_of = {(kind, normalized): contact_id for kind, normalized, contact_id in cursor.fetchall()}

        # Rows without any address: match by name and company among the contacts the importer can see.
        name_of: dict[tuple[str, str, str], int] = {}
        nameless = [r for r in good if not r.identities]
        if nameless:
            firsts = {r.fields.get("first_name", "").lower() for r in nameless}
            lasts = {r.fields.get("last_name", "").lower() for r in nameless}
            candidates = (
                self._visible_contacts()
                .annotate(lf=Lower("first_name"), ll=Lower("last_name"))
                .filter(lf__in=firsts, ll__in=lasts)
                .order_by("id")
                .values_list("lf", "ll", "company__name", "id")
            )
            for first, last, company, contact_id in candidates:
                name_of.setdefault((first, last, (company or "").lower()), contact_id)

        matched_ids = set(owner_of.values()) | set(name_of.values())
        existing: dict[int, Contact] = {}
        if matched_ids:
            qs = self._visible_contacts().filter(pk__in=matched_ids)
            qs = qs.select_related("company") if self.update else qs.only("id")
            existing = {c.pk: c for c in qs}

        new_rows: list[ParsedRow] = []
        pending_by_key: dict[tuple[str, ...], ParsedRow] = {}  # earlier rows of this chunk that create a contact
        updates: dict[int, list[ParsedRow]] = {}
        for row in good:
            owners = {owner_of[(k, n)] for k, n, _, _ in row.identities if (k, n) in owner_of}
            name_key = (
                row.fields.get("first_name", "").lower(),
                row.fields.get("last_name", "").lower(),
                row.company_name.lower(),
            )
            if not row.identities and name_key in name_of:
                owners = {name_of[name_key]}
            if len(owners) > 1:
                row.error("row", "its addresses belong to different existing contacts; merge them first.")
                continue
            if owners:
                contact_id = owners.pop()
                if contact_id not in existing:
                    row.error("row", "an address in this row already belongs to a contact you cannot see.")
                elif self.update:
                    updates.setdefault(contact_id, []).append(row)
                else:
                    counts["skipped"] += 1
                continue
            keys = [("identity", k, n) for k, n, _, _ in row.identities] or [("name", *name_key)]
            earlier = next((pending_by_key[k] for k in keys if k in pending_by_key), None)
            if earlier is None:
                missing = [k for k in self.required_keys if k not in row.custom]
                if missing:
                    by_key = {t.split(":", 1)[1]: h for h, t in self.mapping.items() if t.startswith("custom:")}
                    for key in missing:
                        row.error(by_key.get(key, f"custom:{key}"), f"{self.definitions[key].label} is required.")
                    continue
                new_rows.append(row)
                for key in keys:
                    pending_by_key[key] = row
            elif self.update:
                _merge_into(earlier, row)
                for key in keys:
                    pending_by_key.setdefault(key, earlier)
                counts["updated"] += 1
            else:
                counts["skipped"] += 1

        companies = self._companies(
            {r.company_name for r in new_rows} | {r.company_name for rs in updates.values() for r in rs}
        )
        now = timezone.now()

        # New contacts: ids first (one query), then one multi-row INSERT; no model instances on the hot path.
        contact_ids = _next_ids(Contact, len(new_rows))
        contact_rows = [self._new_contact(row, companies, now) for row in new_rows]
        for contact_id, values in zip(contact_ids, contact_rows, strict=True):
            values["id"] = contact_id
        search_texts = [_search_texts(row) for row in new_rows]
        _insert(Contact, contact_rows, defaults=self.contact_defaults, search_texts=search_texts)
        counts["created"] += len(new_rows)

        identities: list[dict[str, Any]] = []
        for row, contact_id in zip(new_rows, contact_ids, strict=True):
            identities += self._identities(contact_id, row, primary=True, now=now)

        updated_contacts: list[Contact] = []
        life_events: list[LifeEvent] = []
        for contact_id, row_list in updates.items():
            contact = existing[contact_id]
            before_company, before_address = contact.company_id, _address(contact)
            for row in row_list:
                self._apply_update(contact, row, companies)
                new = self._identities(contact_id, row, primary=False, now=now)
                identities += [i for i in new if (i["kind"], i["normalized"]) not in owner_of]
            contact.updated_at = now
            updated_contacts.append(contact)
            counts["updated"] += len(row_list)
            life_events += _life_events(contact, before_company, before_address, self.actor, now)
        if updated_contacts:
            Contact.objects.bulk_update(updated_contacts, [*self.field_names, "updated_at"], batch_size=CHUNK_SIZE)
        LifeEvent.objects.bulk_create(life_events)

        # Two rows of the chunk may add the same new address to one existing contact: insert it once.
        identities = list({(i["kind"], i["normalized"]): i for i in reversed(identities)}.values())[::-1]
        if identities:
            inserted = _insert(
                ContactIdentity, identities, defaults=self.identity_defaults,
                suffix="ON CONFLICT (kind, normalized) DO NOTHING RETURNING kind, normalized",
            )  # fmt: skip
            if len(inserted) != len(identities):
                # We looked every address up in this transaction, so a conflict means a concurrent writer took
                # one since: roll the chunk back and redo it with fresh lookups.
                raise _IdentityRace(f"{len(identities) - len(inserted)} address(es) taken concurrently")

        errors = [r for r in rows if r.errors]
        counts["errors"] = len(errors)
        ImportRowError.objects.bulk_create(
            [ImportRowError(job_id=self.job.pk, row_number=r.number, errors=r.errors, raw=_truncated_raw(r.raw))
             for r in errors],
            ignore_conflicts=True,
        )  # fmt: skip
        # New contacts got their search document in the INSERT; updated ones are rebuilt from the database.
        contact_search_refresh(contact_ids=[c.pk for c in updated_contacts])
        return counts

    def _companies(self, names: set[str]) -> dict[str, int]:
        """Company id by lower-cased name: a visible company of that name, else one created for the importer."""
        names = {n for n in names if n}
        if not names:
            return {}
        lowered = {n.lower(): n for n in names}
        found: dict[str, int] = {}
        for name, company_id in (
            visible(Company.objects.all(), self.actor)
            .annotate(ln=Lower("name"))
            .filter(ln__in=list(lowered))
            .order_by("id")
            .values_list("ln", "id")
        ):
            found.setdefault(name, company_id)
        missing = [Company(name=lowered[n], owner=self.actor, team_id=self.team_id) for n in lowered if n not in found]
        if missing:
            Company.objects.bulk_create(missing)
            company_search_refresh(company_ids=[c.pk for c in missing])
            found.update({c.name.lower(): c.pk for c in missing})
        return found

    def _new_contact(self, row: ParsedRow, companies: dict[str, int], now: dt.datetime) -> dict[str, Any]:
        values: dict[str, Any] = {
            "owner_id": self.actor.pk if self.actor else None, "team_id": self.team_id,
            "visibility": Visibility.TEAM, "created_at": now, "updated_at": now, "custom_fields": row.custom,
            **row.fields,
        }  # fmt: skip
        if row.company_name:
            values["company_id"] = companies[row.company_name.lower()]
        return values

    def _apply_update(self, contact: Contact, row: ParsedRow, companies: dict[str, int]) -> None:
        for name, value in row.fields.items():
            setattr(contact, name, value)
        if row.company_name:
            contact.company_id = companies[row.company_name.lower()]
        if row.custom:
            contact.custom_fields = {**contact.custom_fields, **row.custom}

    def _identities(self, contact_id: int, row: ParsedRow, *, primary: bool, now: dt.datetime) -> list[dict[str, Any]]:
        out, kinds = [], set()
        for kind, normalized, value, handle in row.identities:
            out.append({
                "contact_id": contact_id, "kind": kind, "value": value, "normalized": normalized, "handle": handle,
                "is_primary": primary and kind not in kinds, "source": f"import:{self.job.pk}", "created_at": now,
                "updated_at": now,
            })  # fmt: skip
            kinds.add(kind)
        return out


def _defaults(model: type[Model]) -> dict[str, Any]:
    """Column -> default of every concrete column, so a raw INSERT fills what the ORM would have filled."""
    out: dict[str, Any] = {}
    for f in model._meta.concrete_fields:
        if f.primary_key or isinstance(f, SearchVectorField):
            continue
        out[f.column] = f.get_default() if f.has_default() else None
    return out


def _next_ids(model: type[Model], count: int) -> list[int]:
    if not count:
        return []
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT nextval(pg_get_serial_sequence(%s, 'id')) FROM generate_series(1, %s)",
            [model._meta.db_table, count],
        )
        return [r[0] for r in cursor.fetchall()]


# The same document contacts.services.contact_search_refresh builds (names A; title and company B; identities C),
# computed from the values being inserted: it saves rewriting every new row (and its 13 indexes) a second time.
# tests/contacts/test_import.py compares the two, so a change to one without the other fails.
_SEARCH_VECTOR_SQL = (
    "setweight(to_tsvector('simple', coalesce(%s, '') || ' ' || coalesce(%s, '')), 'A')"
    " || setweight(to_tsvector('simple', coalesce(%s, '') || ' ' || coalesce(%s, '')), 'B')"
    " || setweight(to_tsvector('simple', %s), 'C')"
)
_PUNCTUATION_TO_SPACE = str.maketrans("@._-+/", "      ")


def _search_texts(row: ParsedRow) -> list[str]:
    identities = " ".join(
        f"{value.strip()} {value.strip().translate(_PUNCTUATION_TO_SPACE)} {handle}"
        for _, _, value, handle in row.identities
    )
    fields = row.fields
    return [
        fields.get("first_name", ""), fields.get("last_name", ""), fields.get("title", ""), row.company_name,
        identities,
    ]  # fmt: skip


def _insert(
    model: type[Model],
    rows: list[dict[str, Any]],
    *,
    defaults: dict[str, Any],
    suffix: str = "",
    search_texts: list[list[str]] | None = None,
) -> list[Any]:
    """One ``INSERT ... SELECT FROM unnest(<one array per column>)`` of ``rows`` (column -> value; missing columns
    take their defaults).

    A short statement with array parameters: Postgres parses it once instead of a 25,000-value VALUES list, and
    no model instance is built. About three times faster than bulk_create for a chunk.
    """
    if not rows:
        return []
    fields = {f.column: f for f in model._meta.concrete_fields}
    columns = (["id"] if "id" in rows[0] else []) + list(defaults)
    arrays: list[Any] = []
    unnest_args: list[str] = []
    select: list[str] = []
    for index, column in enumerate(columns):
        field = fields[column]
        db_type = field.db_type(connection)
        values = [row[column] if column in row else defaults[column] for row in rows]
        if isinstance(field, models.JSONField):
            values = [json.dumps(v) for v in values]
            unnest_args.append("%s::text[]")
            select.append(f"u.c{index}::jsonb")
        elif db_type.endswith("[]"):
            # unnest() flattens a 2-D array, so array columns travel as text literals and are cast back.
            values = [array_literal(v) for v in values]
            unnest_args.append("%s::text[]")
            select.append(f"u.c{index}::{db_type}")
        else:
            unnest_args.append(f"%s::{db_type}[]")
            select.append(f"u.c{index}")
        arrays.append(values)
    aliases = [f"c{i}" for i in range(len(columns))]
    if search_texts is not None:
        for n in range(5):
            arrays.append([texts[n] for texts in search_texts])
            unnest_args.append("%s::text[]")
            aliases.append(f"s{n}")
        select.append(_SEARCH_VECTOR_SQL % ("u.s0", "u.s1", "u.s2", "u.s3", "u.s4"))
        columns = [*columns, "search_vector"]
    sql = (
        f"INSERT INTO {model._meta.db_table} ({', '.join(columns)}) "  # noqa: S608 - names are ours, values are params
        f"SELECT {', '.join(select)} FROM unnest({', '.join(unnest_args)}) AS u({', '.join(aliases)}) {suffix}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, arrays)
        return cursor.fetchall() if suffix else []


def _merge_into(earlier: ParsedRow, later: ParsedRow) -> None:
    """A later row of the same file describing the same new person: its non-empty values win."""
    earlier.fields.update(later.fields)
    earlier.custom.update(later.custom)
    earlier.company_name = later.company_name or earlier.company_name
    known = {(k, n) for k, n, _, _ in earlier.identities}
    earlier.identities += [i for i in later.identities if (i[0], i[1]) not in known]


_ADDRESS = ("street", "city", "region", "postal_code", "country")


def _address(contact: Contact) -> dict[str, str]:
    return {name: getattr(contact, name) for name in _ADDRESS}


def _life_events(
    contact: Contact, before_company: int | None, before_address: dict[str, str], actor: User | None, now: dt.datetime
) -> list[LifeEvent]:
    """The same automatic job-change and move events contact_update records, for rows an import updated."""
    events = []
    today = timezone.localdate(now)
    if contact.company_id != before_company:
        events.append(LifeEvent(
            contact=contact, kind=LifeEvent.Kind.JOB_CHANGE, date=today, source="import", created_by=actor,
            title="Company changed by import", data={"from": {"id": before_company}, "to": {"id": contact.company_id}},
        ))  # fmt: skip
    after = _address(contact)
    if after != before_address and any(before_address.values()):
        place = ", ".join(v for v in (contact.city, contact.country) if v) or "a new address"
        events.append(LifeEvent(
            contact=contact, kind=LifeEvent.Kind.MOVE, date=today, source="import", created_by=actor,
            title=f"Moved to {place}", data={"from": before_address, "to": after},
        ))  # fmt: skip
    return events


# --- Error report -----------------------------------------------------------------------------------------

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(value: Any) -> str:
    """A cell a spreadsheet will show as text: one starting with = + - @ TAB or CR is prefixed with a quote."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


class _Echo:
    def write(self, value: str) -> str:
        return value


def import_error_report(*, job: ImportJob) -> Iterator[str]:
    """CSV lines of the job's bad rows: row number, the errors, then the raw values in the file's columns."""
    writer = csv.writer(_Echo())
    yield "\ufeff" + writer.writerow(["row", "errors", *job.headers])
    last = 0
    while True:
        batch = list(job.row_errors.filter(row_number__gt=last).order_by("row_number")[:1000])
        if not batch:
            return
        for error in batch:
            messages = "; ".join(f"{col}: {' '.join(msgs)}" for col, msgs in error.errors.items())
            raw = [spreadsheet_safe(error.raw.get(h, "")) for h in job.headers]
            yield writer.writerow([error.row_number, spreadsheet_safe(messages), *raw])
        last = batch[-1].row_number
