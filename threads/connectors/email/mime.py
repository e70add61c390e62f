"""Robust MIME → NormalizedMessage.

Real mailboxes hold every kind of broken mail: lying or unknown charsets, raw 8-bit headers, missing Message-IDs
and Dates, HTML-only bodies, Outlook's winmail.dat, forwarded messages nested ten levels deep. The rule here is
that a part we cannot read is skipped with a note in ``meta["problems"]``; only bytes that are not an e-mail at all
(no headers) or a mail without any sender raise ``NormalizeError`` (and the raw event is dead-lettered, kept for
replay).

We parse with ``policy.compat32`` on purpose: ``policy.default`` builds header objects lazily, on access, and those
raise on broken encodings in places that cannot be wrapped one by one. compat32 hands back the raw strings, which
we decode ourselves (RFC 2047 encoded words, RFC 2231 parameters, raw 8-bit) with charset fallbacks.
"""

from __future__ import annotations

import codecs
import datetime as dt
import hashlib
import html
import mimetypes
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import message_from_bytes
from email import policy as email_policy
from email.header import decode_header
from email.message import Message as MimePart
from email.utils import collapse_rfc2231_value, getaddresses, parsedate_to_datetime
from typing import Any

import nh3
from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils import timezone

from contacts.identities import normalize_email
from threads.connectors import AttachmentIn, NormalizedMessage, NormalizeError, Party
from threads.models import ChannelAccount, RawEvent

# Our own outbound Message-IDs: <tl.THREAD.RANDOM@domain> (threads.connectors.email.smtp).
THREAD_HINT_RE = re.compile(r"^tl\.(\d+)\.")
_MSGID_RE = re.compile(r"<([^<>\s]+)>")
_BLOCK_END_RE = re.compile(r"(?i)<\s*(br\s*/?|/\s*(p|div|tr|li|h[1-6]|table|blockquote|pre|ul|ol))\s*>")
_ENCODED_WORD_RE = re.compile(r"=\?[^?\s]+\?[bBqQ]\?[^?\s]*\?=")
_FOLD_RE = re.compile(r"\r?\n(?=[ \t])")
_SPACES_RE = re.compile(r"[ \t\u00a0]+")

HEADER_META_CHARS = 500  # raw From/To/Cc/Date kept in meta, for people debugging a mis-threaded mail
MAX_REFERENCES = 30  # meta keeps the root and the newest ones; a long thread's References grows without bound
MAX_DEPTH = 30  # MIME nesting deeper than this is not an e-mail anyone wrote
MAX_BODY_BYTES = 4_000_000  # the pipeline keeps 1M characters of a body; the raw event keeps every byte
REPLY_PARSE_CHARS = 100_000  # the new part of a reply is at the top; the quote parser is regex-heavy
REPLY_LANGUAGES = ["en", "de", "fr", "es", "it", "nl", "sv", "da", "pl", "cs"]
TNEF_TYPES = ("application/ms-tnef", "application/vnd.ms-tnef")
TNEF_CONTAINER_FACTOR = 4


def normalize_email_event(event: RawEvent, account: ChannelAccount) -> list[NormalizedMessage]:
    """One raw RFC 822 message (from IMAP or an import) → one NormalizedMessage."""
    raw = bytes(event.payload or b"")
    received_at = event.received_at or timezone.now()
    return [parse_email(raw, account=account, meta=event.meta or {}, received_at=received_at)]


# --- Decoding helpers -------------------------------------------------------------------------------------------


def clean_text(value: str) -> str:
    """Drop what PostgreSQL refuses in text and jsonb: NUL and lone surrogates (from surrogateescape)."""
    if "\x00" in value:
        value = value.replace("\x00", "")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        value = value.encode("utf-8", "replace").decode("utf-8")
    return value


def decode_bytes(data: bytes, charset: str | None = None) -> str:
    """Bytes → text trying the declared charset, then UTF-8, then cp1252; never raises.

    A declared charset is often wrong ("utf-8" on Latin-1 bytes) or unknown ("foo-unknown", "x-mac-something"), so
    a strict decode that fails falls through to the next candidate.
    """
    candidates: list[str] = []
    if charset:
        name = charset.strip().strip('"').lower()
        try:
            info = codecs.lookup(name)
        except (LookupError, ValueError):
            info = None
        # Only real text encodings: "base64" or "rot13" as a charset are codecs, but not for bytes → str.
        if info is not None and getattr(info, "_is_text_encoding", True):
            candidates.append(info.name)
    for fallback in ("utf-8", "cp1252"):
        if fallback not in candidates:
            candidates.append(fallback)
    for name in candidates:
        try:
            return data.decode(name)
        except (UnicodeDecodeError, LookupError, ValueError, TypeError):
            continue
    return data.decode("latin-1", errors="replace")


