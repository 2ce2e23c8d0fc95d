"""Operations: secrets never logged, Prometheus metrics, `sidecar status`.

The OAuth2 token endpoint and Gmail API here are the local stand-in of
tests/sidecar/gmail_standin.py: Google cannot be reached from the tests.
"""

from __future__ import annotations

import json
import logging
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from mailbridge.cli.main import main
from mailbridge.sidecar.account import PollResult
from mailbridge.sidecar.config import load_config
from mailbridge.sidecar.service import Sidecar
from tests.servers.common import free_port
from tests.servers.dovecot import DovecotServer
from tests.sidecar.gmail_standin import GmailStandIn
from tests.sidecar.helpers import (
    SmtpSink,
    env_for,
    make_message,
    pop3_block,
    write_config,
)

pytestmark = pytest.mark.servers


def _secret_file(folder: Path, name: str, value: str) -> dict[str, str]:
    path = folder / name
    path.write_text(value)
    path.chmod(0o600)
    return {"file": str(path)}


def _accounts(
    dovecot: DovecotServer,
    gmail: GmailStandIn,
    sink: SmtpSink,
    user: str,
    folder: Path,
) -> list[dict[str, Any]]:
    oauth2 = {
        "client_id": gmail.client_id,
        "client_secret": _secret_file(folder, "cs", gmail.client_secret),
        "refresh_token": _secret_file(folder, "rt", gmail.refresh_token),
        "token_url": gmail.url + "/token",
    }
    smtp = {"host": "127.0.0.1", "port": sink.port, "tls": "none", "insecure": True}
    return [
        {
            "name": "password",
            "pop3": pop3_block(dovecot, user),
            "deliver_to": "alice@gmail.example",
            "via": "smtp",
            "smtp": smtp,
        },
        {
            "name": "xoauth2",
            "pop3": dict(
                pop3_block(dovecot, user + "-o"), password=None, oauth2=oauth2
            ),
            "deliver_to": "bob@gmail.example",
            "via": "gmail-api",
            "gmail_api": {"oauth2": oauth2, "api_url": gmail.url},
        },
        {
            "name": "wrong",
            "pop3": dict(
                pop3_block(dovecot, user),
                password=_secret_file(folder, "wrong", "Wr0ng-pa55word-x7"),
            ),
            "deliver_to": "alice@gmail.example",
            "via": "smtp",
            "smtp": smtp,
        },
    ]


def test_secrets_never_reach_the_logs_and_metrics_and_status_work(
    dovecot: DovecotServer,
    gmail: GmailStandIn,
    smtp_sink: SmtpSink,
    user_name: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    password = dovecot.add_user(user_name)
    monkeypatch.setenv(env_for(user_name), password)
    # Dovecot 2.3 checks an XOAUTH2 bearer token like a password.
    gmail.fixed_token = dovecot.add_user(user_name + "-o")
    dovecot.deliver(user_name, make_message("ops", 1))
    dovecot.deliver(user_name + "-o", make_message("ops", 2))
    accounts = _accounts(dovecot, gmail, smtp_sink, user_name, tmp_path)
    port = free_port()
    path = write_config(tmp_path, accounts, metrics={"bind": "127.0.0.1", "port": port})
    caplog.set_level(logging.DEBUG)
    sidecar = Sidecar(load_config(path))
    sidecar.metrics.serve("127.0.0.1", port)
    results = sidecar.run_once()
    assert isinstance(results["password"], PollResult)
    assert isinstance(results["xoauth2"], PollResult)
    assert results["xoauth2"].delivered == 1
    assert not isinstance(results["wrong"], PollResult)

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics") as response:
        metrics = response.read().decode()
    sidecar.close()
    for line in (
        'mailbridge_sidecar_messages_total{account="password",outcome="delivered"} 1.0',
        'mailbridge_sidecar_errors_total{account="wrong",kind="auth"} 1.0',
        'mailbridge_sidecar_oldest_undelivered_seconds{account="password"} 0.0',
        'mailbridge_sidecar_poll_seconds_count{account="xoauth2"} 1.0',
    ):
        assert line in metrics
    assert 'mailbridge_sidecar_bytes_total{account="xoauth2",outcome="delivered"}' in (
        metrics
    )

    assert main(["sidecar", "status", "--json", "--config", str(path)]) is None
    status = {row["account"]: row for row in json.loads(capsys.readouterr().out)}
    assert status["password"]["state"] == "ok"
    assert status["wrong"]["state"] == "failing"
    assert "Authentication failed" in status["wrong"]["last_error"]
    assert status["password"]["counts"] == {"deleted": 1}

    delivered = [r for r in caplog.records if "message delivered" in r.getMessage()]
    assert len(delivered) == 2
    assert "message_id=<ops.1@source.example>" in caplog.text
    # One line per message, with every field an operator greps for.
    line = next(
        r.getMessage() for r in delivered if "account=password" in r.getMessage()
    )
    fields = dict(part.split("=", 1) for part in line.split() if "=" in part)
    assert fields["message_id"] == "<ops.1@source.example>"
    assert int(fields["size"]) == len(make_message("ops", 1))
    assert int(fields["latency_ms"]) >= 0
    row = sidecar.store.messages("password")[fields["uidl"]]
    assert row.message_id == "<ops.1@source.example>"
    secrets = [
        password,
        gmail.fixed_token,
        gmail.client_secret,
        gmail.refresh_token,
        "Wr0ng-pa55word-x7",
        *gmail.tokens,
    ]
    for secret in secrets:
        assert secret not in caplog.text
        assert secret not in json.dumps(status)


def test_imap_target_logs_in_with_xoauth2(
    dovecot: DovecotServer,
    gmail: GmailStandIn,
    user_name: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The token endpoint is the local stand-in; Dovecot checks the bearer
    token like a password."""
    monkeypatch.setenv(env_for(user_name), dovecot.add_user(user_name))
    inbox = user_name + "-inbox"
    gmail.fixed_token = dovecot.add_user(inbox)
    dovecot.deliver(user_name, make_message("imap-oauth", 1))
    oauth2 = {
        "client_id": gmail.client_id,
        "client_secret": _secret_file(tmp_path, "cs", gmail.client_secret),
        "refresh_token": _secret_file(tmp_path, "rt", gmail.refresh_token),
        "token_url": gmail.url + "/token",
    }
    account = {
        "name": "imap-oauth",
        "pop3": pop3_block(dovecot, user_name),
        "deliver_to": "alice@gmail.example",
        "via": "imap",
        "imap": {
            "host": "localhost",
            "port": dovecot.imaps_port,
            "username": inbox,
            "oauth2": oauth2,
            "ca_file": dovecot.ca_file,
        },
    }
    sidecar = Sidecar(load_config(write_config(tmp_path, [account])))
    result = sidecar.run_once()["imap-oauth"]
    assert isinstance(result, PollResult), result
    assert result.delivered == 1
    assert len(dovecot.messages(inbox)) == 1
    assert gmail.token_requests == 1
    sidecar.close()
