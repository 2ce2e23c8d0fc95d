"""A small POP3 client (RFC 1939, 2449, 2595, 5034) that streams RETR.

The standard library's poplib holds a whole message as a list of lines;
this client writes each line to a SpooledMessage as it arrives.
"""

from __future__ import annotations

import base64
import io
import logging
import socket
import ssl
from collections.abc import Callable
from typing import cast

from mailbridge.spec.models import TLSMode

from .errors import AuthError, NetworkError, ProtocolError, TLSVerifyError
from .message import CHUNK, SpooledMessage
from .tls import wrap

log = logging.getLogger(__name__)

# RFC 2449 section 4: a response line is at most 512 octets; allow slack.
MAX_RESPONSE = 8192


class POP3Client:
    """One POP3 session. Use as a context manager; `quit` commits deletions.

    Every network failure surfaces as NetworkError, a refused login as
    AuthError, a certificate problem as TLSVerifyError.
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        tls: TLSMode,
        ca_file: str | None = None,
        fingerprint: str | None = None,
        timeout: float = 60.0,
    ) -> None:
        self.host = host
        self.port = port
        self._tls = tls
        self._ca_file = ca_file
        self._fingerprint = fingerprint
        self._timeout = timeout
        self._sock: socket.socket | None = None
        self._reader: io.BufferedReader | None = None

    def __enter__(self) -> POP3Client:
        if self._sock is None:
            self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def connect(self) -> None:
        try:
            sock = socket.create_connection((self.host, self.port), self._timeout)
            # Small commands must not wait for delayed ACKs (Nagle).
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError as err:
            raise NetworkError(
                f"pop3 connect host={self.host} port={self.port} failed: {err}"
            ) from err
        if self._tls == TLSMode.IMPLICIT:
            sock = self._wrap(sock)
        self._attach(sock)
        self._expect_ok(self._readline(), "greeting")
        if self._tls == TLSMode.STARTTLS:
            self._starttls()

    def _wrap(self, sock: socket.socket) -> ssl.SSLSocket:
        return wrap(
            sock, self.host, ca_file=self._ca_file, fingerprint=self._fingerprint
        )

    def _attach(self, sock: socket.socket) -> None:
        self._sock = sock
        self._reader = cast(io.BufferedReader, sock.makefile("rb", buffering=CHUNK))

    def _starttls(self) -> None:
        capabilities = self.capa()
        if "STLS" not in capabilities:
            self.close()
            raise TLSVerifyError(
                f"pop3 host={self.host} does not offer STLS; refusing plaintext"
            )
        self.command("STLS")
        assert self._sock is not None
        # Anything buffered before the handshake would be an injection (RFC 2595).
        raw = self._sock
        self._sock = None
        self._attach(self._wrap(raw))

    def capa(self) -> set[str]:
        try:
            self.command("CAPA")
        except ProtocolError:
            return set()
        return {
            line.split(b" ")[0].decode("ascii", "replace").upper()
            for line in self._multiline()
        }

    # -- authentication ---------------------------------------------------

    def login_user(self, username: str, password: str) -> None:
        self.command(f"USER {username}", auth=True)
        self.command(f"PASS {password}", auth=True, secret=True)

    def login_plain(self, username: str, password: str) -> None:
        token = f"\0{username}\0{password}".encode()
        self._sasl("PLAIN", base64.b64encode(token).decode("ascii"))

    def login_xoauth2(self, username: str, access_token: str) -> None:
        token = f"user={username}\x01auth=Bearer {access_token}\x01\x01".encode()
        self._sasl("XOAUTH2", base64.b64encode(token).decode("ascii"))

    def _sasl(self, mechanism: str, initial: str) -> None:
        self._send(f"AUTH {mechanism} {initial}")
        line = self._readline()
        if line == b"+" or line.startswith(b"+ "):
            # A challenge here carries the server's error details (XOAUTH2);
            # an empty reply ends the exchange with -ERR.
            self._send("")
            line = self._readline()
        if not line.startswith(b"+OK"):
            raise AuthError(
                f"pop3 host={self.host} AUTH {mechanism} refused: {_text(line)}"
            )

    # -- transaction ------------------------------------------------------

    def uidl(self) -> dict[str, int]:
        """UIDL -> message number for every message in the maildrop."""
        self.command("UIDL")
        # RFC 1939 section 7: "n uid", uid of printable ASCII 0x21 to 0x7E.
        pairs = (line.split(None, 1) for line in self._multiline())
        return {uid.decode("ascii", "replace"): int(n) for n, uid in pairs}

    def list_sizes(self) -> dict[int, int]:
        self.command("LIST")
        sizes: dict[int, int] = {}
        for line in self._multiline():
            number, _, size = line.decode("ascii", "replace").partition(" ")
            sizes[int(number)] = int(size.split()[0])
        return sizes

    def retr(
        self,
        number: int,
        spool_dir: str | None = None,
        on_bytes: Callable[[int], None] | None = None,
    ) -> SpooledMessage:
        """Stream message `number` into a SpooledMessage, dot-unstuffed."""
        self.command(f"RETR {number}")
        message = SpooledMessage(spool_dir)
        try:
            self._stream_into(message, on_bytes)
        except BaseException:
            message.close()
            raise
        return message

    def _stream_into(
        self, message: SpooledMessage, on_bytes: Callable[[int], None] | None
    ) -> None:
        """Copy the multi-line response in blocks that end at a line end, so
        dot-unstuffing and the end marker are found with bytes operations."""
        reader = self._require_reader()
        pending = b""
        line_start = True
        while True:
            try:
                chunk = reader.read1(CHUNK)
            except OSError as err:
                raise NetworkError(f"pop3 host={self.host} RETR broke: {err}") from err
            if not chunk:
                raise NetworkError(f"pop3 host={self.host} closed during RETR")
            pending += chunk
            cut = pending.rfind(b"\n") + 1
            if cut == 0:
                if len(pending) < 4 * CHUNK:
                    continue
                cut = len(pending)  # one very long line: pass it on in pieces
            block, pending = pending[:cut], pending[cut:]
            data, done = _unstuff(block, line_start)
            message.write(data)
            if on_bytes is not None:
                on_bytes(len(data))
            if done:
                return
            line_start = block.endswith(b"\n")

    def dele(self, number: int) -> None:
        self.command(f"DELE {number}")

    def noop(self) -> None:
        self.command("NOOP")

    def quit(self) -> None:
        """End the session; the server commits DELEs only now (RFC 1939 6)."""
        self.command("QUIT")
        self.close()

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    # -- wire ---------------------------------------------------------------

    def command(self, line: str, *, auth: bool = False, secret: bool = False) -> bytes:
        """Send one command, return its +OK line; -ERR raises."""
        self._send(line)
        reply = self._readline()
        if reply.startswith(b"+OK"):
            return reply
        verb = line.split(" ", 1)[0]
        shown = verb if secret else line
        error = AuthError if auth else ProtocolError
        raise error(f"pop3 host={self.host} {shown} failed: {_text(reply)}")

    def _send(self, line: str) -> None:
        if self._sock is None:
            raise NetworkError(f"pop3 host={self.host} is not connected")
        try:
            self._sock.sendall(line.encode("utf-8") + b"\r\n")
        except OSError as err:
            raise NetworkError(f"pop3 host={self.host} send failed: {err}") from err

    def _readline(self) -> bytes:
        reader = self._require_reader()
        try:
            line = reader.readline(MAX_RESPONSE)
        except OSError as err:
            raise NetworkError(f"pop3 host={self.host} read failed: {err}") from err
        if not line:
            raise NetworkError(f"pop3 host={self.host} closed the connection")
        return line.rstrip(b"\r\n")

    def _multiline(self) -> list[bytes]:
        """The lines of a multi-line response, read in blocks: a UIDL listing
        of 10,000 messages arrives in a few reads, not 10,000."""
        reader = self._require_reader()
        data = bytearray()
        while not (data == b".\r\n" or data.endswith(b"\r\n.\r\n")):
            try:
                chunk = reader.read1(CHUNK)
            except OSError as err:
                raise NetworkError(f"pop3 host={self.host} read failed: {err}") from err
            if not chunk:
                raise NetworkError(f"pop3 host={self.host} closed the connection")
            data += chunk
        lines = bytes(data[:-3]).split(b"\r\n")[:-1] if len(data) > 3 else []
        return [line[1:] if line.startswith(b"..") else line for line in lines]

    def _expect_ok(self, line: bytes, what: str) -> None:
        if not line.startswith(b"+OK"):
            raise ProtocolError(f"pop3 host={self.host} bad {what}: {_text(line)}")

    def _require_reader(self) -> io.BufferedReader:
        if self._reader is None:
            raise NetworkError(f"pop3 host={self.host} is not connected")
        return self._reader


def _unstuff(block: bytes, line_start: bool) -> tuple[bytes, bool]:
    """Undo dot-stuffing in a block of whole lines (RFC 1939 section 3) and
    find the terminating "." line; returns (data, terminated)."""
    if line_start and block[:3] in (b".\r\n", b".\n"):
        return b"", True
    ends = [i for i in (block.find(b"\n.\r\n"), block.find(b"\n.\n")) if i != -1]
    if ends:
        block = block[: min(ends) + 1]
    if line_start and block[:2] == b"..":
        block = block[1:]
    if b"\n.." in block:
        block = block.replace(b"\n..", b"\n.")
    return block, bool(ends)


def _text(line: bytes) -> str:
    return line.decode("utf-8", "replace").strip()[:200]
