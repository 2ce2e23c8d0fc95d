"""APPEND into an IMAP folder (RFC 3501), streaming the message literal."""

from __future__ import annotations

import base64
import email.utils
import hashlib
import logging
import re
import socket
from typing import IO, NoReturn, cast

from mailbridge.spec.models import TLSMode

from ..config import IMAPTarget
from ..errors import (
    AuthError,
    NetworkError,
    PermanentError,
    ProtocolError,
    SidecarError,
)
from ..message import CHUNK, SpooledMessage
from ..oauth import TokenSource
from ..tls import wrap
from . import Envelope

log = logging.getLogger(__name__)

_TAGGED = re.compile(rb"^(A\d+) (OK|NO|BAD)\b ?(.*)$", re.DOTALL)
_APPENDUID = re.compile(rb"\[APPENDUID (\d+) (\d+)\]")
_LITERAL = re.compile(rb"\{(\d+)\}$")
# Response codes (RFC 5530, RFC 3501) of a folder that does not exist.
_FOLDER_MISSING = frozenset({"NONEXISTENT", "TRYCREATE"})
_CODE = re.compile(rb"^\[([A-Z-]+)[] ]")
# Response codes (RFC 3501, RFC 5530) of a NO that a later try may not get:
# the folder is missing, the mailbox is full, the server is busy or broken.
# Any other NO refuses this message for good (quarantine).
_RETRY_CODES = frozenset(
    {"TRYCREATE", "OVERQUOTA", "UNAVAILABLE", "INUSE", "SERVERBUG"}
)
# Messages without a Message-ID compared in full at most this many at a time.
MAX_CANDIDATES = 20


