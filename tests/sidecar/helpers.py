"""Builders for sidecar tests: messages, configs, an smtp-sink target."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from tests.servers.common import free_port, wait_for_port
from tests.servers.dovecot import DovecotServer

SMTP_SINK = shutil.which("smtp-sink") or "/usr/sbin/smtp-sink"
_MID = re.compile(rb"^Message-ID:\s*(<[^>]*>)", re.IGNORECASE | re.MULTILINE)


def make_message(tag: str, index: int, body_bytes: int = 200) -> bytes:
    """A message with a unique Message-ID, dot-leading lines and a body of
    about `body_bytes` bytes, in CRLF form."""
    lines = [
        f"Return-Path: <sender{index}@source.example>",
        f"From: Sender {index} <sender{index}@source.example>",
        "To: alice@example.com",
        f"Subject: {tag} message {index}",
        "Date: Thu, 03 Dec 2026 10:00:00 +0000",
        f"Message-ID: <{tag}.{index}@source.example>",
        "",
        ".a line that starts with a dot",
        "..two dots",
        ".",
    ]
    filler = f"line of {tag} {index} " + "x" * 60
    size = sum(len(line) + 2 for line in lines)
    while size < body_bytes:
        lines.append(filler)
        size += len(filler) + 2
    return ("\r\n".join(lines) + "\r\n").encode()


def message_ids(messages: list[bytes]) -> list[str]:
    found = []
    for data in messages:
        match = _MID.search(data)
        found.append(match.group(1).decode() if match else "")
    return found


def pop3_block(server: DovecotServer, user: str, **extra: Any) -> dict[str, Any]:
    block: dict[str, Any] = {
        "host": "localhost",
        "port": server.pop3s_port,
        "tls": "implicit",
        "username": user,
        "password": {"env": env_for(user)},
        "ca_file": server.ca_file,
        "timeout": 10,
    }
    block.update(extra)
    return block


def sink_account(
    name: str, server: DovecotServer, user: str, port: int, **extra: Any
) -> dict[str, Any]:
    """An account fetching `user`'s mailbox into a plaintext SMTP server on
    loopback (smtp-sink), for alice@gmail.example."""
    account: dict[str, Any] = {
        "name": name,
        "pop3": pop3_block(server, user),
        "deliver_to": "alice@gmail.example",
        "via": "smtp",
        "smtp": {"host": "127.0.0.1", "port": port, "tls": "none", "insecure": True},
    }
    account.update(extra)
    return account


def env_for(user: str) -> str:
    return "SIDECAR_TEST_" + re.sub(r"[^A-Za-z0-9]", "_", user).upper()


def imap_block(server: DovecotServer, user: str, **extra: Any) -> dict[str, Any]:
    block: dict[str, Any] = {
        "host": "localhost",
        "port": server.imaps_port,
        "tls": "implicit",
        "username": user,
        "password": {"env": env_for(user)},
        "ca_file": server.ca_file,
        "timeout": 10,
    }
    block.update(extra)
    return block


def write_config(folder: Path, accounts: list[dict[str, Any]], **top: Any) -> Path:
    data: dict[str, Any] = {
        "version": 1,
        "state": {"backend": "sqlite", "path": str(folder / "state.db")},
        "quarantine_dir": str(folder / "quarantine"),
        "metrics": {"port": None},
        "retry": {"base_seconds": 0.2, "max_seconds": 1},
        "accounts": accounts,
    }
    data.update(top)
    path = folder / "sidecar.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


class SmtpSink:
    """Postfix's smtp-sink, dumping each transaction to a file.

    `soft` and `hard` name commands it answers with 4xx or 5xx.
    """

    def __init__(self, soft: str = "", hard: str = "") -> None:
        self.root = Path(tempfile.mkdtemp(prefix="mailbridge-sink-"))
        os.chmod(self.root, 0o777)
        self.port = free_port()
        args = [SMTP_SINK, "-u", "postfix", "-d", f"{self.root}/%Y%m%d%H%M%S."]
        if soft:
            args += ["-r", soft]
        if hard:
            args += ["-f", hard]
        args += ["-m", "512", f"127.0.0.1:{self.port}", "256"]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL)
        wait_for_port(self.port)

    def messages(self) -> list[tuple[str, bytes]]:
        """(recipient, message) of every transaction received, oldest first."""
        found = []
        for path in sorted(self.root.iterdir(), key=lambda p: p.stat().st_mtime):
            data = path.read_bytes()
            head, _, body = data.partition(b"\n")
            recipient = ""
            lines = data.split(b"\n")
            index = 0
            while index < len(lines) and lines[index].startswith(b"X-"):
                if lines[index].startswith(b"X-Rcpt-Args:"):
                    recipient = lines[index].split(b":", 1)[1].strip().decode()
                index += 1
            del head, body
            # smtp-sink prepends its own Received: field (3 lines).
            if index < len(lines) and lines[index].startswith(b"Received: "):
                index += 1
                while index < len(lines) and lines[index][:1] in (b" ", b"\t"):
                    index += 1
            found.append((recipient, b"\n".join(lines[index:])))
        return found

    def wait_for(self, count: int, timeout: float = 30) -> list[tuple[str, bytes]]:
        deadline = time.monotonic() + timeout
        previous: list[tuple[str, bytes]] | None = None
        while time.monotonic() < deadline:
            found = self.messages()
            # smtp-sink may still be writing the last file: wait until two
            # reads agree.
            if len(found) >= count and found == previous:
                return found
            previous = found
            time.sleep(0.2)
        return self.messages()

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)
        shutil.rmtree(self.root, ignore_errors=True)


# Linux carries a process's peak RSS across exec, so a child spawned straight
# from the (large) test process would report the test's own peak. A small
# wrapper forks the command from a fresh, small process and reports its peak.
_MEASURE = """
import json, os, sys
pid = os.fork()
if pid == 0:
    os.execvp(sys.argv[1], sys.argv[1:])
_, status, usage = os.wait4(pid, 0)
print(json.dumps({"code": os.waitstatus_to_exitcode(status),
                  "peak_kb": usage.ru_maxrss}))
"""


def run_measured(
    command: list[str], env: dict[str, str], timeout: float = 600
) -> tuple[int, int, bytes]:
    """(exit code, peak RSS in KB, stderr) of `command`."""
    import json
    import sys

    done = subprocess.run(
        [sys.executable, "-c", _MEASURE, *command],
        env=env,
        capture_output=True,
        timeout=timeout,
    )
    report = json.loads(done.stdout.decode().strip().splitlines()[-1])
    return int(report["code"]), int(report["peak_kb"]), done.stderr