def _unescape_8bit(value: str) -> str:
    """Raw 8-bit header bytes arrive surrogate-escaped from the parser: decode them as UTF-8, else cp1252."""
    try:
        value.encode("ascii")
        return value
    except UnicodeEncodeError:
        pass
    try:
        data = value.encode("ascii", "surrogateescape")
    except UnicodeEncodeError:
        return clean_text(value)  # already real text
    return decode_bytes(data)


def decode_words(value: str) -> str:
    """An unstructured header value (RFC 2047 encoded words, raw 8-bit, folding) → text."""
    value = _unescape_8bit(_FOLD_RE.sub("", value))
    if "=?" not in value or not _ENCODED_WORD_RE.search(value):
        return clean_text(value.replace("\r", "").replace("\n", " "))
    try:
        chunks = decode_header(value)
    except Exception:  # a malformed encoded word: show it as it came
        return clean_text(value)
    out = []
    for chunk, charset in chunks:
        out.append(decode_bytes(chunk, charset) if isinstance(chunk, bytes) else chunk)
    return clean_text("".join(out).replace("\r", "").replace("\n", " "))


def header(msg: MimePart, name: str) -> str:
    """The raw value of the first ``name`` header (unfolded, 8-bit decoded), or ""."""
    lowered = name.lower()
    for key, value in msg.raw_items():
        if key.lower() == lowered:
            return _unescape_8bit(_FOLD_RE.sub("", str(value))).strip()
    return ""


def headers_all(msg: MimePart, name: str) -> list[str]:
    lowered = name.lower()
    return [_unescape_8bit(_FOLD_RE.sub("", str(v))).strip() for k, v in msg.raw_items() if k.lower() == lowered]


def message_ids(value: str) -> list[str]:
    """``<a@x> <b@y>`` → ["a@x", "b@y"]; tolerates missing brackets (seen from broken mailers)."""
    found = _MSGID_RE.findall(value)
    if not found:
        found = [tok.strip("<>,;") for tok in value.split() if "@" in tok]
    return [clean_text(f)[:500] for f in found if f.strip("<>")]


def parse_addresses(values: list[str], role: str) -> list[Party]:
    """Header values → parties with normalized addresses; unparseable entries are skipped, never fatal."""
    parties: list[Party] = []
    seen: set[str] = set()
    try:
        pairs = getaddresses(values)
    except Exception:
        pairs = []
    for name, addr in pairs:
        try:
            address = normalize_email(addr)
        except (ValidationError, TypeError, ValueError):
            continue
        if address in seen:
            continue
        seen.add(address)
        display = decode_words(name).strip().strip('"').strip() if name else ""
        if display.lower() == address:
            display = ""
        parties.append(Party("email", clean_text(address), display[:200], role))
    return parties


def html_to_text(markup: str) -> str:
    """Readable text of an HTML body, for search, listening and the quote parser."""
    markup = _BLOCK_END_RE.sub(lambda m: m.group(0) + "\n", markup)
    text = html.unescape(nh3.clean(markup, tags=set()))
    lines = [_SPACES_RE.sub(" ", line).strip() for line in text.splitlines()]
    out: list[str] = []
    for line in lines:
        if line or (out and out[-1]):
            out.append(line)
    return "\n".join(out).strip()


def reply_part(text: str) -> str:
    """The new part of a message: quoted replies and signature stripped. Falls back to the full text."""
    if not text.strip():
        return text
    try:
        from mailparser_reply import EmailReplyParser

        parsed = EmailReplyParser(languages=list(REPLY_LANGUAGES)).read(text[:REPLY_PARSE_CHARS])
        body = parsed.replies[0].body if parsed.replies else ""
    except Exception:  # the parser is heuristics over regexes; a crash there must not cost the message
        return text
    if not body.strip() or (len(text) > REPLY_PARSE_CHARS and len(body) >= REPLY_PARSE_CHARS - 1000):
        return text  # nothing found to strip (or the quote starts beyond what we parsed): keep every word
    return body


def parse_date(value: str, fallback: dt.datetime) -> tuple[dt.datetime, bool]:
    """(sent_at, parsed?) — garbage, missing or absurd dates fall back to when we received the mail."""
    if not value:
        return fallback, False
    try:
        parsed = parsedate_to_datetime(value)
    except Exception:
        return fallback, False
    if parsed is None:
        return fallback, False
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    if parsed.year < 1990 or parsed > timezone.now() + dt.timedelta(days=2):
        return fallback, False
    return parsed, True


