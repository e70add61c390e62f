"""IMAP poller: pull what is new in each watched folder, batch by batch, into the ingestion pipeline.

Where a folder stopped is its ``(UIDVALIDITY, last UID)`` in ``account.cursor["folders"][folder]``: UIDs only grow
within one UIDVALIDITY, so "UID last+1:*" is exactly what arrived since, however old its Date header says it is (a
date window would miss mail delivered late and refetch mail on every poll). Each batch goes to ``ingest_fetched``
together with the cursor that covers it, so the cursor commits with the messages and a connection lost mid-sync
resumes after the last committed batch. When the server renumbers a folder (UIDVALIDITY changed: a restored
backup, a migrated server) the folder is read again from UID 1; raw events dedupe by the hash of their bytes and
messages by Message-ID, so the resync stores nothing twice.

Account settings (``account.config``): ``imap_host``, ``imap_port`` (993 for ssl, else 143), ``imap_security``
("ssl", "starttls" or "none"), ``folders`` (default INBOX and the sent folder), ``sent_folder`` ("Sent"),
``batch_size``. Credentials (``account.credentials``, encrypted): JSON ``{"username": …, "password": …}``.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import imaplib
import logging
import re
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from imap_tools.imap_utf7 import utf7_encode

from threads.connectors import ChannelAuthError, ChannelUnavailable, ConnectorError, RawEventIn, credentials_of
from threads.models import ChannelAccount

log = logging.getLogger(__name__)

BATCH_SIZE = 200  # messages per UID FETCH and per ingest transaction (``config["batch_size"]`` overrides)
BATCH_BYTES = 50 * 1024 * 1024  # …and at most this many bytes of mail, unless one message alone is larger
SEARCH_WINDOW = 20_000  # UIDs per UID SEARCH
TIMEOUT = 30  # seconds for connect and every read: a hung server fails the poll instead of holding the worker
DEFAULT_SENT_FOLDER = "Sent"

# Transport trouble: the server is down, unreachable, slow, or dropped us mid-conversation.
_UNAVAILABLE = (OSError, imaplib.IMAP4.abort, EOFError)  # OSError covers timeouts and ssl.SSLError


@dataclass(frozen=True)
class ImapSettings:
    host: str
    port: int
    security: str
    username: str
    password: str


def imap_settings(account: ChannelAccount) -> ImapSettings:
    config = account.config or {}
    host = str(config.get("imap_host") or "").strip()
    if not host:
        raise ConnectorError(f"{account.name} has no IMAP server: set imap_host in its settings.")
    security = str(config.get("imap_security") or "ssl").lower()
    if security not in ("ssl", "starttls", "none"):
        raise ConnectorError(f"imap_security of {account.name} must be ssl, starttls or none, not {security!r}.")
    port = int(config.get("imap_port") or (993 if security == "ssl" else 143))
    creds = credentials_of(account)
    username = str(creds.get("username") or account.address)
    password = str(creds.get("password") or "")
    if not password:
        raise ChannelAuthError(f"{account.name} has no IMAP password: enter the mailbox credentials.")
    return ImapSettings(host=host, port=port, security=security, username=username, password=password)


def watched_folders(account: ChannelAccount) -> list[str]:
    config = account.config or {}
    folders = config.get("folders")
    if folders:
        return [str(f) for f in folders]
    return ["INBOX", str(config.get("sent_folder") or DEFAULT_SENT_FOLDER)]


def quote_mailbox(name: str) -> str:
    """A folder name as an IMAP astring: modified UTF-7 (RFC 3501 §5.1.3), quoted."""
    encoded = utf7_encode(name).decode("ascii")
    return '"' + encoded.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _server_text(data: Any) -> str:
    parts = data if isinstance(data, list | tuple) else [data]
    return " ".join(p.decode(errors="replace") if isinstance(p, bytes) else str(p) for p in parts if p)


@contextlib.contextmanager
def imap_session(account: ChannelAccount) -> Iterator[imaplib.IMAP4]:
    """A logged-in IMAP connection; transport and login failures become the connector errors."""
    s = imap_settings(account)
    where = f"{s.host}:{s.port}"
    try:
        if s.security == "ssl":
            conn: imaplib.IMAP4 = imaplib.IMAP4_SSL(
                s.host, s.port, ssl_context=ssl.create_default_context(), timeout=TIMEOUT
            )
        else:
            conn = imaplib.IMAP4(s.host, s.port, timeout=TIMEOUT)
            if s.security == "starttls":
                conn.starttls(ssl_context=ssl.create_default_context())
    except imaplib.IMAP4.error as exc:  # e.g. the server does not offer STARTTLS
        raise ChannelUnavailable(f"IMAP server {where} refused the secure connection: {exc}") from exc
    except _UNAVAILABLE as exc:
        raise ChannelUnavailable(f"Cannot reach the IMAP server {where}: {exc or type(exc).__name__}") from exc
    try:
        try:
            conn.login(s.username, s.password)
        except imaplib.IMAP4.abort as exc:
            raise ChannelUnavailable(f"IMAP server {where} dropped the connection during login: {exc}") from exc
        except imaplib.IMAP4.error as exc:
            text = _server_text(list(exc.args))
            if "UNAVAILABLE" in text.upper():  # RFC 5530: the server cannot check credentials right now
                raise ChannelUnavailable(f"IMAP server {where} cannot log in right now: {text}") from exc
            raise ChannelAuthError(
                f"IMAP login refused for {s.username} on {where}: check the user name and password ({text})"
            ) from exc
        except _UNAVAILABLE as exc:
            raise ChannelUnavailable(f"Lost the IMAP server {where} during login: {exc}") from exc
        yield conn
    except imaplib.IMAP4.abort as exc:
        raise ChannelUnavailable(f"The IMAP server {where} dropped the connection: {exc}") from exc
    except imaplib.IMAP4.error as exc:  # a BAD answer: the server rejected a command we sent
        raise ConnectorError(f"The IMAP server {where} rejected a command: {exc}") from exc
    except (OSError, EOFError) as exc:
        raise ChannelUnavailable(f"Lost the IMAP server {where}: {exc or type(exc).__name__}") from exc
    finally:
        with contextlib.suppress(Exception):
            conn.logout()


def _check(typ: str, data: Any, what: str) -> Any:
    if typ != "OK":
        raise ConnectorError(f"IMAP {what} failed: {_server_text(data)}")
    return data


@dataclass(frozen=True)
class _Folder:
    uidvalidity: int
    exists: int
    uidnext: int | None


def _examine(conn: imaplib.IMAP4, folder: str) -> _Folder | None:
    """Select ``folder`` read-only, or None when the folder does not exist."""
    typ, data = conn.select(quote_mailbox(folder), readonly=True)
    if typ != "OK":
        text = _server_text(data)
        if "NONEXISTENT" in text.upper() or "doesn't exist" in text or "not exist" in text.lower():
            return None
        raise ConnectorError(f"IMAP cannot open folder {folder!r}: {text}")
    exists = int((data[0] or b"0").decode() or 0)
    _, values = conn.response("UIDVALIDITY")
    if not values or values[-1] is None:
        raise ConnectorError(f"IMAP server gave folder {folder!r} no UIDVALIDITY; it cannot be synced safely.")
    _, nexts = conn.response("UIDNEXT")
    uidnext = int(nexts[-1]) if nexts and nexts[-1] is not None else None
    return _Folder(uidvalidity=int(values[-1]), exists=exists, uidnext=uidnext)


def _search(conn: imaplib.IMAP4, low: int, high: int | None) -> list[int]:
    typ, data = conn.uid("SEARCH", f"UID {low}:{high if high is not None else '*'}")
    _check(typ, data, "UID SEARCH")
    uids = {int(x) for x in b" ".join(d for d in data if d).split()}
    # "n:*" always matches the highest UID, even when it is below n: an empty folder's tail comes back otherwise.
    return sorted(u for u in uids if u >= low and (high is None or u <= high))


def _uid_windows(conn: imaplib.IMAP4, last_uid: int, uidnext: int | None) -> Iterator[list[int]]:
    """The UIDs after ``last_uid``, ascending, one SEARCH window at a time: one SEARCH over a million-message
    folder answers with a line longer than imaplib accepts (and than a worker should hold)."""
    if uidnext is None:  # a server that does not report UIDNEXT: one open-ended search
        yield _search(conn, last_uid + 1, None)
        return
    low = last_uid + 1
    while low < uidnext:
        high = min(low + SEARCH_WINDOW - 1, uidnext - 1)
        found = _search(conn, low, high)
        if found:
            yield found
        low = high + 1


def _sizes(conn: imaplib.IMAP4, uids: list[int]) -> dict[int, int]:
    typ, data = conn.uid("FETCH", _uid_set(uids), "(UID RFC822.SIZE)")
    _check(typ, data, "UID FETCH RFC822.SIZE")
    sizes: dict[int, int] = {}
    for item in data:
        line = item[0] if isinstance(item, tuple) else item
        if isinstance(line, bytes):
            uid, size = _FETCH_UID.search(line), _FETCH_SIZE.search(line)
            if uid and size:
                sizes[int(uid.group(1))] = int(size.group(1))
    return sizes


def _batches(uids: list[int], sizes: dict[int, int], batch_size: int) -> Iterator[list[int]]:
    """Up to ``batch_size`` messages and BATCH_BYTES per batch (at least one message): a mailbox full of large
    attachments must not pull gigabytes into one worker and one transaction."""
    batch: list[int] = []
    total = 0
    for uid in uids:
        size = sizes.get(uid, 0)
        if batch and (len(batch) >= batch_size or total + size > BATCH_BYTES):
            yield batch
            batch, total = [], 0
        batch.append(uid)
        total += size
    if batch:
        yield batch


def _uid_set(uids: list[int]) -> str:
    """[1, 2, 3, 7] → "1:3,7" (short commands for dense folders)."""
    parts: list[str] = []
    start = prev = uids[0]
    for uid in uids[1:]:
        if uid == prev + 1:
            prev = uid
            continue
        parts.append(f"{start}:{prev}" if prev != start else str(start))
        start = prev = uid
    parts.append(f"{start}:{prev}" if prev != start else str(start))
    return ",".join(parts)


_FETCH_UID = re.compile(rb"UID (\d+)")
_FETCH_SIZE = re.compile(rb"RFC822\.SIZE (\d+)")


def _fetch(conn: imaplib.IMAP4, uids: list[int]) -> dict[int, bytes]:
    """UID → RFC 822 bytes. BODY.PEEK so that syncing never marks anyone's mail as read."""
    typ, data = conn.uid("FETCH", _uid_set(uids), "(UID BODY.PEEK[])")
    _check(typ, data, "UID FETCH")
    found: dict[int, bytes] = {}
    for item in data:
        if isinstance(item, tuple) and len(item) == 2:
            match = _FETCH_UID.search(item[0])
            if match:
                found[int(match.group(1))] = bytes(item[1])
    return found


