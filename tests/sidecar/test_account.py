"""Account behaviour on real servers: UIDL resets, seeding, keep_days,
temporary and permanent SMTP failures, isolation of a failing account."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from mailbridge.sidecar.account import PollResult, PollStatus
from mailbridge.sidecar.config import load_config
from mailbridge.sidecar.errors import ConfigError, TemporaryError
from mailbridge.sidecar.service import Sidecar, backoff_delay
from mailbridge.sidecar.state import MessageState
from tests.servers.dovecot import DovecotServer
from tests.sidecar.helpers import (
    SmtpSink,
    env_for,
    make_message,
    message_ids,
    pop3_block,
    write_config,
)

pytestmark = pytest.mark.servers


def _smtp_account(
    dovecot: DovecotServer, user: str, port: int, name: str = "acct", **extra: Any
) -> dict[str, Any]:
    account: dict[str, Any] = {
        "name": name,
        "pop3": pop3_block(dovecot, user),
        "deliver_to": "alice@gmail.example",
        "via": "smtp",
        "smtp": {"host": "127.0.0.1", "port": port, "tls": "none", "insecure": True},
    }
    account.update(extra)
    return account


def _result(outcome: object) -> PollResult:
    assert isinstance(outcome, PollResult), outcome
    return outcome


def test_uidl_reset_pauses_the_account_and_seed_resumes_it(
    dovecot: DovecotServer,
    smtp_sink: SmtpSink,
    user_name: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(env_for(user_name), dovecot.add_user(user_name))
    for i in range(6):
        dovecot.deliver(user_name, make_message("reset", i))
    account = _smtp_account(dovecot, user_name, smtp_sink.port, keep_on_server=True)
    sidecar = Sidecar(load_config(write_config(tmp_path, [account])))
    assert _result(sidecar.run_once()["acct"]).delivered == 6

    dovecot.reset_uidls(user_name)
    reset = _result(sidecar.run_once()["acct"])
    assert reset.status == PollStatus.RESET
    assert reset.delivered == 0
    paused = sidecar.store.account("acct").paused
    assert paused is not None and "UIDL reset" in paused and "--seed" in paused
    assert _result(sidecar.run_once()["acct"]).status == PollStatus.PAUSED
    assert len(smtp_sink.messages()) == 6

    seeded = _result(sidecar.run_once(seed=True)["acct"])
    assert seeded.seeded == 6
    assert sidecar.store.account("acct").paused is None
    dovecot.deliver(user_name, make_message("reset", 6))
    after = _result(sidecar.run_once()["acct"])
    assert (after.status, after.delivered) == (PollStatus.OK, 1)
    assert len(smtp_sink.wait_for(7)) == 7
    sidecar.close()


def test_kept_mail_deleted_elsewhere_while_new_mail_came_is_no_reset(
    dovecot: DovecotServer,
    smtp_sink: SmtpSink,
    user_name: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The owner deletes the kept mail in webmail and new mail arrives before
    the next poll: as many UIDLs vanish as appear, but the sizes show other
    messages, not renamed ones, so the new mail goes and nothing pauses."""
    monkeypatch.setenv(env_for(user_name), dovecot.add_user(user_name))
    for i in range(4):
        dovecot.deliver(user_name, make_message("kept", i))
    account = _smtp_account(dovecot, user_name, smtp_sink.port, keep_on_server=True)
    sidecar = Sidecar(load_config(write_config(tmp_path, [account])))
    assert _result(sidecar.run_once()["acct"]).delivered == 4

    for sub in ("cur", "new"):  # deleted by another client: files go
        for path in (dovecot.maildir(user_name) / sub).iterdir():
            path.unlink()
    for i in range(4):
        dovecot.deliver(user_name, make_message("fresh", i, 3000 + 500 * i))
    after = _result(sidecar.run_once()["acct"])
    assert (after.status, after.delivered) == (PollStatus.OK, 4)
    assert sidecar.store.account("acct").paused is None
    assert len(smtp_sink.wait_for(8)) == 8
    sidecar.close()


