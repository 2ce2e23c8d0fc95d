"""Delivery through the Gmail API, against a local stand-in.

Google cannot be reached from here: every test in this module talks to
tests/sidecar/gmail_standin.py, which implements the documented contract of
users.messages.import, users.messages.list (`rfc822msgid:`),
users.labels.list and the OAuth2 token endpoint.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from mailbridge.sidecar.account import PollResult
from mailbridge.sidecar.config import OAuth2Client, SecretSource, load_config
from mailbridge.sidecar.oauth import REFRESH_MARGIN, TokenSource
from mailbridge.sidecar.service import Sidecar
from mailbridge.sidecar.state import MessageState
from mailbridge.sidecar.targets.gmail import GmailDelivery
from tests.servers.dovecot import DovecotServer
from tests.sidecar.gmail_standin import GmailStandIn
from tests.sidecar.helpers import env_for, make_message, pop3_block, write_config

pytestmark = pytest.mark.servers


def _oauth2(gmail: GmailStandIn, folder: Path) -> dict[str, Any]:
    secret = folder / "client-secret"
    secret.write_text(gmail.client_secret + "\n")
    secret.chmod(0o600)
    refresh = folder / "refresh-token"
    refresh.write_text(gmail.refresh_token)
    refresh.chmod(0o600)
    return {
        "client_id": gmail.client_id,
        "client_secret": {"file": str(secret)},
        "refresh_token": {"file": str(refresh)},
        "token_url": gmail.url + "/token",
    }


def _sidecar(
    dovecot: DovecotServer,
    gmail: GmailStandIn,
    user: str,
    folder: Path,
    monkeypatch: pytest.MonkeyPatch,
    **extra: Any,
) -> Sidecar:
    monkeypatch.setenv(env_for(user), dovecot.add_user(user))
    account = {
        "name": "gmail",
        "pop3": pop3_block(dovecot, user),
        "deliver_to": "alice@gmail.example",
        "via": "gmail-api",
        "gmail_api": {
            "oauth2": _oauth2(gmail, folder),
            "labels": ["legacy-isp"],
            "never_spam": True,
            "api_url": gmail.url,
            "retry_base_seconds": 0.01,
        },
    }
    account.update(extra)
    return Sidecar(load_config(write_config(folder, [account])))


def _only(results: dict[str, Any]) -> PollResult:
    result = results["gmail"]
    assert isinstance(result, PollResult), result
    return result


def test_import_with_labels_date_header_and_never_spam(
    dovecot: DovecotServer,
    gmail: GmailStandIn,
    user_name: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sidecar = _sidecar(dovecot, gmail, user_name, tmp_path, monkeypatch)
    sent = [make_message("gm", i, 1000 + 5000 * i) for i in range(3)]
    for data in sent:
        dovecot.deliver(user_name, data)
    result = _only(sidecar.run_once())
    assert (result.delivered, result.deleted) == (3, 3)
    assert sorted(m.raw for m in gmail.messages) == sorted(sent)
    for item in gmail.messages:
        assert item.label_ids == ["INBOX", "UNREAD", "Label_7"]
        assert item.params["internalDateSource"] == "dateHeader"
        assert item.params["neverMarkSpam"] == "true"
    rows = sidecar.store.messages("gmail")
    assert {r.target_id for r in rows.values()} == {m.id for m in gmail.messages}
    sidecar.close()


def test_rate_limits_are_retried_with_backoff(
    dovecot: DovecotServer,
    gmail: GmailStandIn,
    user_name: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sidecar = _sidecar(dovecot, gmail, user_name, tmp_path, monkeypatch)
    dovecot.deliver(user_name, make_message("throttle", 1))
    gmail.throttle_next = 3  # 429, 403 rateLimitExceeded, 429
    result = _only(sidecar.run_once())
    assert result.delivered == 1
    assert gmail.throttled == 3
    assert len(gmail.messages) == 1
    sidecar.close()


def test_rejected_message_goes_to_quarantine_and_stays_on_server(
    dovecot: DovecotServer,
    gmail: GmailStandIn,
    user_name: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sidecar = _sidecar(dovecot, gmail, user_name, tmp_path, monkeypatch)
    bad = make_message("bad", 1).replace(
        b"Subject:", b"X-Standin-Reject: yes\r\nSubject:"
    )
    dovecot.deliver(user_name, bad)
    dovecot.deliver(user_name, make_message("good", 2))
    result = _only(sidecar.run_once())
    assert (result.delivered, result.quarantined, result.deleted) == (1, 1, 1)
    assert len(dovecot.messages(user_name)) == 1
    reasons = list((tmp_path / "quarantine" / "gmail").glob("*.json"))
    assert len(reasons) == 1
    info = json.loads(reasons[0].read_text())
    assert (
        "rejected" in info["reason"] and info["message_id"] == "<bad.1@source.example>"
    )
    assert reasons[0].with_suffix(".eml").read_bytes() == bad
    again = _only(sidecar.run_once())
    assert (again.delivered, again.quarantined) == (0, 0)
    sidecar.close()


def test_backup_path_skips_messages_that_arrived_by_forwarding(
    dovecot: DovecotServer,
    gmail: GmailStandIn,
    user_name: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sidecar = _sidecar(
        dovecot,
        gmail,
        user_name,
        tmp_path,
        monkeypatch,
        backup_of="alice@example.com",
    )
    forwarded = make_message("fwd", 1)
    gmail.messages.append(
        __import__("tests.sidecar.gmail_standin", fromlist=["Imported"]).Imported(
            id="f0", raw=forwarded, label_ids=["INBOX"], params={}
        )
    )
    dovecot.deliver(user_name, forwarded)
    dovecot.deliver(user_name, make_message("fwd", 2))
    result = _only(sidecar.run_once())
    assert (result.delivered, result.duplicates) == (1, 1)
    assert sorted(gmail.message_ids()) == [
        "fwd.1@source.example",
        "fwd.2@source.example",
    ]
    sidecar.close()


def test_interrupted_import_is_found_by_probe_not_repeated(
    dovecot: DovecotServer,
    gmail: GmailStandIn,
    user_name: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sidecar = _sidecar(dovecot, gmail, user_name, tmp_path, monkeypatch)
    dovecot.deliver(user_name, make_message("crash", 1))
    real = GmailDelivery.deliver

    def deliver_then_die(self: GmailDelivery, *args: Any) -> str | None:
        real(self, *args)
        raise SystemExit("killed after the import, before the state write")

    monkeypatch.setattr(GmailDelivery, "deliver", deliver_then_die)
    with pytest.raises(SystemExit):
        sidecar.pollers["gmail"].poll()
    rows = sidecar.store.messages("gmail")
    assert [r.state for r in rows.values()] == [MessageState.DELIVERING]
    monkeypatch.setattr(GmailDelivery, "deliver", real)

    result = _only(sidecar.run_once())
    assert (result.delivered, result.deleted) == (1, 1)
    assert len(gmail.messages) == 1
    row = next(iter(sidecar.store.messages("gmail").values()))
    assert row.target_id == gmail.messages[0].id
    sidecar.close()


def test_access_token_is_refreshed_before_it_expires(
    gmail: GmailStandIn, tmp_path: Path
) -> None:
    gmail.token_lifetime = int(REFRESH_MARGIN) + 3
    secret = tmp_path / "s"
    secret.write_text(gmail.client_secret)
    refresh = tmp_path / "r"
    refresh.write_text(gmail.refresh_token)
    source = TokenSource(
        OAuth2Client(
            client_id=gmail.client_id,
            client_secret=SecretSource(file=str(secret)),
            refresh_token=SecretSource(file=str(refresh)),
            token_url=gmail.url + "/token",
        )
    )
    first = source.token()
    assert source.token() == first
    time.sleep(3.2)
    second = source.token()
    assert second != first
    assert gmail.tokens[first] > time.time(), "refreshed while the old one was valid"
    assert gmail.token_requests == 2


def test_a_token_revoked_early_is_refreshed_once_and_the_import_retried(
    dovecot: DovecotServer,
    gmail: GmailStandIn,
    user_name: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Against the stand-in: Google may end an access token before its
    expiry (a password change, a revoked session). The 401 that follows
    makes the sidecar fetch a new token and retry the same import, once."""
    sidecar = _sidecar(dovecot, gmail, user_name, tmp_path, monkeypatch)
    dovecot.deliver(user_name, make_message("revoked", 1))
    assert _only(sidecar.run_once()).delivered == 1
    assert gmail.token_requests == 1

    with gmail.lock:
        gmail.tokens.clear()
    dovecot.deliver(user_name, make_message("revoked", 2))
    result = _only(sidecar.run_once())
    assert (result.delivered, result.quarantined) == (1, 0)
    assert gmail.token_requests == 2
    assert sorted(gmail.message_ids()) == [
        "revoked.1@source.example",
        "revoked.2@source.example",
    ]

    # A refresh that does not help (the grant itself was revoked) is no
    # loop: the poll fails, the message stays on the server for later.
    gmail.refresh_token = "revoked-grant"
    with gmail.lock:
        gmail.tokens.clear()
    dovecot.deliver(user_name, make_message("revoked", 3))
    failed = sidecar.run_once()["gmail"]
    assert not isinstance(failed, PollResult)
    assert gmail.token_requests == 3
    assert any(b"revoked.3@" in m for m in dovecot.messages(user_name))
    sidecar.close()