def poll_account(account: ChannelAccount) -> None:
    """Fetch every folder's new messages into the pipeline; update the reported message count."""
    from threads.services.pipeline import ingest_fetched

    config = account.config or {}
    batch_size = max(1, int(config.get("batch_size") or BATCH_SIZE))
    cursor: dict[str, Any] = copy.deepcopy(account.cursor or {})
    folder_state: dict[str, Any] = cursor.setdefault("folders", {})
    reported = 0
    with imap_session(account) as conn:
        for folder in watched_folders(account):
            opened = _examine(conn, folder)
            if opened is None:
                log.info("channel account %s: folder %r does not exist; skipped", account.pk, folder)
                continue
            reported += opened.exists
            state = folder_state.get(folder) or {}
            last_uid = int(state.get("last_uid") or 0)
            if state and state.get("uidvalidity") != opened.uidvalidity:
                log.warning(
                    "channel account %s: UIDVALIDITY of %r changed (%s → %s); reading the folder again",
                    account.pk, folder, state.get("uidvalidity"), opened.uidvalidity,
                )  # fmt: skip
                last_uid = 0
            if state.get("uidvalidity") != opened.uidvalidity or "last_uid" not in state:
                # Remember the (new) numbering even when nothing is fetched, so the resync happens once.
                folder_state[folder] = {"uidvalidity": opened.uidvalidity, "last_uid": last_uid}
                if not opened.exists:
                    ingest_fetched(account=account, events=[], cursor=copy.deepcopy(cursor))
            if not opened.exists:
                continue
            for window in _uid_windows(conn, last_uid, opened.uidnext):
                sizes = _sizes(conn, window)
                for batch in _batches(window, sizes, batch_size):
                    fetched = _fetch(conn, batch)
                    events = [
                        RawEventIn(
                            provider_event_id="sha256:" + hashlib.sha256(raw).hexdigest(), event_type="email",
                            payload=raw, content_type="message/rfc822",
                            meta={"folder": folder, "uid": uid, "uidvalidity": opened.uidvalidity},
                        )
                        for uid, raw in sorted(fetched.items())
                    ]  # fmt: skip
                    # A UID missing from the answer was expunged since the SEARCH: there is nothing left to read.
                    folder_state[folder] = {"uidvalidity": opened.uidvalidity, "last_uid": batch[-1]}
                    ingest_fetched(account=account, events=events, cursor=copy.deepcopy(cursor))
    account.cursor = cursor
    account.reported_count = reported
    ChannelAccount.objects.filter(pk=account.pk).update(reported_count=reported)


def test_connection(account: ChannelAccount) -> str:
    """Log in and open the folders we watch: the connection test of the channel page."""
    s = imap_settings(account)
    with imap_session(account) as conn:
        missing = []
        for folder in watched_folders(account):
            status, _ = conn.select(quote_mailbox(folder), readonly=True)
            if status != "OK":
                missing.append(folder)
    if missing:
        raise ConnectorError(
            f"Logged in to {s.host} as {s.username}, but these folders do not exist: {', '.join(missing)}."
        )
    return f"Logged in to {s.host} as {s.username}; watching {', '.join(watched_folders(account))}."