def test_seed_records_everything_without_delivering(
    dovecot: DovecotServer,
    smtp_sink: SmtpSink,
    user_name: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(env_for(user_name), dovecot.add_user(user_name))
    for i in range(3):
        dovecot.deliver(user_name, make_message("seed", i))
    sidecar = Sidecar(
        load_config(
            write_config(tmp_path, [_smtp_account(dovecot, user_name, smtp_sink.port)])
        )
    )
    assert _result(sidecar.run_once(seed=True)["acct"]).seeded == 3
    result = _result(sidecar.run_once()["acct"])
    assert (result.delivered, result.deleted) == (0, 0)
    assert smtp_sink.messages() == []
    assert len(dovecot.messages(user_name)) == 3, "seeding never deletes"
    sidecar.close()


def test_keep_days_deletes_only_after_the_delay(
    dovecot: DovecotServer,
    smtp_sink: SmtpSink,
    user_name: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(env_for(user_name), dovecot.add_user(user_name))
    for i in range(2):
        dovecot.deliver(user_name, make_message("keep", i))
    account = _smtp_account(
        dovecot, user_name, smtp_sink.port, keep_on_server=True, keep_days=3
    )
    sidecar = Sidecar(load_config(write_config(tmp_path, [account])))
    assert _result(sidecar.run_once()["acct"]).delivered == 2
    assert _result(sidecar.run_once()["acct"]).deleted == 0
    assert len(dovecot.messages(user_name)) == 2

    # Age one delivery past keep_days, as if four days went by.
    uidl = sorted(sidecar.store.messages("acct"))[0]
    sidecar.store._execute(
        "UPDATE sidecar_messages SET delivered_at = ? WHERE uidl = ?",
        (time.time() - 4 * 86400, uidl),
    )
    result = _result(sidecar.run_once()["acct"])
    assert (result.deleted, result.delivered) == (1, 0)
    assert len(dovecot.messages(user_name)) == 1
    assert sidecar.store.messages("acct")[uidl].state == MessageState.DELETED
    assert len(smtp_sink.messages()) == 2
    sidecar.close()


def test_smtp_4xx_is_retried_and_5xx_is_quarantined(
    dovecot: DovecotServer,
    user_name: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(env_for(user_name), dovecot.add_user(user_name))
    dovecot.deliver(user_name, make_message("soft", 1))
    soft = SmtpSink(soft="RCPT")
    try:
        config = write_config(tmp_path, [_smtp_account(dovecot, user_name, soft.port)])
        sidecar = Sidecar(load_config(config))
        failed = sidecar.run_once()["acct"]
        assert isinstance(failed, TemporaryError) and failed.not_delivered
        assert "RCPT TO deferred: 4" in str(failed)
        assert sidecar.store.account("acct").failures == 1
        row = next(iter(sidecar.store.messages("acct").values()))
        assert row.state == MessageState.SPOOLED
        assert len(dovecot.messages(user_name)) == 1
        sidecar.close()
    finally:
        soft.stop()

    hard = SmtpSink(hard=".")
    try:
        dovecot.deliver(user_name, make_message("soft", 2))
        config = write_config(tmp_path, [_smtp_account(dovecot, user_name, hard.port)])
        sidecar = Sidecar(load_config(config))
        result = _result(sidecar.run_once()["acct"])
        assert (result.quarantined, result.delivered, result.deleted) == (2, 0, 0)
        assert len(dovecot.messages(user_name)) == 2, "refused mail stays on POP3"
        assert len(list((tmp_path / "quarantine" / "acct").glob("*.eml"))) == 2
        assert sidecar.store.account("acct").failures == 0
        sidecar.close()
    finally:
        hard.stop()


def test_backoff_grows_exponentially_with_jitter() -> None:
    for failures in range(1, 8):
        delay = backoff_delay(failures, 5.0, 300.0)
        full = min(300.0, 5.0 * 2 ** (failures - 1))
        assert full / 2 <= delay <= full
    assert len({backoff_delay(3, 5.0, 300.0) for _ in range(20)}) > 1


def test_a_hanging_account_does_not_stall_the_others(
    dovecot: DovecotServer,
    smtp_sink: SmtpSink,
    user_name: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(env_for(user_name), dovecot.add_user(user_name))
    dovecot.deliver(user_name, make_message("alive", 1))
    # A server that accepts connections and never says a word.
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    try:
        stuck = _smtp_account(dovecot, user_name, smtp_sink.port, name="stuck")
        stuck["pop3"] = dict(stuck["pop3"], port=silent.getsockname()[1], timeout=12)
        good = _smtp_account(dovecot, user_name, smtp_sink.port, name="good")
        sidecar = Sidecar(load_config(write_config(tmp_path, [stuck, good])))
        results: dict[str, object] = {}
        runner = threading.Thread(target=lambda: results.update(sidecar.run_once()))
        started = time.monotonic()
        runner.start()
        assert len(smtp_sink.wait_for(1, timeout=10)) == 1
        assert time.monotonic() - started < 10
        assert runner.is_alive(), "the stuck account is still waiting"
        runner.join(60)
        assert _result(results["good"]).delivered == 1
        assert isinstance(results["stuck"], TemporaryError)
        assert message_ids([m for _, m in smtp_sink.messages()]) == [
            "<alive.1@source.example>"
        ]
        sidecar.close()
    finally:
        silent.close()


def test_a_missing_secret_is_a_config_error_not_a_crash(
    dovecot: DovecotServer,
    smtp_sink: SmtpSink,
    user_name: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    dovecot.add_user(user_name)
    monkeypatch.delenv(env_for(user_name), raising=False)
    account = _smtp_account(dovecot, user_name, smtp_sink.port)
    sidecar = Sidecar(load_config(write_config(tmp_path, [account])))
    outcome = sidecar.run_once()["acct"]
    assert isinstance(outcome, ConfigError), outcome
    assert f"environment variable {env_for(user_name)} is not set" in str(outcome)
    assert sidecar.store.account("acct").failures == 1
    sidecar.close()


def test_an_unreachable_target_leaves_nothing_ambiguous(
    dovecot: DovecotServer,
    smtp_sink: SmtpSink,
    user_name: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """No connection to the relay means the message surely did not go: it
    is not left `delivering`, so the next poll sends it without a
    "delivery ambiguous" warning (kept for real doubt)."""
    monkeypatch.setenv(env_for(user_name), dovecot.add_user(user_name))
    dovecot.deliver(user_name, make_message("closed", 1))
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()  # nothing listens there now
    config = write_config(tmp_path, [_smtp_account(dovecot, user_name, port)])
    sidecar = Sidecar(load_config(config))
    failed = sidecar.run_once()["acct"]
    assert isinstance(failed, TemporaryError) and failed.not_delivered, failed
    (row,) = sidecar.store.messages("acct").values()
    assert row.state == MessageState.SPOOLED
    sidecar.close()

    caplog.set_level("INFO", logger="mailbridge")
    config = write_config(tmp_path, [_smtp_account(dovecot, user_name, smtp_sink.port)])
    sidecar = Sidecar(load_config(config))
    result = _result(sidecar.run_once()["acct"])
    sidecar.close()
    assert (result.delivered, result.deleted) == (1, 1)
    assert "delivery ambiguous" not in caplog.text
    assert len(smtp_sink.wait_for(1)) == 1