# --- Parts --------------------------------------------------------------------------------------------------------


@dataclass
class _Collected:
    plain: list[str] = field(default_factory=list)
    html: list[str] = field(default_factory=list)
    attachments: list[AttachmentIn] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def _leaves(part: MimePart, collected: _Collected, depth: int = 0) -> Iterator[MimePart]:
    """Leaf parts in order. A forwarded message (message/rfc822) is a leaf: its body is not ours."""
    if depth > MAX_DEPTH:
        collected.problems.append("MIME nesting too deep; the rest was skipped")
        return
    ctype = _content_type(part)
    if part.is_multipart() and not ctype.startswith("message/"):
        payload = part.get_payload()
        for sub in payload if isinstance(payload, list) else []:
            if isinstance(sub, MimePart):
                yield from _leaves(sub, collected, depth + 1)
        return
    yield part


def _content_type(part: MimePart) -> str:
    try:
        return part.get_content_type()
    except Exception:
        return "application/octet-stream"


def _filename(part: MimePart) -> str:
    try:
        name = part.get_param("filename", None, "content-disposition") or part.get_param("name", None)
    except Exception:
        name = None
    if not name:
        return ""
    try:
        # RFC 2231 (filename*=utf-8''…) comes back as a tuple; an unknown charset there falls back below.
        value = collapse_rfc2231_value(name, errors="strict", fallback_charset="utf-8")
    except Exception:
        value = name[2] if isinstance(name, tuple) else str(name)
    # Outlook sends RFC 2047 encoded words inside quoted parameters, which RFC 2231 parsing leaves alone.
    value = decode_words(str(value))
    return clean_text(value.replace("/", "_").replace("\\", "_").strip())[:255]


def _disposition(part: MimePart) -> str:
    try:
        return (part.get_content_disposition() or "").lower()
    except Exception:
        return ""


def _encoded_size(part: MimePart) -> int:
    """Decoded size of a part without decoding it (so a 2 GB attachment is never materialized twice)."""
    payload = part.get_payload()
    if not isinstance(payload, str):
        return 0
    cte = str(part.get("content-transfer-encoding", "")).strip().lower()
    if cte == "base64":
        encoded = len(payload) - payload.count("\n") - payload.count("\r") - payload.count(" ")
        return encoded * 3 // 4
    return len(payload)


def _payload_bytes(part: MimePart) -> bytes:
    ctype = _content_type(part)
    if ctype.startswith("message/") or part.is_multipart():
        inner = part.get_payload()
        if isinstance(inner, list):
            # A forwarded mail or delivery report: keep it whole, as the .eml people would download.
            chunks = []
            for sub in inner:
                try:
                    chunks.append(sub.as_bytes(policy=email_policy.compat32))
                except Exception:
                    chunks.append(sub.as_string().encode("utf-8", "replace"))
            return b"\n".join(chunks)
    data = part.get_payload(decode=True)
    if data is None:
        payload = part.get_payload()
        return payload.encode("utf-8", "surrogateescape") if isinstance(payload, str) else b""
    return data


def _guess_name(ctype: str, index: int) -> str:
    ext = {"message/rfc822": ".eml", "text/plain": ".txt"}.get(ctype) or mimetypes.guess_extension(ctype) or ".bin"
    return f"attachment-{index}{ext}"


def _is_tnef(ctype: str, name: str) -> bool:
    return ctype in TNEF_TYPES or name.lower() == "winmail.dat"


def _unpack_tnef(data: bytes, collected: _Collected, limit: int) -> bool:
    """winmail.dat → its attachments (and its body). False when it cannot be read: the caller keeps it whole."""
    try:
        from tnefparse import TNEF

        tnef = TNEF(data, do_checksum=False)
        found: list[AttachmentIn] = []
        for i, att in enumerate(tnef.attachments, start=1):
            raw_name = att.long_filename() or att.name
            if isinstance(raw_name, bytes):
                raw_name = decode_bytes(raw_name)
            name = clean_text(str(raw_name).strip("\x00").strip()) or f"attachment-{i}.bin"
            payload = bytes(att.data or b"")
            ctype = mimetypes.guess_type(name)[0] or "application/octet-stream"
            if len(payload) > limit:
                found.append(AttachmentIn(name, ctype, None, len(payload), omitted=f"larger than {limit} bytes"))
            else:
                found.append(AttachmentIn(name, ctype, payload, len(payload)))
        body = tnef.body
        html_body = tnef.htmlbody
    except Exception as exc:
        collected.problems.append(f"winmail.dat could not be unpacked ({type(exc).__name__}); kept as is")
        return False
    if isinstance(body, bytes):
        body = decode_bytes(body.rstrip(b"\x00"))
    if isinstance(html_body, bytes):
        html_body = decode_bytes(html_body.rstrip(b"\x00"))
    if not found and not body and not html_body:
        collected.problems.append("winmail.dat held nothing readable; kept as is")
        return False
    collected.attachments += found
    if body and str(body).strip():
        collected.plain.append(clean_text(str(body).strip("\x00")))
    if html_body and str(html_body).strip():
        collected.html.append(clean_text(str(html_body).strip("\x00")))
    return True


