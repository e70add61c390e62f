"""CSV export of a filtered contact list, and vCard export of one contact.

Both only format what a selector returned: visibility was decided there.
"""

from __future__ import annotations

import csv
import datetime as dt
from collections.abc import Iterator
from typing import Any

from django.db.models import Prefetch, QuerySet

from contacts.customfields import active_definitions
from contacts.models import Contact, ContactIdentity
from contacts.services.imports import spreadsheet_safe

EXPORT_BATCH = 1000
_PROFILE_KINDS = (ContactIdentity.Kind.TWITTER, ContactIdentity.Kind.FACEBOOK, ContactIdentity.Kind.LINKEDIN)
_SOCIAL = ("twitter", "facebook", "linkedin", "skype", "im", "other")

CONTACT_COLUMNS = (
    "id", "first_name", "last_name", "title", "company", "lifecycle_stage", "tier", "tags", "street", "city",
    "region", "postal_code", "country", "birthday", "language", "time_zone", "notes", "do_not_contact", "owner",
    "created_at", "updated_at",
)  # fmt: skip
IDENTITY_COLUMNS = ("email", "other_emails", "phone", "other_phones", "website", *_SOCIAL)


class _Echo:
    """A file-like object whose write returns the line: csv.writer then yields lines for a streaming response."""

    def write(self, value: str) -> str:
        return value


def _identity_cells(identities: list[ContactIdentity]) -> dict[str, str]:
    by_kind: dict[str, list[ContactIdentity]] = {}
    for identity in identities:  # ordered primary first within a kind
        by_kind.setdefault(identity.kind, []).append(identity)
    emails = [i.value for i in by_kind.get("email", [])]
    phones = [i.value for i in by_kind.get("phone", [])]
    cells = {
        "email": emails[0] if emails else "",
        "other_emails": "; ".join(emails[1:]),
        "phone": phones[0] if phones else "",
        "other_phones": "; ".join(phones[1:]),
        "website": "; ".join(i.value for i in by_kind.get("website", [])),
    }
    for kind in _SOCIAL:
        cells[kind] = "; ".join(i.handle or i.value for i in by_kind.get(kind, []))
    return cells


def _contact_cells(contact: Contact) -> dict[str, Any]:
    return {
        "id": contact.pk, "first_name": contact.first_name, "last_name": contact.last_name, "title": contact.title,
        "company": contact.company.name if contact.company_id else "", "lifecycle_stage": contact.lifecycle_stage,
        "tier": contact.tier, "tags": "; ".join(contact.tags), "street": contact.street, "city": contact.city,
        "region": contact.region, "postal_code": contact.postal_code, "country": contact.country,
        "birthday": contact.birthday.isoformat() if contact.birthday else "", "language": contact.language,
        "time_zone": contact.time_zone, "notes": contact.notes,
        "do_not_contact": "yes" if contact.do_not_contact else "",
        "owner": contact.owner.username if contact.owner_id else "", "created_at": contact.created_at.isoformat(),
        "updated_at": contact.updated_at.isoformat(),
    }  # fmt: skip


def contacts_csv(*, contacts: QuerySet[Contact]) -> Iterator[str]:
    """CSV lines (header first) of ``contacts`` by id, fetched in keyset batches: no OFFSET, never all at once.

    Every cell is spreadsheet-safe. Custom fields follow the fixed columns as ``custom:<key>``.
    """
    keys = list(active_definitions())
    writer = csv.writer(_Echo())
    header = [*CONTACT_COLUMNS, *IDENTITY_COLUMNS, *(f"custom:{k}" for k in keys)]
    yield "\ufeff" + writer.writerow(header)  # the BOM makes Excel read UTF-8
    identities_prefetch = Prefetch("identities", queryset=ContactIdentity.objects.order_by("kind", "-is_primary", "id"))
    base = contacts.select_related("company", "owner").prefetch_related(identities_prefetch).order_by("id")
    last_id = 0
    while True:
        batch = list(base.filter(pk__gt=last_id)[:EXPORT_BATCH])
        if not batch:
            return
        for contact in batch:
            cells = {**_contact_cells(contact), **_identity_cells(list(contact.identities.all()))}
            row = [cells[c] for c in CONTACT_COLUMNS + IDENTITY_COLUMNS]
            row += [_custom_cell(contact.custom_fields.get(k)) for k in keys]
            yield writer.writerow([spreadsheet_safe(v) for v in row])
        last_id = batch[-1].pk


