"""A local stand-in for Google's Gmail API and OAuth2 token endpoint.

Google cannot be reached from the test machine. This server implements the
documented contract of what the sidecar uses: the token endpoint
(grant_type=refresh_token), users.labels.list, users.messages.list with an
`rfc822msgid:` query, and users.messages.import as a multipart upload,
including its error shapes (401, 429, 403 rateLimitExceeded, 400, and a
503 backendError after the message was in fact imported).
"""

from __future__ import annotations

import email.parser
import email.policy
import itertools
import json
import re
import secrets
import threading
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

_MID = re.compile(rb"^Message-ID:\s*<([^>]*)>", re.IGNORECASE | re.MULTILINE)


@dataclass
class Imported:
    id: str
    raw: bytes
    label_ids: list[str]
    params: dict[str, str]


@dataclass
class GmailStandIn:
    """State of the fake mailbox, and knobs to inject failures."""

    client_id: str = "client-1.apps.example"
    client_secret: str = field(default_factory=lambda: secrets.token_urlsafe(16))
    refresh_token: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    token_lifetime: int = 3600
    # Hand out this access token instead of random ones (a POP3 server that
    # checks tokens as passwords needs to know it).
    fixed_token: str | None = None
    labels: list[dict[str, str]] = field(
        default_factory=lambda: [
            {"id": "INBOX", "name": "INBOX", "type": "system"},
            {"id": "UNREAD", "name": "UNREAD", "type": "system"},
            {"id": "SPAM", "name": "SPAM", "type": "system"},
            {"id": "Label_7", "name": "legacy-isp", "type": "user"},
        ]
    )
    messages: list[Imported] = field(default_factory=list)
    tokens: dict[str, float] = field(default_factory=dict)
    token_requests: int = 0
    # Answer the next N import calls with 429 / 403 rateLimitExceeded.
    throttle_next: int = 0
    throttled: int = 0
    # Import the next N messages, then answer 503 as if the import failed.
    fail_after_import_next: int = 0
    max_request_bytes: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    _ids: Iterator[int] = field(default_factory=lambda: itertools.count(1000))
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> None:
        standin = self

        class Handler(_Handler):
            state = standin

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()

    def message_ids(self) -> list[str]:
        found = []
        for item in self.messages:
            match = _MID.search(item.raw)
            found.append(match.group(1).decode() if match else "")
        return found


class _Handler(BaseHTTPRequestHandler):
    state: GmailStandIn
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the tests read the state, not the access log."""

    def _send(self, status: int, data: dict[str, Any]) -> None:
        body = json.dumps(data).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _error(self, status: int, reason: str, message: str) -> None:
        self._send(
            status,
            {
                "error": {
                    "code": status,
                    "message": message,
                    "errors": [{"reason": reason, "message": message}],
                }
            },
        )

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length", "0"))
        with self.state.lock:
            self.state.max_request_bytes = max(self.state.max_request_bytes, length)
        return self.rfile.read(length)

    def _authorized(self) -> bool:
        header = self.headers.get("Authorization", "")
        token = header.removeprefix("Bearer ")
        expires = self.state.tokens.get(token)
        if expires is None or expires < time.time():
            self._error(401, "authError", "Invalid Credentials")
            return False
        return True

    def do_POST(self) -> None:
        url = urllib.parse.urlsplit(self.path)
        if url.path == "/token":
            self._token(self._body())
            return
        match = re.fullmatch(
            r"/upload/gmail/v1/users/([^/]+)/messages/import", url.path
        )
        if not match:
            self._error(404, "notFound", "Not Found")
            return
        body = self._body()
        if not self._authorized():
            return
        params = dict(urllib.parse.parse_qsl(url.query))
        with self.state.lock:
            if self.state.throttle_next > 0:
                self.state.throttle_next -= 1
                self.state.throttled += 1
                odd = self.state.throttled % 2
                if odd:
                    self._error(429, "rateLimitExceeded", "Too many requests")
                else:
                    self._error(403, "rateLimitExceeded", "Rate Limit Exceeded")
                return
        if params.get("uploadType") != "multipart":
            self._error(400, "invalidArgument", "uploadType must be multipart")
            return
        metadata, raw = _split_multipart(self.headers.get("Content-Type", ""), body)
        if b"X-Standin-Reject: yes" in raw:
            self._error(400, "invalidArgument", "Invalid message")
            return
        with self.state.lock:
            item = Imported(
                id=f"{next(self.state._ids):x}",
                raw=raw,
                label_ids=list(metadata.get("labelIds", [])),
                params=params,
            )
            self.state.messages.append(item)
            fail = self.state.fail_after_import_next > 0
            self.state.fail_after_import_next -= fail
        if fail:
            self._error(503, "backendError", "Backend Error")
            return
        self._send(
            200, {"id": item.id, "threadId": item.id, "labelIds": item.label_ids}
        )

    def _token(self, body: bytes) -> None:
        form = dict(urllib.parse.parse_qsl(body.decode()))
        state = self.state
        with state.lock:
            state.token_requests += 1
        if (
            form.get("grant_type") != "refresh_token"
            or form.get("client_id") != state.client_id
            or form.get("client_secret") != state.client_secret
            or form.get("refresh_token") != state.refresh_token
        ):
            self._send(400, {"error": "invalid_grant"})
            return
        token = state.fixed_token or "ya29." + secrets.token_urlsafe(24)
        state.tokens[token] = time.time() + state.token_lifetime
        self._send(
            200,
            {
                "access_token": token,
                "expires_in": state.token_lifetime,
                "token_type": "Bearer",
            },
        )

    def do_GET(self) -> None:
        url = urllib.parse.urlsplit(self.path)
        if not self._authorized():
            return
        if re.fullmatch(r"/gmail/v1/users/[^/]+/labels", url.path):
            self._send(200, {"labels": self.state.labels})
            return
        if re.fullmatch(r"/gmail/v1/users/[^/]+/messages", url.path):
            query = dict(urllib.parse.parse_qsl(url.query)).get("q", "")
            wanted = query.removeprefix("rfc822msgid:").strip("<>")
            with self.state.lock:
                hits = [
                    {"id": m.id, "threadId": m.id}
                    for m, mid in zip(
                        self.state.messages, self.state.message_ids(), strict=True
                    )
                    if query.startswith("rfc822msgid:") and mid == wanted
                ]
            data: dict[str, Any] = {"resultSizeEstimate": len(hits)}
            if hits:
                data["messages"] = hits
            self._send(200, data)
            return
        self._error(404, "notFound", "Not Found")


def _split_multipart(content_type: str, body: bytes) -> tuple[dict[str, Any], bytes]:
    """The JSON metadata part and the message/rfc822 part of an upload."""
    head = f"Content-Type: {content_type}\r\n\r\n".encode()
    parsed = email.parser.BytesParser(policy=email.policy.compat32).parsebytes(
        head + body
    )
    boundary = parsed.get_boundary()
    assert boundary is not None, "multipart upload without a boundary"
    parts = body.split(b"--" + boundary.encode())
    metadata: dict[str, Any] = {}
    raw = b""
    for part in parts[1:-1]:
        headers, _, content = part.partition(b"\r\n\r\n")
        content = content.removesuffix(b"\r\n")
        if b"application/json" in headers:
            metadata = json.loads(content)
        elif b"message/rfc822" in headers:
            raw = content
    return metadata, raw
