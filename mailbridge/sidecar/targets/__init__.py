"""Delivery targets: where the sidecar puts a message (gmail-api, imap, smtp)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from mailbridge.spec.models import Via

from ..config import Account, IMAPTarget
from ..message import SpooledMessage


@dataclass(frozen=True)
class Envelope:
    """Who the message is for; the sender is the message's Return-Path."""

    recipient: str
    sender: str


class Target(Protocol):
    """Delivers messages; `deliver` returns once the target confirmed.

    `deliver` raises TemporaryError (try again later) or PermanentError (this
    message will never be accepted). `probe` answers whether the message is
    already there (by Message-ID, or by content where `probes_content`): the
    target's id, or None.
    """

    can_probe: bool
    # Whether `probe` also finds a message that has no Message-ID.
    probes_content: bool

    def deliver(self, message: SpooledMessage, envelope: Envelope) -> str | None: ...

    def probe(self, message: SpooledMessage) -> str | None: ...

    def close(self) -> None: ...


def make_target(account: Account) -> Target:
    """The target an account's `via` names, built from its settings."""
    if account.via == Via.SMTP:
        from .smtp import SMTPDelivery

        assert account.smtp is not None
        return SMTPDelivery(account.smtp)
    if account.via == Via.IMAP:
        from .imap import IMAPDelivery

        settings = account.imap or IMAPTarget()
        return IMAPDelivery(settings, settings.username or account.deliver_to)
    from .gmail import GmailDelivery

    gmail = account.gmail_api
    assert gmail is not None
    return GmailDelivery(gmail, retry_base=gmail.retry_base_seconds)
