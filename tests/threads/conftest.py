"""Fixtures of the threads tests: real mail servers (Dovecot for IMAP, aiosmtpd for SMTP)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.conftest import require_service
from tests.threads.mailservers import DOVECOT_BINARY, Dovecot, MailUser, SmtpServer, remove_dovecot, start_dovecot


@pytest.fixture(scope="session")
def _dovecot_server() -> Iterator[Dovecot | str]:
    if not os.access(DOVECOT_BINARY, os.X_OK):
        yield f"{DOVECOT_BINARY} is missing (apt-get install dovecot-imapd; .ci/run does it)"
        return
    try:
        server = start_dovecot()
    except (OSError, RuntimeError) as exc:
        yield f"Dovecot failed to start: {exc}"
        return
    try:
        yield server
    finally:
        remove_dovecot(server)


@pytest.fixture
def dovecot(_dovecot_server: Dovecot | str) -> Iterator[Dovecot]:
    """The session's Dovecot, running. A test that stops it gets it restarted for the next one."""
    if isinstance(_dovecot_server, str):
        require_service("Dovecot", _dovecot_server)
    server = _dovecot_server
    assert isinstance(server, Dovecot)
    server.start()
    yield server
    server.start()


@pytest.fixture
def mail_user(dovecot: Dovecot) -> MailUser:
    """A fresh Dovecot mailbox user (unique per test, so tests never see each other's mail)."""
    return dovecot.add_user()


@pytest.fixture(scope="session")
def _smtp_servers() -> Iterator[tuple[SmtpServer, SmtpServer]]:
    open_relay = SmtpServer()
    with_auth = SmtpServer(users={"sales": "smtp-secret"})
    open_relay.start()
    with_auth.start()
    try:
        yield open_relay, with_auth
    finally:
        open_relay.stop()
        with_auth.stop()


@pytest.fixture
def smtp_server(_smtp_servers: tuple[SmtpServer, SmtpServer]) -> SmtpServer:
    """aiosmtpd without AUTH; ``.messages`` is what it received in this test."""
    server = _smtp_servers[0]
    server.handler.reset()
    return server


@pytest.fixture
def smtp_auth_server(_smtp_servers: tuple[SmtpServer, SmtpServer]) -> SmtpServer:
    """aiosmtpd requiring AUTH as sales / smtp-secret."""
    server = _smtp_servers[1]
    server.handler.reset()
    return server