def test_a_server_error_after_the_import_is_probed_not_repeated(
    dovecot: DovecotServer,
    gmail: GmailStandIn,
    user_name: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Against the stand-in: a 503 can come back although the import went
    through. The import is not sent again at once; the next poll looks the
    message up by Message-ID, finds it and records it delivered."""
    sidecar = _sidecar(dovecot, gmail, user_name, tmp_path, monkeypatch)
    dovecot.deliver(user_name, make_message("applied", 1))
    gmail.fail_after_import_next = 1
    failed = sidecar.run_once()["gmail"]
    assert not isinstance(failed, PollResult)
    assert "503" in str(failed)
    assert gmail.message_ids() == ["applied.1@source.example"]

    result = _only(sidecar.run_once())
    assert result.delivered == 1
    assert gmail.message_ids() == ["applied.1@source.example"]
    (row,) = sidecar.store.messages("gmail").values()
    assert row.state == MessageState.DELETED and row.target_id
    assert dovecot.messages(user_name) == []
    sidecar.close()


def test_a_quarantine_that_cannot_be_written_keeps_the_message_for_later(
    dovecot: DovecotServer,
    gmail: GmailStandIn,
    user_name: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Against the stand-in, which rejects the message for good: while the
    quarantine folder cannot be written (here a file stands in its way),
    the message stays on the POP3 server and the poll fails saying why;
    once the folder can be made, the message is quarantined."""
    sidecar = _sidecar(dovecot, gmail, user_name, tmp_path, monkeypatch)
    bad = make_message("bad", 1).replace(
        b"Subject:", b"X-Standin-Reject: yes\r\nSubject:"
    )
    dovecot.deliver(user_name, bad)
    blocker = tmp_path / "quarantine"
    blocker.write_text("in the way")
    failed = sidecar.run_once()["gmail"]
    assert not isinstance(failed, PollResult)
    assert "quarantine folder cannot take message" in str(failed)
    assert str(blocker) in str(failed)
    assert dovecot.messages(user_name) == [bad.replace(b"\r\n", b"\n")]
    (row,) = sidecar.store.messages("gmail").values()
    assert row.state == MessageState.SPOOLED

    blocker.unlink()
    result = _only(sidecar.run_once())
    assert result.quarantined == 1
    assert len(list((blocker / "gmail").glob("*.eml"))) == 1
    sidecar.close()
