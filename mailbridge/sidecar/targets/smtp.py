"""Relay through an SMTP server, streaming DATA from the spooled file."""

from __future__ import annotations

import logging
import smtplib
import socket
import ssl

from mailbridge.spec.models import TLSMode

from ..config import SMTPTarget
from ..errors import (
    AuthError,
    NetworkError,
    PermanentError,
    SidecarError,
    TemporaryError,
    TLSVerifyError,
)
from ..message import CHUNK, SpooledMessage
from ..tls import check_pin, client_context
from . import Envelope

log = logging.getLogger(__name__)


class SMTPDelivery:
    """Sends each message to the envelope recipient over one reused session.

    smtplib's `sendmail` needs the whole message in memory (and copies it);
    here only the commands go through smtplib and DATA is streamed.
    """

    can_probe = False
    probes_content = False

    def __init__(self, settings: SMTPTarget) -> None:
        self._settings = settings
        self._smtp: smtplib.SMTP | None = None

    def probe(self, message: SpooledMessage) -> str | None:
        return None

    def _session(self) -> smtplib.SMTP:
        if self._smtp is not None:
            return self._smtp
        s = self._settings
        context = client_context(s.ca_file)
        smtp: smtplib.SMTP | None = None
        try:
            if s.tls == TLSMode.IMPLICIT:
                smtp = smtplib.SMTP_SSL(
                    s.host, s.port, timeout=s.timeout, context=context
                )
            else:
                smtp = smtplib.SMTP(s.host, s.port, timeout=s.timeout)
                smtp.ehlo()
                if s.tls == TLSMode.STARTTLS:
                    smtp.starttls(context=context)
                    smtp.ehlo()
            if smtp.sock is not None:
                # The final "." must not wait for a delayed ACK (Nagle).
                smtp.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if s.fingerprint and isinstance(smtp.sock, ssl.SSLSocket):
                check_pin(smtp.sock, s.host, s.fingerprint)
            if s.username and s.password is not None:
                smtp.login(s.username, s.password.read())
        except BaseException as err:
            if smtp is not None:
                smtp.close()
            error = _session_error(s, err)
            if error is err:
                raise
            raise error from err
        self._smtp = smtp
        return smtp

    def deliver(self, message: SpooledMessage, envelope: Envelope) -> str | None:
        try:
            smtp = self._session()
        except SidecarError as err:
            # No session, no message sent: nothing ambiguous to probe later.
            err.not_delivered = True
            raise
        sent_dot = False
        sender, options = self._mail_from(smtp, envelope.sender)
        try:
            self._check(smtp.mail(sender, options), "MAIL FROM", smtp)
            self._check(smtp.rcpt(envelope.recipient), "RCPT TO", smtp)
            self._check(smtp.docmd("DATA"), "DATA", smtp, expect=354)
            self._stream(smtp, message)
            sent_dot = True
            code, reply = smtp.getreply()
        except TemporaryError as err:
            err.not_delivered = True
            raise
        except (smtplib.SMTPServerDisconnected, OSError) as err:
            self.close()
            raise NetworkError(
                f"smtp host={self._settings.host} connection broke: {err}",
                not_delivered=not sent_dot,
            ) from err
        self._check((code, reply), "end of DATA", smtp, final=True)
        return reply.decode("utf-8", "replace")

    def _mail_from(self, smtp: smtplib.SMTP, sender: str) -> tuple[str, list[str]]:
        """The reverse-path and MAIL options: `sender` of the settings, else
        the message's Return-Path. A non-ASCII one needs SMTPUTF8 (RFC 6531);
        without it the null sender is used, as the message is still
        deliverable and would otherwise never leave the account."""
        if self._settings.sender is not None:
            sender = self._settings.sender
        if sender.isascii():
            return sender, []
        if smtp.has_extn("smtputf8"):
            return sender, ["SMTPUTF8"]
        log.warning(
            "smtp host=%s does not offer SMTPUTF8; non-ASCII return path "
            "replaced by the null sender",
            self._settings.host,
        )
        return "", []

    def _stream(self, smtp: smtplib.SMTP, message: SpooledMessage) -> None:
        sock = smtp.sock
        if sock is None:
            raise NetworkError(f"smtp host={self._settings.host} is not connected")
        pending = b""
        line_start = True
        for chunk in message.chunks():
            pending += chunk
            cut = pending.rfind(b"\n") + 1
            if cut == 0 and len(pending) < 4 * CHUNK:
                continue
            # One very long line goes in pieces, never split inside a CRLF.
            cut = cut or len(pending) - pending.endswith(b"\r")
            block, pending = pending[:cut], pending[cut:]
            sock.sendall(_stuff(block, line_start))
            line_start = block.endswith(b"\n")
        tail = _stuff(pending, line_start) if pending else b""
        if tail or not line_start:
            tail += b"\r\n"
        sock.sendall(tail + b".\r\n")

    def _check(
        self,
        reply: tuple[int, bytes],
        step: str,
        smtp: smtplib.SMTP,
        expect: int | None = None,
        final: bool = False,
    ) -> None:
        """Raise for a reply other than `expect` (or 2xx). A 4xx means the
        server did not take the message; a lost reply after the final dot
        (code -1) leaves that open."""
        code, text = reply
        if (expect is not None and code == expect) or (
            expect is None and 200 <= code < 300
        ):
            return
        detail = f"{code} {text.decode('utf-8', 'replace')}"
        host = self._settings.host
        try:
            smtp.rset()
        except (smtplib.SMTPException, OSError):
            self.close()
        if 500 <= code < 600:
            raise PermanentError(f"smtp host={host} {step} rejected: {detail}")
        if code == -1 or code == 421:
            self.close()
            raise NetworkError(
                f"smtp host={host} {step} failed: {detail}",
                not_delivered=not final or code == 421,
            )
        raise TemporaryError(
            f"smtp host={host} {step} deferred: {detail}",
            not_delivered=True,
            refused=True,
        )

    def close(self) -> None:
        smtp, self._smtp = self._smtp, None
        if smtp is None:
            return
        try:
            smtp.quit()
        except (TimeoutError, smtplib.SMTPException, OSError):
            smtp.close()


def _stuff(block: bytes, line_start: bool) -> bytes:
    """CRLF line ends and dot-stuffing (RFC 5321 section 4.5.2) for a block
    that ends at a line end (or inside one very long line)."""
    if block.count(b"\n") != block.count(b"\r\n"):
        block = block.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    if b"\n." in block:
        block = block.replace(b"\n.", b"\n..")
    if line_start and block[:1] == b".":
        block = b"." + block
    return block


def _session_error(settings: SMTPTarget, err: BaseException) -> BaseException:
    """The sidecar's error for a failed SMTP session set-up."""
    host = settings.host
    if isinstance(err, smtplib.SMTPAuthenticationError):
        return AuthError(f"smtp host={host} refused the login: {err.smtp_code}")
    if isinstance(err, ssl.SSLCertVerificationError):
        return TLSVerifyError(
            f"smtp host={host} certificate rejected: {err.verify_message}"
        )
    if isinstance(err, smtplib.SMTPException | OSError):
        return NetworkError(
            f"smtp host={host} port={settings.port} connect failed: {err}"
        )
    return err
