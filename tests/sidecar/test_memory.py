"""A 50 MB message streams through the sidecar: peak memory stays far below
the message's size (the real command, measured by the kernel)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from tests.servers.dovecot import DovecotServer
from tests.sidecar.helpers import (
    SmtpSink,
    env_for,
    imap_block,
    make_message,
    pop3_block,
    run_measured,
    write_config,
)

pytestmark = [pytest.mark.servers, pytest.mark.slow]

SIZE = 50 * 1024 * 1024
PEAK_LIMIT_KB = 100 * 1024


@pytest.mark.parametrize("via", ["smtp", "imap"])
def test_a_50_mb_message_needs_little_memory(
    dovecot: DovecotServer,
    smtp_sink: SmtpSink,
    user_name: str,
    tmp_path: Path,
    via: str,
) -> None:
    password = dovecot.add_user(user_name)
    inbox = user_name + "-inbox"
    inbox_password = dovecot.add_user(inbox)
    big = make_message("big", 1, SIZE)
    dovecot.deliver(user_name, big)
    account = {
        "name": "big",
        "pop3": pop3_block(dovecot, user_name),
        "deliver_to": "alice@gmail.example",
        "via": via,
        "smtp": {
            "host": "127.0.0.1",
            "port": smtp_sink.port,
            "tls": "none",
            "insecure": True,
        },
        "imap": imap_block(dovecot, inbox),
    }
    config = write_config(tmp_path, [account], spool_dir=str(tmp_path))
    env = dict(os.environ)
    env[env_for(user_name)] = password
    env[env_for(inbox)] = inbox_password
    command = [
        str(Path(sys.executable).parent / "mailbridge"),
        "sidecar",
        "run",
        "--once",
        "--no-progress",
        "--config",
        str(config),
    ]
    code, peak_kb, stderr = run_measured(command, env)
    assert code == 0, stderr.decode()[-2000:]
    if via == "smtp":
        received = smtp_sink.wait_for(1)
        assert len(received) == 1
        lf = big.replace(b"\r\n", b"\n").rstrip(b"\n")
        assert received[0][1].rstrip(b"\n") == lf
    else:
        (received_data,) = dovecot.messages(inbox)
        assert received_data == big.replace(b"\r\n", b"\n")
    assert peak_kb < PEAK_LIMIT_KB, f"peak RSS {peak_kb} KB"
