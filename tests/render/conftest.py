"""The render tests run the real mail programs: install them when missing."""

from __future__ import annotations

import pytest

from tests.servers.packages import ensure_packages

# What tests/render starts or asks (postfix check, doveconf, opendkim -n, ...).
PACKAGES = [
    "postfix",
    "dovecot-core",
    "dovecot-pop3d",
    "dovecot-imapd",
    "dovecot-lmtpd",
    "postsrsd",
    "opendkim",
    "opendkim-tools",
    "rspamd",
]


@pytest.fixture(scope="session", autouse=True)
def mail_packages() -> None:
    ensure_packages(PACKAGES)
