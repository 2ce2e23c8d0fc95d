"""OAuth2 access tokens from a refresh token, refreshed before they expire."""

from __future__ import annotations

import json
import logging
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

from .config import OAuth2Client
from .errors import AuthError, NetworkError

log = logging.getLogger(__name__)

# Refresh this long before expiry so a token never dies mid-delivery.
REFRESH_MARGIN = 120.0


class TokenSource:
    """Hands out a valid access token; thread-safe, one refresh at a time."""

    def __init__(self, client: OAuth2Client, timeout: float = 30.0) -> None:
        self._client = client
        self._timeout = timeout
        self._lock = threading.Lock()
        self._token: str | None = None
        self._expires = 0.0
        self.refreshes = 0

    def token(self) -> str:
        with self._lock:
            if self._token is None or time.time() > self._expires - REFRESH_MARGIN:
                self._refresh()
            assert self._token is not None
            return self._token

    def invalidate(self) -> None:
        """Forget the token after the server refused it (revoked early)."""
        with self._lock:
            self._token = None

    def _refresh(self) -> None:
        client = self._client
        form = {
            "grant_type": "refresh_token",
            "client_id": client.client_id,
            "client_secret": client.client_secret.read(),
            "refresh_token": client.refresh_token.read(),
        }
        if client.scope:
            form["scope"] = client.scope
        request = urllib.request.Request(
            client.token_url,
            data=urllib.parse.urlencode(form).encode(),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=self._timeout) as response:
                body = json.loads(response.read())
        except urllib.error.HTTPError as err:
            detail = _error_text(err)
            err.close()
            if 400 <= err.code < 500:
                raise AuthError(
                    f"oauth2 token_url={client.token_url} refused the refresh "
                    f"token: {err.code} {detail}"
                ) from err
            raise NetworkError(
                f"oauth2 token_url={client.token_url} failed: {err.code} {detail}"
            ) from err
        except (urllib.error.URLError, OSError, ValueError) as err:
            raise NetworkError(
                f"oauth2 token_url={client.token_url} failed: {err}"
            ) from err
        token = body.get("access_token")
        if not isinstance(token, str) or not token:
            raise AuthError(f"oauth2 token_url={client.token_url} sent no token")
        self._token = token
        self._expires = time.time() + float(body.get("expires_in", 3600))
        self.refreshes += 1
        log.info(
            "oauth2 refreshed client_id=%s expires_in=%s",
            client.client_id,
            body.get("expires_in"),
        )


def _error_text(err: urllib.error.HTTPError) -> str:
    try:
        data = json.loads(err.read())
    except (ValueError, OSError):
        return err.reason if isinstance(err.reason, str) else ""
    if isinstance(data, dict):
        return str(data.get("error", ""))
    return ""