class IMAPSession:
    """The few IMAP commands the sidecar needs, on one connection."""

    def __init__(self, settings: IMAPTarget) -> None:
        self.host = settings.host
        self._settings = settings
        self._tag = 0
        self._sock: socket.socket | None = None
        self._reader: IO[bytes] | None = None

    def connect(self) -> None:
        s = self._settings
        try:
            sock = socket.create_connection((s.host, s.port), s.timeout)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError as err:
            raise NetworkError(
                f"imap connect host={s.host} port={s.port} failed: {err}"
            ) from err
        if s.tls == TLSMode.IMPLICIT:
            sock = wrap(sock, s.host, ca_file=s.ca_file, fingerprint=s.fingerprint)
        self._attach(sock)
        greeting = self._readline()
        if not greeting.startswith(b"* OK"):
            raise ProtocolError(f"imap host={s.host} bad greeting: {_text(greeting)}")
        if s.tls == TLSMode.STARTTLS:
            self.command("STARTTLS")
            raw, self._sock = self._sock, None
            assert raw is not None
            tls = wrap(raw, s.host, ca_file=s.ca_file, fingerprint=s.fingerprint)
            self._attach(tls)

    def _attach(self, sock: socket.socket) -> None:
        self._sock = sock
        self._reader = cast(IO[bytes], sock.makefile("rb", buffering=CHUNK))

    def login(self, username: str, password: str) -> None:
        token = base64.b64encode(f"\0{username}\0{password}".encode()).decode()
        self._authenticate("PLAIN", token)

    def login_xoauth2(self, username: str, access_token: str) -> None:
        raw = f"user={username}\x01auth=Bearer {access_token}\x01\x01"
        self._authenticate("XOAUTH2", base64.b64encode(raw.encode()).decode())

    def _authenticate(self, mechanism: str, initial: str) -> None:
        # SASL-IR (RFC 4959) sends the credentials with the command itself.
        tag = self._send_tagged(f"AUTHENTICATE {mechanism} {initial}")
        while True:
            line = self._readline()
            if line.startswith(b"+"):
                self._send(b"\r\n")
                continue
            match = _TAGGED.match(line)
            if match and match.group(1) == tag.encode():
                if match.group(2) != b"OK":
                    raise AuthError(
                        f"imap host={self.host} AUTHENTICATE {mechanism} refused: "
                        f"{_text(match.group(3))}"
                    )
                return

    def append(self, folder: str, message: SpooledMessage) -> str | None:
        """APPEND streamed as a synchronizing literal; the APPENDUID (RFC 4315)
        as `uidvalidity:uid` when the server reports one."""
        date = _internal_date(message.header_value("Date"))
        date_part = f' "{date}"' if date else ""
        tag = self._send_tagged(
            f"APPEND {_mailbox(folder)}{date_part} {{{message.size}}}"
        )
        line = self._readline()
        if not line.startswith(b"+"):
            # Refused on its announced size alone (a full mailbox, a limit).
            match = _TAGGED.match(line)
            if match and match.group(1) == tag.encode():
                self._append_refused(match.group(2), match.group(3))
            self._raise_for(tag, line, "APPEND")
        assert self._sock is not None
        try:
            for chunk in message.chunks():
                self._sock.sendall(chunk)
            self._sock.sendall(b"\r\n")
        except OSError as err:
            raise NetworkError(f"imap host={self.host} APPEND broke: {err}") from err
        status, text, _ = self._until_tagged(tag)
        if status != b"OK":
            self._append_refused(status, text)
        match = _APPENDUID.search(text)
        return f"{int(match.group(1))}:{int(match.group(2))}" if match else None

    def _append_refused(self, status: bytes, text: bytes) -> NoReturn:
        """A tagged NO or BAD to APPEND: the message was surely not appended.
        A NO is permanent unless its response code says a later try may
        succeed."""
        code = _response_code(text)
        if status == b"NO" and code not in _RETRY_CODES:
            raise PermanentError(
                f"imap host={self.host} APPEND rejected: {_text(text)}"
            )
        raise ProtocolError(
            f"imap host={self.host} APPEND failed: {_text(text)}",
            not_delivered=True,
            response_code=code,
        )

    def search(self, folder: str, criteria: str) -> list[int]:
        """UIDs in `folder` matching IMAP SEARCH `criteria` (read-only)."""
        self.command(f"EXAMINE {_mailbox(folder)}")
        _, _, untagged = self.command(f"UID SEARCH {criteria}")
        uids: list[int] = []
        for line in untagged:
            if line.upper().startswith(b"* SEARCH"):
                uids.extend(int(x) for x in line.split()[2:] if x.isdigit())
        return uids

    def has_folder(self, folder: str) -> bool:
        _, _, untagged = self.command(f'LIST "" {_mailbox(folder)}')
        return any(line.startswith(b"* LIST ") for line in untagged)

    def search_message_id(self, folder: str, message_id: str) -> list[int]:
        return self.search(folder, f"HEADER Message-ID {_quote(message_id)}")

    def body_sha256(self, uid: int) -> str | None:
        """SHA-256 of one message's full text, streamed from its literal."""
        tag = self._send_tagged(f"UID FETCH {uid} (BODY.PEEK[])")
        digest: str | None = None
        while True:
            line = self._readline()
            match = _TAGGED.match(line)
            if match and match.group(1) == tag.encode():
                return digest
            literal = _LITERAL.search(line)
            if literal:
                digest = self._hash_literal(int(literal.group(1)))

    def _hash_literal(self, size: int) -> str:
        assert self._reader is not None
        digest = hashlib.sha256()
        left = size
        while left:
            try:
                chunk = self._reader.read(min(CHUNK, left))
            except OSError as err:
                raise NetworkError(f"imap host={self.host} FETCH broke: {err}") from err
            if not chunk:
                raise NetworkError(f"imap host={self.host} closed during FETCH")
            digest.update(chunk)
            left -= len(chunk)
        return digest.hexdigest()

    def command(self, text: str) -> tuple[bytes, bytes, list[bytes]]:
        tag = self._send_tagged(text)
        status, reply, untagged = self._until_tagged(tag)
        if status != b"OK":
            verb = text.split(" ", 1)[0]
            raise ProtocolError(
                f"imap host={self.host} {verb} failed: {_text(reply)}",
                response_code=_response_code(reply),
            )
        return status, reply, untagged

    def logout(self) -> None:
        try:
            self.command("LOGOUT")
        except (NetworkError, ProtocolError):
            log.debug("imap host=%s logout failed", self.host, exc_info=True)
        self.close()

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def _send_tagged(self, text: str) -> str:
        self._tag += 1
        tag = f"A{self._tag}"
        self._send(f"{tag} {text}\r\n".encode())
        return tag

    def _send(self, data: bytes) -> None:
        if self._sock is None:
            raise NetworkError(f"imap host={self.host} is not connected")
        try:
            self._sock.sendall(data)
        except OSError as err:
            raise NetworkError(f"imap host={self.host} send failed: {err}") from err

    def _until_tagged(self, tag: str) -> tuple[bytes, bytes, list[bytes]]:
        untagged: list[bytes] = []
        while True:
            line = self._readline()
            match = _TAGGED.match(line)
            if match and match.group(1) == tag.encode():
                return match.group(2), match.group(3), untagged
            untagged.append(line)

    def _raise_for(self, tag: str, line: bytes, verb: str) -> None:
        match = _TAGGED.match(line)
        text = match.group(3) if match else line
        raise ProtocolError(f"imap host={self.host} {verb} failed: {_text(text)}")

    def _readline(self) -> bytes:
        if self._reader is None:
            raise NetworkError(f"imap host={self.host} is not connected")
        try:
            line = self._reader.readline(CHUNK)
        except OSError as err:
            raise NetworkError(f"imap host={self.host} read failed: {err}") from err
        if not line:
            raise NetworkError(f"imap host={self.host} closed the connection")
        return line.rstrip(b"\r\n")


