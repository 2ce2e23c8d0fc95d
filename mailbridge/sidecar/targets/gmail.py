"""Import into Gmail with users.messages.import, streamed as a multipart
upload; labels by name, Message-ID probes with the `rfc822msgid:` query."""

from __future__ import annotations

import http.client
import json
import logging
import random
import ssl
import time
import urllib.parse
import uuid
from collections.abc import Iterator
from typing import Any

from ..config import GmailTarget
from ..errors import NetworkError, PermanentError, TemporaryError
from ..message import SpooledMessage
from ..oauth import TokenSource
from . import Envelope

log = logging.getLogger(__name__)

# Errors Gmail documents as "retry with exponential backoff".
_RETRY_REASONS = {"rateLimitExceeded", "userRateLimitExceeded", "backendError"}
ATTEMPTS = 5


class GmailDelivery:
    """users.messages.import with `internalDateSource=dateHeader`.

    Labels are given by name and resolved to ids once per process (INBOX and
    UNREAD are always added, as a fetched message is new mail). 429 and
    rate-limit 403s are retried here with backoff before the poll gives up.
    """

    can_probe = True
    probes_content = False

    def __init__(self, settings: GmailTarget, *, retry_base: float = 1.0) -> None:
        self._settings = settings
        self._tokens = TokenSource(settings.oauth2)
        self._retry_base = retry_base
        self._label_ids: list[str] | None = None
        parsed = urllib.parse.urlsplit(settings.api_url)
        self._scheme = parsed.scheme
        self._host = parsed.hostname or ""
        self._port = parsed.port
        self._root = parsed.path.rstrip("/")
        self._user = urllib.parse.quote(settings.user_id, safe="")

    # -- the Target protocol ----------------------------------------------------

    def deliver(self, message: SpooledMessage, envelope: Envelope) -> str | None:
        labels = self._labels()
        params = {
            "uploadType": "multipart",
            "internalDateSource": "dateHeader",
        }
        if self._settings.never_spam:
            params["neverMarkSpam"] = "true"
        path = (
            f"{self._root}/upload/gmail/v1/users/{self._user}/messages/import?"
            + urllib.parse.urlencode(params)
        )
        boundary = "mailbridge-" + uuid.uuid4().hex
        head = (
            f"--{boundary}\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n"
            + json.dumps({"labelIds": labels})
            + f"\r\n--{boundary}\r\nContent-Type: message/rfc822\r\n\r\n"
        ).encode()
        tail = f"\r\n--{boundary}--\r\n".encode()
        length = len(head) + message.size + len(tail)

        def body() -> Iterator[bytes]:
            yield head
            yield from message.chunks()
            yield tail

        result = self._call(
            "POST",
            path,
            body=body,
            headers={
                "Content-Type": f"multipart/related; boundary={boundary}",
                "Content-Length": str(length),
            },
        )
        message_id = result.get("id")
        return str(message_id) if message_id else None

    def probe(self, message: SpooledMessage) -> str | None:
        message_id = message.message_id
        if not message_id:
            return None
        query = urllib.parse.urlencode(
            {"q": f"rfc822msgid:{message_id.strip('<>')}", "includeSpamTrash": "true"}
        )
        path = f"{self._root}/gmail/v1/users/{self._user}/messages?{query}"
        found = self._call("GET", path).get("messages") or []
        return str(found[0]["id"]) if found else None

    def close(self) -> None:
        """Connections are per request; nothing to close."""

    # -- helpers ----------------------------------------------------------------

    def _labels(self) -> list[str]:
        if self._label_ids is not None:
            return self._label_ids
        ids = ["INBOX", "UNREAD"]
        if self._settings.labels:
            path = f"{self._root}/gmail/v1/users/{self._user}/labels"
            known = {
                str(label["name"]).lower(): str(label["id"])
                for label in self._call("GET", path).get("labels", [])
            }
            missing = [n for n in self._settings.labels if n.lower() not in known]
            if missing:
                raise TemporaryError(
                    "gmail labels not found: "
                    + ", ".join(missing)
                    + "; create them in Gmail or fix gmail_api.labels"
                )
            ids += [known[n.lower()] for n in self._settings.labels]
        self._label_ids = list(dict.fromkeys(ids))
        return self._label_ids

    def _connection(self) -> http.client.HTTPConnection:
        if self._scheme == "https":
            return http.client.HTTPSConnection(
                self._host,
                self._port,
                timeout=120,
                context=ssl.create_default_context(),
            )
        return http.client.HTTPConnection(self._host, self._port, timeout=120)

    def _call(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        headers: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """One API call with retries for rate limits, 5xx and an expired token."""
        refreshed = False
        attempt = 0
        while True:
            attempt += 1
            status, data, retry_after = self._request(method, path, body, headers)
            if 200 <= status < 300:
                return data
            reason = _reason(data)
            detail = f"{status} {reason or ''} {_message(data)}".strip()
            if status == 401 and not refreshed:
                self._tokens.invalidate()
                refreshed = True
                continue
            retryable = status == 429 or status >= 500 or reason in _RETRY_REASONS
            if method == "POST" and (status >= 500 or reason == "backendError"):
                # The import may have been applied before the error: sending
                # it again could duplicate it. The next poll probes first.
                raise TemporaryError(f"gmail import failed: {detail}")
            if not retryable:
                if status in (400, 413) and method == "POST":
                    raise PermanentError(f"gmail import rejected: {detail}")
                raise TemporaryError(f"gmail {method} failed: {detail}")
            if attempt >= ATTEMPTS:
                raise TemporaryError(
                    f"gmail {method} still failing after {attempt} tries: {detail}",
                    retry_after=retry_after,
                )
            delay = self._retry_base * 2 ** (attempt - 1)
            delay = max(delay * random.uniform(0.5, 1.0), retry_after or 0.0)
            log.info(
                "gmail backoff status=%d reason=%s attempt=%d delay_s=%.2f",
                status,
                reason,
                attempt,
                delay,
            )
            time.sleep(delay)

    def _request(
        self,
        method: str,
        path: str,
        body: Any,
        headers: dict[str, str] | None,
    ) -> tuple[int, dict[str, Any], float | None]:
        all_headers = {"Authorization": f"Bearer {self._tokens.token()}"}
        all_headers.update(headers or {})
        conn = self._connection()
        try:
            conn.request(
                method,
                path,
                body=body() if callable(body) else body,
                headers=all_headers,
            )
            response = conn.getresponse()
            raw = response.read()
            retry_after = response.getheader("Retry-After")
        except (OSError, http.client.HTTPException) as err:
            raise NetworkError(f"gmail {method} {self._host} failed: {err}") from err
        finally:
            conn.close()
        try:
            data = json.loads(raw) if raw else {}
        except ValueError:
            data = {}
        wait = float(retry_after) if retry_after and retry_after.isdigit() else None
        return response.status, data if isinstance(data, dict) else {}, wait


def _reason(data: dict[str, Any]) -> str | None:
    error = data.get("error")
    if isinstance(error, dict):
        for item in error.get("errors") or []:
            if isinstance(item, dict) and item.get("reason"):
                return str(item["reason"])
        if error.get("status"):
            return str(error["status"])
    return None


def _message(data: dict[str, Any]) -> str:
    error = data.get("error")
    if isinstance(error, dict):
        return str(error.get("message", ""))[:200]
    return ""