def _collect(msg: MimePart) -> _Collected:
    collected = _Collected()
    limit = int(settings.MAIL_MAX_PART_BYTES)
    for index, part in enumerate(_leaves(msg, collected), start=1):
        try:
            _collect_part(part, collected, limit)
        except Exception as exc:  # one unreadable part must not cost the rest of the message
            collected.problems.append(f"part {index} ({_content_type(part)}) skipped: {type(exc).__name__}")
    return collected


def _collect_part(part: MimePart, collected: _Collected, limit: int) -> None:
    ctype = _content_type(part)
    disposition = _disposition(part)
    name = _filename(part)
    is_body = ctype in ("text/plain", "text/html") and disposition != "attachment" and not name
    if ctype.startswith("multipart/"):
        # A multipart whose boundary is missing or never occurs: the parser leaves it as one blob of text, which
        # is still the best reading of what the sender wrote.
        collected.problems.append(f"{ctype} without a usable boundary read as text")
        ctype, is_body = "text/plain", True
    if is_body:
        data = part.get_payload(decode=True) or b""
        try:
            charset = part.get_content_charset()
        except Exception:
            charset = None
        text = clean_text(decode_bytes(data[:MAX_BODY_BYTES], charset)).replace("\r\n", "\n").replace("\r", "\n")
        (collected.html if ctype == "text/html" else collected.plain).append(text)
        return
    tnef = _is_tnef(ctype, name)
    # Outlook wraps every file of a mail into one winmail.dat: the container may be larger than one part, the files
    # inside are bounded one by one.
    bound = limit * TNEF_CONTAINER_FACTOR if tnef else limit
    size = _encoded_size(part)
    if size > bound:
        shown = name or _guess_name(ctype, len(collected.attachments) + 1)
        collected.attachments.append(AttachmentIn(shown, ctype, None, size, omitted=f"larger than {bound} bytes"))
        return
    data = _payload_bytes(part)
    if tnef and _unpack_tnef(data, collected, limit):
        return
    name = name or _guess_name(ctype, len(collected.attachments) + 1)
    if len(data) > limit:
        collected.attachments.append(AttachmentIn(name, ctype, None, len(data), omitted=f"larger than {limit} bytes"))
        return
    collected.attachments.append(AttachmentIn(name, ctype, data, len(data)))


# --- The message ----------------------------------------------------------------------------------------------------


def _split_body(raw: bytes) -> bytes:
    for sep in (b"\r\n\r\n", b"\n\n"):
        at = raw.find(sep)
        if at != -1:
            return raw[at + len(sep) :]
    return b""


def derived_message_id(msg: MimePart, raw: bytes) -> str:
    """A stable id for a mail without Message-ID: the same bytes (from IMAP or from an mbox, CRLF or LF) always
    give the same id, so a re-import dedupes."""
    digest = hashlib.sha256()
    for name in ("from", "to", "date", "subject"):
        digest.update(name.encode() + b":" + header(msg, name).encode("utf-8", "replace") + b"\n")
    body = _split_body(raw).replace(b"\r\n", b"\n").rstrip()
    digest.update(body)
    return f"derived-{digest.hexdigest()[:40]}@threadline"


def _own_addresses(account: ChannelAccount) -> set[str]:
    config = account.config or {}
    own: set[str] = set()
    aliases = config.get("aliases") or []
    if isinstance(aliases, str):
        aliases = [aliases]
    for value in [account.address, *aliases]:
        try:
            own.add(normalize_email(str(value)))
        except (ValidationError, TypeError, ValueError):
            continue
    return own


def _sent_folders(account: ChannelAccount) -> set[str]:
    value = (account.config or {}).get("sent_folder", "Sent")
    values = value if isinstance(value, list | tuple) else [value]
    return {str(v).strip().lower() for v in values if v}


