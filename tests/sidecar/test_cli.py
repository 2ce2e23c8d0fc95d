"""The `mailbridge sidecar` command: SIGTERM finishes the message in flight
and exits cleanly; a large first sync shows a progress bar; a state store
that cannot be opened is reported as bad input; it all works without
Pulumi."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mailbridge.cli.main import main
from tests.servers.common import free_port
from tests.servers.dovecot import DovecotServer
from tests.sidecar.helpers import (
    SmtpSink,
    env_for,
    imap_block,
    make_message,
    pop3_block,
    sink_account,
    write_config,
)

pytestmark = pytest.mark.servers


def test_sigterm_finishes_the_message_in_flight_and_exits(
    dovecot: DovecotServer, user_name: str, tmp_path: Path
) -> None:
    password = dovecot.add_user(user_name)
    inbox = user_name + "-inbox"
    inbox_password = dovecot.add_user(inbox)
    for i in range(300):
        dovecot.deliver(user_name, make_message("term", i, 30_000))
    account = {
        "name": "term",
        "pop3": pop3_block(dovecot, user_name),
        "deliver_to": "alice@gmail.example",
        "via": "imap",
        "imap": imap_block(dovecot, inbox),
    }
    config = write_config(tmp_path, [account])
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env[env_for(user_name)] = password
    env[env_for(inbox)] = inbox_password
    process = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "mailbridge"),
            "sidecar",
            "run",
            "--no-progress",
            "--config",
            str(config),
        ],
        env=env,
        stderr=subprocess.PIPE,
    )
    assert process.stderr is not None
    delivered = 0
    while delivered < 20:
        line = process.stderr.readline()
        assert line, "the sidecar stopped on its own"
        delivered += b"message delivered" in line
    process.send_signal(signal.SIGTERM)
    started = time.monotonic()
    rest = process.stderr.read().decode()
    assert process.wait(timeout=60) == 0, rest[-2000:]
    process.stderr.close()
    assert time.monotonic() - started < 30
    assert "finishing messages in flight" in rest

    with sqlite3.connect(tmp_path / "state.db") as db:
        states = dict(
            db.execute(
                "SELECT state, COUNT(*) FROM sidecar_messages GROUP BY state"
            ).fetchall()
        )
    assert "delivering" not in states
    in_inbox = len(dovecot.messages(inbox))
    assert states.get("deleted", 0) == in_inbox
    assert 20 <= in_inbox < 300, "stopped part-way, after the message in flight"
    assert len(dovecot.messages(user_name)) == 300 - in_inbox


def test_a_large_first_sync_shows_a_progress_bar(
    dovecot: DovecotServer,
    smtp_sink: SmtpSink,
    user_name: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv(env_for(user_name), dovecot.add_user(user_name))
    for i in range(25):
        dovecot.deliver(user_name, make_message("bar", i))
    account = sink_account("first-sync", dovecot, user_name, smtp_sink.port)
    config = write_config(tmp_path, [account])
    assert (
        main(["sidecar", "run", "--once", "--progress", "--config", str(config)])
        is None
    )
    err = capsys.readouterr().err
    assert "first-sync" in err and "100%" in err
    assert "delivered=25" in err


# An account that is never reached: these tests stop before any poll.
UNUSED = {
    "name": "isp",
    "pop3": {"host": "localhost", "username": "a", "password": {"env": "X"}},
    "deliver_to": "alice@gmail.example",
    "via": "smtp",
    "smtp": {"host": "localhost"},
}


@pytest.mark.parametrize("command", ["run", "status"])
def test_a_state_store_that_cannot_be_opened_is_bad_input(
    tmp_path: Path, command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    config = write_config(
        tmp_path,
        [UNUSED],
        state={"backend": "sqlite", "path": str(blocker / "state.db")},
    )
    args = ["sidecar", command, "--config", str(config)]
    with pytest.raises(SystemExit) as exited:
        main([*args, "--once"] if command == "run" else args)
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert f"cannot open the SQLite state store {blocker / 'state.db'}" in err
    assert "state.path" in err


def test_an_unreachable_postgres_is_bad_input_without_the_password(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for dsn in (
        f"host=127.0.0.1 port={free_port()} user=u password=hunter2-9f dbname=d",
        "host=127.0.0.1 hunter2-9f",
    ):
        monkeypatch.setenv("SIDECAR_TEST_DSN", dsn)
        config = write_config(
            tmp_path,
            [UNUSED],
            state={"backend": "postgres", "dsn": {"env": "SIDECAR_TEST_DSN"}},
        )
        with pytest.raises(SystemExit) as exited:
            main(["sidecar", "status", "--config", str(config)])
        assert exited.value.code == 2
        err = capsys.readouterr().err
        assert "cannot open the PostgreSQL state store" in err
        assert "state.dsn" in err
        assert "hunter2" not in err
        assert "Traceback" not in err


# Runs the CLI with every `pulumi` module made unimportable.
WITHOUT_PULUMI = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("pulumi", "pulumi_policy"):
            raise ImportError("pulumi is not installed here: " + name)
sys.meta_path.insert(0, Block())
from mailbridge.cli.main import main
try:
    main(sys.argv[1:])
finally:
    loaded = [m for m in sys.modules if m.split(".")[0].startswith("pulumi")]
    print("pulumi modules:", loaded, file=sys.stderr)
"""


def test_the_sidecar_runs_without_pulumi(
    dovecot: DovecotServer, smtp_sink: SmtpSink, user_name: str, tmp_path: Path
) -> None:
    """The sidecar is installed on hosts and in containers without Pulumi."""
    password = dovecot.add_user(user_name)
    dovecot.deliver(user_name, make_message("nopulumi", 1))
    account = sink_account("plain", dovecot, user_name, smtp_sink.port)
    config = write_config(tmp_path, [account])
    env = dict(os.environ, **{env_for(user_name): password})
    for args in (["run", "--once", "--no-progress"], ["status", "--json"]):
        done = subprocess.run(
            [sys.executable, "-c", WITHOUT_PULUMI, "sidecar", *args]
            + ["--config", str(config)],
            env=env,
            capture_output=True,
            timeout=120,
        )
        err = done.stderr.decode()
        assert done.returncode == 0, err[-2000:]
        assert "pulumi modules: []" in err
    assert len(smtp_sink.wait_for(1)) == 1
    assert dovecot.messages(user_name) == []
