"""Fixtures of the mail integration tests: a throwaway Dovecot IMAP server per test."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests.conftest import missing
from tests.integrations.email.dovecot import DOVECOT, Dovecot, version


@pytest.fixture
def make_dovecot() -> Iterator[Callable[..., Dovecot]]:
    """Start a Dovecot of the test's own (`capability` as Dovecot's); all are stopped and removed
    after the test. Fails in CI, skips elsewhere, when Debian's dovecot-imapd is not installed."""
    if not DOVECOT.exists():
        missing("Dovecot (Debian package dovecot-imapd)")
    found = version()
    if not found.startswith("2.3"):  # the helper writes a 2.3 config; 2.4 renamed most settings
        missing(f"Dovecot 2.3 (Debian 12's dovecot-imapd; found {found})")
    servers: list[Dovecot] = []

    def make(capability: str | None = None) -> Dovecot:
        server = Dovecot(capability=capability)
        servers.append(server)
        server.start()
        return server

    yield make
    for server in servers:
        server.close()


@pytest.fixture
def dovecot(make_dovecot: Callable[..., Dovecot]) -> Dovecot:
    """A running Dovecot with one empty INBOX."""
    return make_dovecot()