def _thread_hint(ids: list[str]) -> int | None:
    for mid in ids:
        match = THREAD_HINT_RE.match(mid)
        if match:
            try:
                return int(match.group(1))
            except ValueError:
                continue
    return None


def parse_email(
    raw: bytes, *, account: ChannelAccount, meta: dict[str, Any] | None = None, received_at: dt.datetime | None = None
) -> NormalizedMessage:
    """Parse raw RFC 822 bytes for ``account``. Raises NormalizeError only for non-mail and mail with no sender."""
    meta = meta or {}
    received_at = received_at or timezone.now()
    if not raw.strip():
        raise NormalizeError("Not an e-mail: the message is empty.")
    try:
        msg = message_from_bytes(raw, policy=email_policy.compat32)
    except Exception as exc:  # the stdlib parser is lenient; this is only for truly pathological input
        raise NormalizeError(f"Not an e-mail: the MIME parser failed ({type(exc).__name__}: {exc}).") from exc
    if not msg.keys():
        raise NormalizeError("Not an e-mail: no headers found (is this an RFC 822 message?).")

    from_values = headers_all(msg, "from")
    senders = parse_addresses(from_values, "from") or parse_addresses(headers_all(msg, "sender"), "from")
    if not senders:
        shown = (from_values[0][:200] if from_values else "") or "missing"
        raise NormalizeError(f"E-mail has no sender address (From: {shown}).")
    author = senders[0]

    mid_value = header(msg, "message-id")
    mid_ids = message_ids(mid_value)
    if not mid_ids and mid_value.strip("<> ") and " " not in mid_value.strip():
        mid_ids = [clean_text(mid_value.strip("<> "))[:500]]  # a bare token some mailers send instead of <id@host>
    external_id = mid_ids[0] if mid_ids else derived_message_id(msg, raw)
    in_reply_to = message_ids(header(msg, "in-reply-to"))
    references = message_ids(" ".join(headers_all(msg, "references")))
    if references:
        thread_key = references[0]
    elif in_reply_to:
        thread_key = in_reply_to[0]
    else:
        thread_key = external_id
    hint = _thread_hint([*in_reply_to[:1], *reversed(references), *in_reply_to[1:], external_id])

    own = _own_addresses(account)
    folder = str(meta.get("folder") or "")
    outbound = author.address in own or (bool(folder) and folder.strip().lower() in _sent_folders(account))
    if outbound:
        counterparts = []
        seen = set(own)
        for role in ("to", "cc", "bcc"):
            for party in parse_addresses(headers_all(msg, role), role):
                if party.address not in seen:
                    seen.add(party.address)
                    counterparts.append(party)
    else:
        counterparts = [author]

    date_value = header(msg, "date")
    sent_at, date_ok = parse_date(date_value, received_at)
    collected = _collect(msg)
    body_html = "\n".join(h for h in collected.html if h.strip())
    body_text = "\n\n".join(t.strip("\n") for t in collected.plain if t.strip())
    if not body_text and body_html:
        try:
            body_text = html_to_text(body_html)
        except Exception as exc:
            collected.problems.append(f"HTML body could not be turned into text ({type(exc).__name__})")
    problems = list(collected.problems)
    if not date_ok:
        problems.append("missing or unreadable Date; received time used" if date_value else "no Date header")
    if not mid_ids:
        problems.append("no Message-ID; a stable id was derived from the content")

    message_meta: dict[str, Any] = {
        "message_id": external_id,
        "in_reply_to": in_reply_to[0] if in_reply_to else "",
        "references": references
        if len(references) <= MAX_REFERENCES
        else [references[0], *references[1 - MAX_REFERENCES :]],
        "folder": clean_text(folder),
        "uid": meta.get("uid"),
        "headers": {name: clean_text(header(msg, name))[:HEADER_META_CHARS] for name in ("from", "to", "cc", "date")},
    }
    if meta.get("source"):
        message_meta["source"] = clean_text(str(meta["source"]))[:200]
    if problems:
        message_meta["problems"] = problems[:20]
    return NormalizedMessage(
        channel="email",
        direction="outbound" if outbound else "inbound",
        external_id=external_id,
        sent_at=sent_at,
        provider_thread_key=thread_key,
        thread_hint=hint,
        author=author,
        counterparts=counterparts,
        subject=decode_words(header(msg, "subject")).strip()[:998],
        body_text=body_text,
        body_display=reply_part(body_text),
        body_html=body_html,
        attachments=collected.attachments,
        meta=message_meta,
    )
