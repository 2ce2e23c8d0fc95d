"""SIGKILL at random points loses nothing and duplicates nothing.

The sidecar runs as its real command (`mailbridge sidecar run --once`), is
killed at random moments while it delivers, and restarted until the source
is empty; then the target must hold exactly what the source had.
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.servers.dovecot import DovecotServer
from tests.sidecar.helpers import (
    env_for,
    imap_block,
    make_message,
    message_ids,
    pop3_block,
    write_config,
)

pytestmark = [pytest.mark.servers, pytest.mark.slow]

MESSAGES = 500
KILLS = 20


def _command(config: Path) -> list[str]:
    return [
        str(Path(sys.executable).parent / "mailbridge"),
        "-vv",
        "sidecar",
        "run",
        "--once",
        "--no-progress",
        "--config",
        str(config),
    ]


def _run_and_kill(config: Path, env: dict[str, str], rng: random.Random) -> bool:
    """Start the sidecar, wait for a random number of delivered messages plus
    a random fraction of a message, SIGKILL it; True if it was killed while
    running."""
    wanted = rng.randint(0, 20)
    process = subprocess.Popen(
        _command(config), env=env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL
    )
    assert process.stderr is not None
    seen = 0
    while seen < wanted:
        line = process.stderr.readline()
        if not line:
            break
        if b"message delivered" in line or b"message fetched" in line:
            seen += 1
    time.sleep(rng.uniform(0, 0.03))
    alive = process.poll() is None
    process.send_signal(signal.SIGKILL)
    process.wait()
    process.stderr.close()
    return alive


def test_sigkill_at_random_points_loses_and_duplicates_nothing(
    dovecot: DovecotServer,
    user_name: str,
    tmp_path: Path,
) -> None:
    rng = random.Random(int.from_bytes(os.urandom(4)))
    source_password = dovecot.add_user(user_name)
    inbox = user_name + "-inbox"
    inbox_password = dovecot.add_user(inbox)
    sent = [
        make_message("kill", i, rng.choice([500, 3000, 20000, 150000]))
        for i in range(MESSAGES)
    ]
    for data in sent:
        dovecot.deliver(user_name, data)
    account = {
        "name": "crash",
        "pop3": pop3_block(dovecot, user_name),
        "deliver_to": "alice@gmail.example",
        "via": "imap",
        "imap": imap_block(dovecot, inbox),
    }
    config = write_config(tmp_path, [account])
    env = dict(os.environ)
    env[env_for(user_name)] = source_password
    env[env_for(inbox)] = inbox_password
    # Debug lines ("message fetched") give kill points between RETR and APPEND.
    env["PYTHONUNBUFFERED"] = "1"

    kills = 0
    attempts = 0
    while kills < KILLS and attempts < KILLS * 3:
        attempts += 1
        kills += _run_and_kill(config, env, rng)
    assert kills >= KILLS

    for _ in range(5):
        done = subprocess.run(
            _command(config), env=env, capture_output=True, timeout=600
        )
        if done.returncode == 0 and not dovecot.messages(user_name):
            break
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    assert dovecot.messages(user_name) == []
    received = dovecot.messages(inbox)
    assert sorted(message_ids(received)) == sorted(message_ids(sent))
    assert len(received) == MESSAGES
    assert sorted(received) == sorted(m.replace(b"\r\n", b"\n") for m in sent)
    # Some kills landed between APPEND and the state write: those messages
    # were found in the inbox by the probe (an IMAP UID, not an APPENDUID).
    with sqlite3.connect(tmp_path / "state.db") as db:
        (probed,) = db.execute(
            "SELECT COUNT(*) FROM sidecar_messages WHERE target_id LIKE 'uid:%'"
        ).fetchone()
    assert probed >= 1
