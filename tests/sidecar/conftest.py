"""Fixtures of the sidecar tests: real Dovecot, smtp-sink, PostgreSQL."""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator

import pytest

from tests.servers.dovecot import dovecot  # noqa: F401 - a fixture
from tests.servers.postgres import PostgresServer, postgres  # noqa: F401
from tests.sidecar.gmail_standin import GmailStandIn
from tests.sidecar.helpers import SmtpSink

_users = itertools.count(1)


@pytest.fixture
def user_name(request: pytest.FixtureRequest) -> str:
    """A user name no other test uses (the Dovecot is shared)."""
    base = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower())[:24]
    return f"u{next(_users)}-{base.strip('-')}"


@pytest.fixture
def smtp_sink() -> Iterator[SmtpSink]:
    sink = SmtpSink()
    try:
        yield sink
    finally:
        sink.stop()


@pytest.fixture
def gmail() -> Iterator[GmailStandIn]:
    """The local stand-in for Gmail's API (Google is unreachable here)."""
    standin = GmailStandIn()
    standin.start()
    try:
        yield standin
    finally:
        standin.stop()


@pytest.fixture
def postgres_dsn(request: pytest.FixtureRequest) -> str:
    """A fresh database on the session's real PostgreSQL."""
    server: PostgresServer = request.getfixturevalue("postgres")
    return server.create_database()
