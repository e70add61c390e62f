"""Real mail servers for the e-mail connector tests: a throw-away Dovecot (IMAP) and an aiosmtpd (SMTP) server.

Dovecot runs unprivileged from a temporary directory with its own config, users file and maildirs. As root (CI)
the whole server runs as ``nobody``, because Dovecot refuses to run its login processes as root; as anyone else it
runs as that user. Tests drive it with imaplib, the way a person's mail client would.
"""

from __future__ import annotations

import contextlib
import imaplib
import logging
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.utils import formatdate, make_msgid
from pathlib import Path

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from imap_tools.imap_utf7 import utf7_encode

DOVECOT_BINARY = "/usr/sbin/dovecot"
# aiosmtpd logs every SMTP line at INFO; a failing test's output should show ours.
logging.getLogger("mail.log").setLevel(logging.WARNING)
USER_POOL = 200  # mailbox users the session can hand out


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(host: str, port: int, *, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def quote_mailbox(name: str) -> str:
    encoded = utf7_encode(name).decode("ascii")
    return '"' + encoded.replace("\\", "\\\\").replace('"', '\\"') + '"'


def email_bytes(
    *, sender: str, to: str, subject: str = "Hello", body: str = "Hi there", message_id: str | None = None,
    in_reply_to: str = "", references: list[str] | None = None, name: str = "", extra: dict[str, str] | None = None,
    date: float | None = None,
) -> bytes:  # fmt: skip
    """A plain RFC 822 message, CRLF line ends, as a mail client would APPEND it. Ids are without brackets;
    ``date`` is a Unix time (default now)."""
    message_id = message_id or make_msgid(domain="customer.example")[1:-1]
    lines = [
        f"From: {name} <{sender}>" if name else f"From: {sender}",
        f"To: {to}",
        f"Subject: {subject}",
        f"Date: {formatdate(date, localtime=False)}",
        f"Message-ID: <{message_id}>",
    ]
    if in_reply_to:
        lines.append(f"In-Reply-To: <{in_reply_to}>")
    if references:
        lines.append("References: " + " ".join(f"<{r}>" for r in references))
    for key, value in (extra or {}).items():
        lines.append(f"{key}: {value}")
    lines += ["MIME-Version: 1.0", "Content-Type: text/plain; charset=utf-8", "", body, ""]
    return "\r\n".join(lines).encode()


@dataclass
class MailUser:
    name: str
    password: str
    address: str


class Dovecot:
    """One Dovecot instance on a free port of 127.0.0.1. ``start``/``stop``/``restart`` keep the maildirs."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.host = "127.0.0.1"
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.users: dict[str, MailUser] = {}
        self._lock = threading.Lock()
        if os.geteuid() == 0:
            self.run_user, self.run_group = "nobody", _group_name(pwd.getpwnam("nobody").pw_gid)
        else:
            entry = pwd.getpwuid(os.geteuid())
            self.run_user, self.run_group = entry.pw_name, _group_name(entry.pw_gid)
        self.uid = pwd.getpwnam(self.run_user).pw_uid
        self.gid = pwd.getpwnam(self.run_user).pw_gid
        for sub in ("run", "state", "mail"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        self._pool = [MailUser(f"user{i}", f"secret-{i}", f"user{i}@ourco.example") for i in range(1, USER_POOL + 1)]
        (root / "users").write_text("".join(f"{u.name}:{{PLAIN}}{u.password}::::::\n" for u in self._pool))
        (root / "dovecot.conf").write_text(self._config())
        self._chown(root)

    @property
    def log_path(self) -> Path:
        return self.root / "dovecot.log"

    def _config(self) -> str:
        r = self.root
        # Every service chroots by default, which needs root; "chroot =" switches it off for unprivileged runs.
        return f"""
protocols = imap
listen = {self.host}
base_dir = {r}/run
state_dir = {r}/state
log_path = {r}/dovecot.log
info_log_path = {r}/dovecot.log
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_failure_delay = 0
default_internal_user = {self.run_user}
default_internal_group = {self.run_group}
default_login_user = {self.run_user}
mail_location = maildir:{r}/mail/%u/Maildir
mailbox_list_index = yes
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {r}/users
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {r}/users
  default_fields = uid={self.uid} gid={self.gid} home={r}/mail/%u
}}
service imap-login {{
  chroot =
  inet_listener imap {{
    address = {self.host}
    port = {self.port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service anvil {{
  chroot =
}}
service auth {{
  chroot =
}}
"""

    def _chown(self, path: Path) -> None:
        if os.geteuid() != 0:
            return
        os.chown(path, self.uid, self.gid)
        for dirpath, dirnames, filenames in os.walk(path):
            for name in [*dirnames, *filenames]:
                os.chown(os.path.join(dirpath, name), self.uid, self.gid, follow_symlinks=False)

    # --- lifecycle ------------------------------------------------------------------------------------------

    def start(self) -> None:
        if self.process is not None and self.process.poll() is None:
            return
        kwargs: dict[str, object] = {}
        if os.geteuid() == 0:
            kwargs = {"user": self.run_user, "group": self.run_group, "extra_groups": []}
        with open(self.root / "stderr.log", "ab") as stderr:  # the child keeps its own copy of the descriptor
            self.process = subprocess.Popen(
                [DOVECOT_BINARY, "-F", "-c", str(self.root / "dovecot.conf")],
                stdout=subprocess.DEVNULL, stderr=stderr,
                start_new_session=True,  # its own process group, so stop() can end the sessions it leaves behind
                **kwargs,  # type: ignore[arg-type]
            )  # fmt: skip
        try:
            wait_for_port(self.host, self.port)
        except OSError as exc:
            raise RuntimeError(f"Dovecot did not start: {self.tail_log()}") from exc

    def stop(self) -> None:
        """Stop the server and every IMAP session it serves (clients see their connection drop)."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        # Running imap processes outlive the master (they finish their sessions); a crashed server does not.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process = None

    def crash(self) -> None:
        """Kill the server and its sessions at once, as a power cut or an OOM kill would."""
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()
        self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def forget_failed_logins(self) -> None:
        """Dovecot slows every login from an address after a failed one (anvil's auth penalty, kept in memory, not
        configurable in 2.3): a test that fails a login on purpose restarts the server so later logins are fast."""
        self.restart()

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def tail_log(self, lines: int = 20) -> str:
        texts = []
        for name in ("dovecot.log", "stderr.log"):
            path = self.root / name
            if path.exists():
                texts.append("\n".join(path.read_text(errors="replace").splitlines()[-lines:]))
        return "\n".join(texts)

    # --- users and mailboxes -------------------------------------------------------------------------------

    def add_user(self, name: str = "", *, address: str = "") -> MailUser:
        """A fresh mailbox user. Users are written to the passwd file before the server starts, because Dovecot
        re-reads that file at most once a second: a user added later could be refused for up to a second."""
        with self._lock:
            free = [u for u in self._pool if u.name not in self.users]
            if not free:
                raise RuntimeError(f"All {len(self._pool)} Dovecot test users are taken; raise USER_POOL.")
            pooled = free[0]
            user = MailUser(
                name=pooled.name, password=pooled.password, address=address or f"{name or pooled.name}@ourco.example"
            )
            self.users[user.name] = user
        return user

    @contextlib.contextmanager
    def client(self, user: MailUser | str) -> Iterator[imaplib.IMAP4]:
        user = self.users[user] if isinstance(user, str) else user
        conn = imaplib.IMAP4(self.host, self.port, timeout=10)
        try:
            conn.login(user.name, user.password)
            yield conn
        finally:
            with contextlib.suppress(Exception):
                conn.logout()

    def create_folder(self, user: MailUser | str, folder: str) -> None:
        with self.client(user) as conn:
            typ, data = conn.create(quote_mailbox(folder))
            if typ != "OK" and b"ALREADYEXISTS" not in b" ".join(d for d in data if isinstance(d, bytes)):
                raise RuntimeError(f"CREATE {folder} failed: {data}")

    def append(self, user: MailUser | str, folder: str, *messages: bytes, create: bool = True) -> list[int]:
        """APPEND messages to ``folder`` (created if missing) over one connection; returns their UIDs."""
        uids = []
        with self.client(user) as conn:
            if create and folder.upper() != "INBOX":
                conn.create(quote_mailbox(folder))
            for raw in messages:
                typ, data = conn.append(quote_mailbox(folder), "", None, raw)
                if typ != "OK":
                    raise RuntimeError(f"APPEND to {folder} failed: {data}")
                match = re.search(rb"APPENDUID \d+ (\d+)", data[0] or b"")
                uids.append(int(match.group(1)) if match else 0)
        return uids

    def status(self, user: MailUser | str, folder: str) -> dict[str, int]:
        with self.client(user) as conn:
            typ, data = conn.status(quote_mailbox(folder), "(MESSAGES UIDNEXT UIDVALIDITY)")
            if typ != "OK":
                raise RuntimeError(f"STATUS {folder} failed: {data}")
        text = data[0].decode()
        return {k.lower(): int(v) for k, v in re.findall(r"(MESSAGES|UIDNEXT|UIDVALIDITY) (\d+)", text)}

    def maildir(self, user: MailUser | str, folder: str) -> Path:
        name = user if isinstance(user, str) else user.name
        base = self.root / "mail" / name / "Maildir"
        return base if folder.upper() == "INBOX" else base / ("." + utf7_encode(folder).decode("ascii"))

    def reset_uidvalidity(self, user: MailUser | str, folder: str) -> None:
        """Make Dovecot forget the folder's UIDs, as a restored backup or a migrated server does: the messages stay,
        the next session renumbers them under a new UIDVALIDITY."""
        before = self.status(user, folder)["uidvalidity"]
        path = self.maildir(user, folder)
        for item in path.iterdir():
            if item.name == "dovecot-uidlist" or item.name.startswith("dovecot.index"):
                item.unlink()
        # The folder list index caches each folder's UIDVALIDITY too.
        root = self.maildir(user, "INBOX")
        for item in root.iterdir():
            if item.name.startswith("dovecot.list.index"):
                item.unlink()
        after = self.status(user, folder)["uidvalidity"]
        if after == before:
            raise RuntimeError(f"UIDVALIDITY of {folder} did not change ({before})")


def _group_name(gid: int) -> str:
    import grp

    return grp.getgrgid(gid).gr_name


def start_dovecot() -> Dovecot:
    root = Path(tempfile.mkdtemp(prefix="threadline-dovecot-"))
    server = Dovecot(root)
    server.start()
    return server


def remove_dovecot(server: Dovecot) -> None:
    server.stop()
    shutil.rmtree(server.root, ignore_errors=True)


# --- SMTP ------------------------------------------------------------------------------------------------------


@dataclass
class ReceivedMail:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes


@dataclass
class SmtpHandler:
    """Collects what it is sent. ``reject_with`` answers DATA with that reply (e.g. "451 try later");
    ``refuse_rcpt`` maps a recipient to the reply its RCPT TO gets."""

    messages: list[ReceivedMail] = field(default_factory=list)
    reject_with: str = ""
    refuse_rcpt: dict[str, str] = field(default_factory=dict)

    async def handle_RCPT(
        self, server: object, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        if address.lower() in self.refuse_rcpt:
            return self.refuse_rcpt[address.lower()]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: object, session: Session, envelope: Envelope) -> str:
        if self.reject_with:
            return self.reject_with
        self.messages.append(
            ReceivedMail(mail_from=envelope.mail_from or "", rcpt_tos=list(envelope.rcpt_tos), data=envelope.content)  # type: ignore[arg-type]
        )
        return "250 Message accepted for delivery"

    def reset(self) -> None:
        self.messages.clear()
        self.reject_with = ""
        self.refuse_rcpt.clear()


class _QuietController(Controller):
    def factory(self) -> SMTP:
        # AUTH without TLS is what these tests want; aiosmtpd warns about it on every connection.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            return super().factory()


class SmtpServer:
    """aiosmtpd on a free port. With ``users`` it requires AUTH (PLAIN/LOGIN, allowed without TLS here)."""

    def __init__(self, *, users: dict[str, str] | None = None) -> None:
        self.handler = SmtpHandler()
        self.users = users
        self.host = "127.0.0.1"
        self.port = free_port()
        kwargs: dict[str, object] = {}
        if users is not None:
            kwargs = {"authenticator": self._authenticate, "auth_required": True, "auth_require_tls": False}
        self.controller = _QuietController(self.handler, hostname=self.host, port=self.port, **kwargs)  # type: ignore[arg-type]

    def _authenticate(
        self, server: object, session: Session, envelope: Envelope, mechanism: str, auth_data: object
    ) -> AuthResult:
        if isinstance(auth_data, LoginPassword):
            user, password = auth_data.login.decode(), auth_data.password.decode()
            if self.users is not None and self.users.get(user) == password:
                return AuthResult(success=True)
        return AuthResult(success=False, handled=False)

    @property
    def messages(self) -> list[ReceivedMail]:
        return self.handler.messages

    def start(self) -> None:
        self.controller.start()

    def stop(self) -> None:
        self.controller.stop()
