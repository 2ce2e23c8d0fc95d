"""A message on its way through: spooled to a temp file, hashed, its ID read."""

from __future__ import annotations

import hashlib
import re
import tempfile
from collections.abc import Iterator
from typing import IO

# Keep at most this much of a message in memory; the rest spills to disk
# (200 accounts, each with a message in flight and two prefetched, stay
# under 80 MB).
MEMORY_LIMIT = 128 * 1024
# Headers past this size are not searched for a Message-ID.
HEADER_LIMIT = 256 * 1024
CHUNK = 64 * 1024

_MESSAGE_ID = re.compile(rb"^message-id:[ \t]*(.*?)\s*$", re.IGNORECASE | re.DOTALL)


class SpooledMessage:
    """Bytes of one message in CRLF wire form, written once, read many times.

    Small messages stay in memory; larger ones go to a temp file in
    `spool_dir`, so a 50 MB message costs a few chunks of memory, not 50 MB.
    """

    def __init__(self, spool_dir: str | None = None) -> None:
        self._file: IO[bytes] = tempfile.SpooledTemporaryFile(  # noqa: SIM115
            max_size=MEMORY_LIMIT, dir=spool_dir, prefix="msg-"
        )
        self._hash = hashlib.sha256()
        self._header = bytearray()
        self._in_header = True
        self.size = 0

    def write(self, data: bytes) -> None:
        """Append bytes exactly as received (CRLF wire form, unstuffed)."""
        self._file.write(data)
        self._hash.update(data)
        self.size += len(data)
        if self._in_header:
            self._collect_header(data)

    # Lines and blocks are the same to the spool.
    write_line = write

    def _collect_header(self, data: bytes) -> None:
        start = max(0, len(self._header) - 3)
        self._header += data[: HEADER_LIMIT - len(self._header)]
        if self._header[:2] == b"\r\n" or self._header[:1] == b"\n":
            # No header at all: the message starts with its body.
            self._header.clear()
            self._in_header = False
            return
        for separator in (b"\r\n\r\n", b"\n\n"):
            end = self._header.find(separator, start)
            if end != -1:
                del self._header[end + len(separator) // 2 :]
                self._in_header = False
                return
        if len(self._header) >= HEADER_LIMIT:
            self._in_header = False

    @property
    def sha256(self) -> str:
        return self._hash.hexdigest()

    @property
    def header(self) -> bytes:
        return bytes(self._header)

    @property
    def message_id(self) -> str | None:
        """The Message-ID header's value, unfolded, or None when absent."""
        for field in _unfold(bytes(self._header)):
            match = _MESSAGE_ID.match(field)
            if match:
                value = match.group(1).decode("ascii", "replace").strip()
                return value or None
        return None

    def header_value(self, name: str) -> str | None:
        prefix = name.lower().encode() + b":"
        for field in _unfold(bytes(self._header)):
            if field.lower().startswith(prefix):
                return field[len(prefix) :].strip().decode("utf-8", "replace")
        return None

    @property
    def dedupe_key(self) -> str:
        """Message-ID when present, else a hash of the content (RFC 5322 3.6.4
        makes Message-ID optional)."""
        message_id = self.message_id
        if message_id:
            return "mid:" + message_id
        return "sha256:" + self.sha256

    def chunks(self, size: int = CHUNK) -> Iterator[bytes]:
        self._file.seek(0)
        while True:
            chunk = self._file.read(size)
            if not chunk:
                return
            yield chunk

    def lines(self) -> Iterator[bytes]:
        """Lines in CRLF form, long lines in pieces of at most CHUNK bytes."""
        self._file.seek(0)
        while True:
            line = self._file.readline(CHUNK)
            if not line:
                return
            yield line

    def read_all(self) -> bytes:
        """The whole message in memory: for tests and small messages only."""
        return b"".join(self.chunks())

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> SpooledMessage:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _unfold(header: bytes) -> Iterator[bytes]:
    """Header fields with continuation lines joined (RFC 5322 2.2.3)."""
    current = b""
    for line in header.splitlines():
        if line[:1] in (b" ", b"\t") and current:
            current += b" " + line.strip()
            continue
        if current:
            yield current
        current = line
    if current:
        yield current
