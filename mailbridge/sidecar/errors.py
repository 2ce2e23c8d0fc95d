"""Failure kinds of the sidecar: a retry decision is a type check."""

from __future__ import annotations

from typing import Any


class SidecarError(Exception):
    """Base of every failure the sidecar handles; `kind` labels metrics."""

    kind = "error"
    # True when the target surely did not take the message (a refused
    # connection, an SMTP 4xx, a break before the final dot): after such a
    # failure no probe or "delivery ambiguous" warning is needed.
    not_delivered = False
    # True when the target answered and turned this one message away for
    # now (an SMTP 4xx reply to it): the target itself is up, so the mail
    # behind a message it keeps refusing can still go.
    refused = False


class TemporaryError(SidecarError):
    """Worth retrying later: network trouble, SMTP 4xx, a rate limit."""

    kind = "temporary"

    def __init__(
        self,
        message: str,
        *,
        retry_after: float | None = None,
        not_delivered: bool = False,
        refused: bool = False,
    ) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.not_delivered = not_delivered
        self.refused = refused


class NetworkError(TemporaryError):
    """The connection failed or broke; nothing was confirmed."""

    kind = "network"


class AuthError(TemporaryError):
    """A login was refused; retried with backoff since passwords get fixed."""

    kind = "auth"


class ProtocolError(TemporaryError):
    """The server said something the protocol does not allow here."""

    kind = "protocol"

    def __init__(
        self, message: str, *, response_code: str | None = None, **kwargs: Any
    ) -> None:
        super().__init__(message, **kwargs)
        # The response code of a refusal (IMAP `TRYCREATE`, ...), if it had one.
        self.response_code = response_code


class PermanentError(SidecarError):
    """The target refused this message for good (SMTP 5xx, a rejected import)."""

    kind = "permanent"


class TLSVerifyError(SidecarError):
    """The server's certificate failed verification or its pin; never retried
    silently: the account stays in error until the config or server changes."""

    kind = "tls"


class ConfigError(SidecarError):
    """Something the config points at is missing (a secret file, a variable);
    retried with backoff, as the deploy may be about to write it."""

    kind = "config"