def _custom_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


# --- vCard ------------------------------------------------------------------------------------------------


def vcard_escape(value: str) -> str:
    """RFC 6350 text value escaping: backslash, comma, semicolon and newlines."""
    return (
        value.replace("\\", "\\\\")
        .replace(",", "\\,")
        .replace(";", "\\;")
        .replace("\r\n", "\\n")
        .replace("\n", "\\n")
        .replace("\r", "\\n")
    )


def vcard_fold(line: str) -> str:
    """Fold a content line at 75 octets (continuations start with a space), never inside a UTF-8 character."""
    out: list[str] = []
    current, size, limit = "", 0, 75
    for char in line:
        width = len(char.encode("utf-8"))
        if size + width > limit:
            out.append(current)
            current, size, limit = " ", 1, 75
        current += char
        size += width
    out.append(current)
    return "\r\n".join(out)


def contact_vcard(*, contact: Contact) -> str:
    """A vCard 4.0 of the contact: name, organisation, title, addresses, e-mails, phones, URLs, note."""
    lines = ["BEGIN:VCARD", "VERSION:4.0"]
    lines.append(f"FN:{vcard_escape(contact.display_name)}")
    lines.append(f"N:{vcard_escape(contact.last_name)};{vcard_escape(contact.first_name)};;;")
    if contact.company_id:
        lines.append(f"ORG:{vcard_escape(contact.company.name)}")
    if contact.title:
        lines.append(f"TITLE:{vcard_escape(contact.title)}")
    if contact.birthday:
        lines.append(f"BDAY:{contact.birthday.strftime('%Y%m%d')}")
    for identity in contact.identities.all():
        pref = ";PREF=1" if identity.is_primary else ""
        kind_type = f";TYPE={vcard_escape(identity.label.lower())}" if identity.label else ""
        if identity.kind == ContactIdentity.Kind.EMAIL:
            lines.append(f"EMAIL{kind_type}{pref}:{vcard_escape(identity.value)}")
        elif identity.kind == ContactIdentity.Kind.PHONE:
            lines.append(f"TEL;VALUE=uri{kind_type}{pref}:tel:{identity.normalized}")
        elif identity.kind == ContactIdentity.Kind.WEBSITE:
            url = identity.value if "://" in identity.value else f"https://{identity.normalized}"
            lines.append(f"URL:{vcard_escape(url)}")
        elif identity.kind in _PROFILE_KINDS:
            lines.append(f"X-SOCIALPROFILE;TYPE={identity.kind}:{vcard_escape(identity.handle or identity.value)}")
        else:
            lines.append(f"IMPP:{vcard_escape(identity.kind)}:{vcard_escape(identity.value)}")
    if any((contact.street, contact.city, contact.region, contact.postal_code, contact.country)):
        parts = ["", "", contact.street, contact.city, contact.region, contact.postal_code, contact.country]
        lines.append("ADR:" + ";".join(vcard_escape(p) for p in parts))
    if contact.time_zone:
        lines.append(f"TZ:{vcard_escape(contact.time_zone)}")
    if contact.language:
        lines.append(f"LANG:{vcard_escape(contact.language)}")
    if contact.notes:
        lines.append(f"NOTE:{vcard_escape(contact.notes)}")
    if contact.tags:
        lines.append("CATEGORIES:" + ",".join(vcard_escape(t) for t in contact.tags))
    lines.append(f"REV:{contact.updated_at.astimezone(dt.UTC).strftime('%Y%m%dT%H%M%SZ')}")
    lines.append("END:VCARD")
    return "".join(vcard_fold(line) + "\r\n" for line in lines)
