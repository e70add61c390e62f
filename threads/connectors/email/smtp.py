"""SMTP sender: headers decided before the message is stored (``prepare_email``), delivery from a task
(``send_email``).

Our Message-ID ``<tl.THREAD.RANDOM@MAIL_MESSAGE_ID_DOMAIN>`` is chosen in ``prepare_email`` and stored as the
message's external id (without brackets, as mime.py reads ids), so the copy that later shows up in the Sent folder
is the same message, and a contact's reply that only quotes our id in References still finds its thread.

Account settings (``account.config``): ``smtp_host`` (default: ``imap_host``), ``smtp_port`` (465 for ssl, 587 for
starttls, 25 for none), ``smtp_security`` ("ssl", "starttls" or "none"; default starttls), ``append_sent`` (also
APPEND the sent copy to the IMAP Sent folder, for servers that do not save it themselves). Credentials:
``smtp_username``/``smtp_password`` in the credentials JSON, else the IMAP ``username``/``password``.
"""

from __future__ import annotations

import contextlib
import imaplib
import logging
import secrets
import smtplib
import ssl
import time
from email.message import EmailMessage
from email.utils import format_datetime, formataddr
from typing import Any

from django.conf import settings
from django.utils import timezone

from threads.connectors import (
    ChannelAuthError,
    ChannelUnavailable,
    ConnectorError,
    OutgoingDraft,
    Party,
    SendResult,
    credentials_of,
)
from threads.connectors.email.imap import DEFAULT_SENT_FOLDER, imap_session, quote_mailbox
from threads.models import ChannelAccount

log = logging.getLogger(__name__)

TIMEOUT = 30  # seconds; a hung server fails this attempt and the task retries with back-off
_RE_PREFIXES = ("re:", "aw:", "sv:", "antw:", "ref:")


def new_message_id(thread_pk: int) -> str:
    return f"tl.{thread_pk}.{secrets.token_hex(8)}@{settings.MAIL_MESSAGE_ID_DOMAIN}"


def reply_subject(subject: str) -> str:
    subject = (subject or "").strip()
    if not subject:
        return ""
    return subject if subject.lower().startswith(_RE_PREFIXES) else f"Re: {subject}"


def _references_of(message: Any) -> list[str]:
    """The References chain of a stored message: parsed from the mail (inbound, Sent folder) or the draft we sent."""
    meta = message.meta or {}
    refs = meta.get("references")
    if refs is None:
        refs = (meta.get("draft") or {}).get("references") or []
    return [str(r) for r in refs if r]


def prepare_email(account: ChannelAccount, draft: OutgoingDraft, thread: Any, reply_to: Any) -> OutgoingDraft:
    """Choose the Message-ID and the reply headers before the message is stored."""
    draft.external_id = new_message_id(thread.pk)
    draft.from_address = draft.from_address or account.address
    if reply_to is not None and reply_to.channel == "email" and reply_to.external_id:
        parent = reply_to.external_id
        refs = [r for r in _references_of(reply_to) if r != parent]
        draft.in_reply_to = parent
        # RFC 5322 §3.6.4: the parent's References plus the parent; keep the root and the newest when it grows long.
        chain = [*refs, parent]
        draft.references = chain if len(chain) <= 20 else [chain[0], *chain[-19:]]
        draft.provider_thread_key = reply_to.provider_thread_key or (refs[0] if refs else parent)
        if not draft.subject.strip():
            draft.subject = reply_subject(reply_to.subject)
    else:
        draft.provider_thread_key = draft.external_id
    return draft


def _bracket(message_id: str) -> str:
    message_id = message_id.strip()
    return message_id if message_id.startswith("<") else f"<{message_id}>"


def _address(party: Party) -> str:
    return formataddr((party.name, party.address)) if party.name else party.address


def build_email(account: ChannelAccount, draft: OutgoingDraft) -> EmailMessage:
    msg = EmailMessage()
    from_address = draft.from_address or account.address
    msg["From"] = formataddr((account.name, from_address)) if account.name else from_address
    msg["To"] = ", ".join(_address(p) for p in draft.to)
    if draft.cc:
        msg["Cc"] = ", ".join(_address(p) for p in draft.cc)
    msg["Subject"] = draft.subject
    msg["Date"] = format_datetime(timezone.now())
    msg["Message-ID"] = _bracket(draft.external_id)
    if draft.in_reply_to:
        msg["In-Reply-To"] = _bracket(draft.in_reply_to)
    if draft.references:
        msg["References"] = " ".join(_bracket(r) for r in draft.references)
    msg.set_content(draft.body_text)
    for attachment in draft.attachments:
        if attachment.data is None:
            continue  # omitted when it was stored (too large): nothing to send
        maintype, _, subtype = (attachment.content_type or "application/octet-stream").partition("/")
        if not subtype or maintype == "multipart":
            maintype, subtype = "application", "octet-stream"
        msg.add_attachment(attachment.data, maintype=maintype, subtype=subtype, filename=attachment.name)
        if maintype == "text" and _is_utf8(attachment.data):
            # Bytes go out base64 without a charset, which readers take for ASCII: say what they are.
            msg.get_payload()[-1].set_param("charset", "utf-8")
    return msg


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _smtp_settings(account: ChannelAccount) -> tuple[str, int, str, str, str]:
    config = account.config or {}
    host = str(config.get("smtp_host") or config.get("imap_host") or "").strip()
    if not host:
        raise ConnectorError(f"{account.name} has no SMTP server: set smtp_host in its settings.")
    security = str(config.get("smtp_security") or "starttls").lower()
    if security not in ("ssl", "starttls", "none"):
        raise ConnectorError(f"smtp_security of {account.name} must be ssl, starttls or none, not {security!r}.")
    port = int(config.get("smtp_port") or {"ssl": 465, "starttls": 587, "none": 25}[security])
    creds = credentials_of(account)
    username = str(creds.get("smtp_username") or creds.get("username") or "")
    password = str(creds.get("smtp_password") or creds.get("password") or "")
    return host, port, security, username, password


