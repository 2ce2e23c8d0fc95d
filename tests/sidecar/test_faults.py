"""Connections cut in the middle of RETR, DATA and APPEND lose nothing.

A TCP proxy sits between the sidecar and the real servers and cuts
connections after a random number of bytes; the sidecar is run again after
each failed pass until the source is empty.
"""

from __future__ import annotations

import logging
import random
from pathlib import Path
from typing import Any

import pytest

from mailbridge.sidecar.account import PollResult
from mailbridge.sidecar.config import load_config
from mailbridge.sidecar.service import Sidecar
from tests.servers.dovecot import DovecotServer
from tests.sidecar.helpers import (
    SmtpSink,
    env_for,
    imap_block,
    make_message,
    message_ids,
    pop3_block,
    write_config,
)
from tests.sidecar.proxy import FaultProxy

pytestmark = [pytest.mark.servers, pytest.mark.slow]

COUNT = 40


def _fill(dovecot: DovecotServer, user: str, rng: random.Random) -> list[bytes]:
    sent = [make_message(user, i, rng.randint(20_000, 80_000)) for i in range(COUNT)]
    for data in sent:
        dovecot.deliver(user, data)
    return sent


def _drain(sidecar: Sidecar, dovecot: DovecotServer, user: str) -> int:
    """Passes until the source is empty; returns how many passes failed."""
    failures = 0
    for _ in range(200):
        result = sidecar.run_once()["faults"]
        if not isinstance(result, PollResult):
            failures += 1
            continue
        if not dovecot.messages(user):
            return failures
    raise AssertionError("the source never emptied")


def _pop3_proxy(dovecot: DovecotServer, rng: random.Random) -> FaultProxy:
    # Plaintext POP3 so the byte counts fall where the test means them to.
    proxy = FaultProxy(
        dovecot.pop3_port,
        "down",
        cut_ratio=1.0,
        min_bytes=2_000,
        max_bytes=200_000,
        rng=rng,
    )
    proxy.start()
    return proxy


def test_cuts_inside_retr_and_append(
    dovecot: DovecotServer,
    user_name: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rng = random.Random(7)
    monkeypatch.setenv(env_for(user_name), dovecot.add_user(user_name))
    inbox = user_name + "-inbox"
    monkeypatch.setenv(env_for(inbox), dovecot.add_user(inbox))
    sent = _fill(dovecot, user_name, rng)
    pop3 = _pop3_proxy(dovecot, rng)
    imap = FaultProxy(
        dovecot.imap_port,
        "up",
        cut_ratio=0.5,
        min_bytes=500,
        max_bytes=300_000,
        rng=rng,
    )
    imap.start()
    account: dict[str, Any] = {
        "name": "faults",
        "pop3": pop3_block(
            dovecot, user_name, port=pop3.port, tls="none", insecure=True
        ),
        "deliver_to": "alice@gmail.example",
        "via": "imap",
        "imap": imap_block(dovecot, inbox, port=imap.port, tls="none", insecure=True),
    }
    sidecar = Sidecar(load_config(write_config(tmp_path, [account])))
    failures = _drain(sidecar, dovecot, user_name)
    sidecar.close()
    pop3.stop()
    imap.stop()
    assert pop3.cuts >= 5 and imap.cuts >= 3, (pop3.cuts, imap.cuts)
    assert failures >= 5
    received = dovecot.messages(inbox)
    assert sorted(message_ids(received)) == sorted(message_ids(sent))
    assert sorted(received) == sorted(m.replace(b"\r\n", b"\n") for m in sent)


def test_cuts_inside_retr_and_data(
    dovecot: DovecotServer,
    smtp_sink: SmtpSink,
    user_name: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """SMTP cannot be searched: a cut after the final dot but before the reply
    may duplicate the one message in flight, and that is logged."""
    rng = random.Random(11)
    monkeypatch.setenv(env_for(user_name), dovecot.add_user(user_name))
    sent = _fill(dovecot, user_name, rng)
    pop3 = _pop3_proxy(dovecot, rng)
    smtp = FaultProxy(
        smtp_sink.port,
        "up",
        cut_ratio=0.5,
        min_bytes=300,
        max_bytes=300_000,
        rng=rng,
    )
    smtp.start()
    account = {
        "name": "faults",
        "pop3": pop3_block(
            dovecot, user_name, port=pop3.port, tls="none", insecure=True
        ),
        "deliver_to": "alice@gmail.example",
        "via": "smtp",
        "smtp": {
            "host": "127.0.0.1",
            "port": smtp.port,
            "tls": "none",
            "insecure": True,
        },
    }
    caplog.set_level(logging.WARNING, logger="mailbridge")
    sidecar = Sidecar(load_config(write_config(tmp_path, [account])))
    failures = _drain(sidecar, dovecot, user_name)
    sidecar.close()
    pop3.stop()
    smtp.stop()
    assert pop3.cuts >= 5 and smtp.cuts >= 3, (pop3.cuts, smtp.cuts)
    assert failures >= 5
    received = [m for _, m in smtp_sink.wait_for(COUNT)]
    ids = message_ids(received)
    assert set(ids) == set(message_ids(sent)), "a message was lost"
    duplicates = len(ids) - len(set(ids))
    ambiguous = sum("delivery ambiguous" in r.message for r in caplog.records)
    assert duplicates <= ambiguous