class IMAPDelivery:
    """APPEND into `folder` with a password or XOAUTH2; probes by Message-ID."""

    can_probe = True
    probes_content = True

    def __init__(self, settings: IMAPTarget, username: str) -> None:
        self._settings = settings
        self._username = username
        self._tokens = TokenSource(settings.oauth2) if settings.oauth2 else None
        self._session: IMAPSession | None = None

    def _open(self) -> IMAPSession:
        if self._session is not None:
            return self._session
        session = IMAPSession(self._settings)
        session.connect()
        try:
            if self._tokens is not None:
                session.login_xoauth2(self._username, self._tokens.token())
            else:
                assert self._settings.password is not None
                session.login(self._username, self._settings.password.read())
        except AuthError:
            if self._tokens is not None:
                self._tokens.invalidate()
            session.close()
            raise
        except BaseException:
            session.close()
            raise
        self._session = session
        return session

    def deliver(self, message: SpooledMessage, envelope: Envelope) -> str | None:
        try:
            session = self._open()
        except SidecarError as err:
            # Not even logged in: nothing was appended, nothing to probe.
            err.not_delivered = True
            raise
        folder = self._settings.folder
        try:
            try:
                return session.append(folder, message)
            except ProtocolError as err:
                if err.response_code != "TRYCREATE":
                    raise
                self._create_folder(session, folder)
                return session.append(folder, message)
        except (NetworkError, ProtocolError):
            self.close()
            raise

    def _create_folder(self, session: IMAPSession, folder: str) -> None:
        """The folder (a Gmail label) does not exist yet: make it. Another
        account or replica may make it at the same moment; that is fine."""
        try:
            session.command(f"CREATE {_mailbox(folder)}")
        except ProtocolError as err:
            if err.response_code == "ALREADYEXISTS":
                return
            err.not_delivered = True  # the APPEND before it was refused
            raise
        log.info("imap folder created host=%s folder=%s", self._settings.host, folder)

    def probe(self, message: SpooledMessage) -> str | None:
        """The message's UID in the folder, by Message-ID; without one, by
        size and Date, confirmed by comparing the full text's SHA-256."""
        session = self._open()
        folder = self._settings.folder
        try:
            message_id = message.message_id
            if message_id:
                uids = session.search_message_id(folder, message_id)
                return f"uid:{uids[0]}" if uids else None
            criteria = f"LARGER {message.size - 1} SMALLER {message.size + 1}"
            date = message.header_value("Date")
            if date:
                criteria += f" HEADER Date {_quote(date)}"
            for uid in session.search(folder, criteria)[:MAX_CANDIDATES]:
                if session.body_sha256(uid) == message.sha256:
                    return f"uid:{uid}"
            return None
        except ProtocolError as err:
            if self._folder_missing(session, err):
                # No folder yet, so nothing in it: the message was not appended.
                return None
            self.close()
            raise
        except NetworkError:
            self.close()
            raise

    def _folder_missing(self, session: IMAPSession, err: ProtocolError) -> bool:
        """Whether a refused EXAMINE or SEARCH meant the folder does not exist
        (servers differ in giving that a response code, so LIST decides)."""
        if err.response_code in _FOLDER_MISSING:
            return True
        try:
            return not session.has_folder(self._settings.folder)
        except (NetworkError, ProtocolError):
            return False

    def close(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            session.logout()


def _mailbox(name: str) -> str:
    """A folder name as IMAP wants it: quoted, in modified UTF-7 (RFC 3501
    section 5.1.3), so `Rückläufer` goes as `R&APw-ckl&AOQ-ufer`."""
    out: list[str] = []
    wide: list[str] = []

    def flush() -> None:
        if wide:
            data = "".join(wide).encode("utf-16-be")
            text = base64.b64encode(data).decode().rstrip("=").replace("/", ",")
            out.append(f"&{text}-")
            wide.clear()

    for char in name:
        if " " <= char <= "~":
            flush()
            out.append("&-" if char == "&" else char)
        else:
            wide.append(char)
    flush()
    return _quote("".join(out))


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _internal_date(header: str | None) -> str | None:
    """The Date header as an IMAP date-time, so the inbox sorts by it."""
    if not header:
        return None
    try:
        parsed = email.utils.parsedate_to_datetime(header)
    except (TypeError, ValueError, IndexError):
        return None
    if parsed.tzinfo is None:
        return None
    stamp = parsed.strftime("%d-%b-%Y %H:%M:%S %z")
    # RFC 3501 date-day-fixed: a space instead of a leading zero.
    return stamp if stamp[0] != "0" else " " + stamp[1:]


def _response_code(text: bytes) -> str | None:
    """The response code a tagged reply's text starts with (`[TRYCREATE] ...`)."""
    match = _CODE.match(text)
    return match.group(1).decode() if match else None


def _text(data: bytes) -> str:
    return data.decode("utf-8", "replace").strip()[:200]