def _reply_text(code: int, reply: bytes | str) -> str:
    text = reply.decode(errors="replace") if isinstance(reply, bytes) else str(reply)
    return f"{code} {text}".strip()


def send_email(account: ChannelAccount, draft: OutgoingDraft) -> SendResult:
    """Deliver ``draft`` through the account's SMTP server. Refused credentials → ChannelAuthError; an outage or a
    temporary (4xx) answer → ChannelUnavailable (the task retries); a permanent (5xx) refusal → ConnectorError."""
    host, port, security, username, password = _smtp_settings(account)
    where = f"{host}:{port}"
    msg = build_email(account, draft)
    envelope_from = draft.from_address or account.address
    recipients = list(dict.fromkeys(p.address for p in [*draft.to, *draft.cc] if p.address))
    if not recipients:
        raise ConnectorError("The message has no recipient address.")
    try:
        if security == "ssl":
            smtp: smtplib.SMTP = smtplib.SMTP_SSL(host, port, timeout=TIMEOUT, context=ssl.create_default_context())
        else:
            smtp = smtplib.SMTP(host, port, timeout=TIMEOUT)
        try:
            if security == "starttls":
                smtp.starttls(context=ssl.create_default_context())
            smtp.ehlo_or_helo_if_needed()
            # A relay that does not offer AUTH (an internal smarthost) takes mail without it.
            if username and password and smtp.has_extn("auth"):
                smtp.login(username, password)
            refused = smtp.send_message(msg, from_addr=envelope_from, to_addrs=recipients)
        finally:
            with contextlib.suppress(Exception):
                smtp.quit()
    except smtplib.SMTPAuthenticationError as exc:
        raise ChannelAuthError(
            f"SMTP login refused for {username} on {where}: check the user name and password "
            f"({_reply_text(exc.smtp_code, exc.smtp_error)})"
        ) from exc
    except smtplib.SMTPRecipientsRefused as exc:
        answers = {addr: _reply_text(code, text) for addr, (code, text) in exc.recipients.items()}
        detail = "; ".join(f"{addr}: {answer}" for addr, answer in answers.items())
        if all(code >= 500 for code, _ in exc.recipients.values()):
            raise ConnectorError(f"The mail server refused every recipient: {detail}") from exc
        raise ChannelUnavailable(f"The mail server cannot take the recipients right now: {detail}") from exc
    except (smtplib.SMTPSenderRefused, smtplib.SMTPDataError, smtplib.SMTPHeloError) as exc:
        answer = _reply_text(exc.smtp_code, exc.smtp_error)
        if 400 <= exc.smtp_code < 500:
            raise ChannelUnavailable(f"The mail server {where} asked us to try later: {answer}") from exc
        raise ConnectorError(f"The mail server {where} refused the message: {answer}") from exc
    except smtplib.SMTPNotSupportedError as exc:
        raise ConnectorError(f"The mail server {where} does not support what this account needs: {exc}") from exc
    except (smtplib.SMTPServerDisconnected, smtplib.SMTPConnectError, smtplib.SMTPResponseException) as exc:
        raise ChannelUnavailable(f"The mail server {where} is not answering properly: {exc}") from exc
    except OSError as exc:  # refused, unreachable, timed out, TLS failure (ssl.SSLError is an OSError)
        raise ChannelUnavailable(f"Cannot reach the mail server {where}: {exc or type(exc).__name__}") from exc
    meta: dict[str, Any] = {"smtp": where}
    if refused:
        # Accepted for some recipients: the message is sent; say who did not get it.
        meta["refused"] = {addr: _reply_text(code, text) for addr, (code, text) in refused.items()}
    if (account.config or {}).get("append_sent"):
        meta["sent_copy"] = _append_sent_copy(account, msg)
    return SendResult(external_id=draft.external_id, meta=meta)


def _append_sent_copy(account: ChannelAccount, msg: EmailMessage) -> str:
    """Save the sent mail in the IMAP Sent folder. The mail is already sent: a failure here is reported in the
    message's meta, never retried as a send."""
    folder = str((account.config or {}).get("sent_folder") or DEFAULT_SENT_FOLDER)
    try:
        with imap_session(account) as conn:
            mailbox, raw = quote_mailbox(folder), msg.as_bytes()
            typ, data = conn.append(mailbox, r"(\Seen)", imaplib.Time2Internaldate(time.time()), raw)
            if typ != "OK" and b"TRYCREATE" in b" ".join(d for d in data if isinstance(d, bytes)):
                # RFC 3501 §6.3.11: the folder does not exist yet; create it and try once more.
                conn.create(mailbox)
                typ, data = conn.append(mailbox, r"(\Seen)", imaplib.Time2Internaldate(time.time()), raw)
    except ConnectorError as exc:
        log.warning("channel account %s: could not save the sent copy: %s", account.pk, exc)
        return f"not saved: {exc}"
    if typ != "OK":
        text = " ".join(d.decode(errors="replace") for d in data if isinstance(d, bytes))
        return f"not saved: {text}"
    return "saved"
