"""Benchmark of the sidecar against a bare poplib loop, fetchmail and getmail6.

One local Dovecot holds 2,000 messages of mixed sizes (2 KB to 2 MB,
log-uniform). Each contender reads them all over plaintext POP3 on
loopback, keeping them on the server:

- floor: poplib USER/PASS and a RETR loop, delivering nothing;
- fetchmail: delivering over SMTP to Postfix's smtp-sink;
- getmail6: delivering into a Maildir (it has no SMTP destination);
- the sidecar: delivering over SMTP to the same smtp-sink.

Then: peak RSS of the real `mailbridge sidecar run --once` on the same
corpus and on a 50 MB message, one poll of an account holding 10,000 kept
messages with nothing new, and 200 accounts polled by one process.
It prints figures next to their targets; it is not a timed test.

Run: .venv/bin/python bench/sidecar_bench.py [--messages N] [--skip-others]
"""

from __future__ import annotations

import argparse
import math
import os
import poplib
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mailbridge.sidecar.account import PollResult  # noqa: E402
from mailbridge.sidecar.config import load_config  # noqa: E402
from mailbridge.sidecar.service import Sidecar  # noqa: E402
from tests.servers.common import free_port, wait_for_port  # noqa: E402
from tests.servers.dovecot import (  # noqa: E402
    MAIL_GID,
    MAIL_UID,
    DovecotServer,
    start_dovecot,
)
from tests.sidecar.helpers import (  # noqa: E402
    env_for,
    make_message,
    run_measured,
    write_config,
)

SMTP_SINK = shutil.which("smtp-sink") or "/usr/sbin/smtp-sink"
MAILBRIDGE = str(Path(sys.executable).parent / "mailbridge")


def fill(server: DovecotServer, user: str, count: int, rng: random.Random) -> int:
    """`count` messages, 2 KB to 2 MB log-uniform; returns the total bytes."""
    total = 0
    low, high = math.log(2 * 1024), math.log(2 * 1024 * 1024)
    for i in range(count):
        data = make_message(user, i, int(math.exp(rng.uniform(low, high))))
        server.deliver(user, data)
        total += len(data)
    return total


def start_sink() -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    process = subprocess.Popen(
        [SMTP_SINK, "-u", "postfix", "-m", "512", f"127.0.0.1:{port}", "256"],
        stdout=subprocess.DEVNULL,
    )
    wait_for_port(port)
    return process, port


def floor(server: DovecotServer, user: str) -> float:
    started = time.perf_counter()
    client = poplib.POP3("127.0.0.1", server.pop3_port, timeout=60)
    client.user(user)
    client.pass_(server.users[user])
    count, _ = client.stat()
    for number in range(1, count + 1):
        client.retr(number)
    client.quit()
    return time.perf_counter() - started


def fetchmail(server: DovecotServer, user: str, sink: int, work: Path) -> float:
    rc = work / "fetchmailrc"
    rc.write_text(
        "set no bouncemail\n"
        f"poll 127.0.0.1 service {server.pop3_port} protocol pop3 auth password\n"
        f'  user "{user}" password "{server.users[user]}" is "alice" here\n'
        f"  smtphost 127.0.0.1/{sink} keep fetchall sslproto ''\n"
    )
    rc.chmod(0o600)
    env = dict(os.environ, FETCHMAILHOME=str(work))
    started = time.perf_counter()
    done = subprocess.run(
        ["fetchmail", "-f", str(rc), "-i", str(work / "ids"), "--nosyslog", "-s"],
        env=env,
        capture_output=True,
        check=False,
    )
    elapsed = time.perf_counter() - started
    if done.returncode not in (0, 1):
        raise RuntimeError(f"fetchmail failed: {done.stderr.decode()[-500:]}")
    return elapsed


def getmail(server: DovecotServer, user: str, work: Path) -> float:
    """getmail6 run as the `mail` user (as root it forks a child per message
    to deliver as another user, which is not how it is used)."""
    home = work / "getmail"
    maildir = home / "Maildir"
    for sub in ("cur", "new", "tmp"):
        (maildir / sub).mkdir(parents=True, exist_ok=True)
    rc = home / "getmailrc"
    rc.write_text(
        "[retriever]\ntype = SimplePOP3Retriever\nserver = 127.0.0.1\n"
        f"port = {server.pop3_port}\nusername = {user}\n"
        f"password = {server.users[user]}\n"
        f"[destination]\ntype = Maildir\npath = {maildir}/\n"
        "[options]\nread_all = true\ndelete = false\nverbose = 0\n"
    )
    for path in [home, rc, maildir, *(maildir / s for s in ("cur", "new", "tmp"))]:
        os.chown(path, MAIL_UID, MAIL_GID)
    started = time.perf_counter()
    done = subprocess.run(
        [
            "runuser",
            "-u",
            "mail",
            "--",
            "getmail",
            "--getmaildir",
            str(home),
            "--rcfile",
            str(rc),
        ],
        capture_output=True,
        check=False,
    )
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"getmail failed: {done.stderr.decode()[-500:]}")
    return elapsed


def account(
    server: DovecotServer, user: str, sink: int, name: str, **extra: Any
) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": name,
        "pop3": {
            "host": "127.0.0.1",
            "port": server.pop3_port,
            "tls": "none",
            "insecure": True,
            "username": user,
            "password": {"env": env_for(user)},
        },
        "keep_on_server": True,
        "deliver_to": "alice@gmail.example",
        "via": "smtp",
        "smtp": {"host": "127.0.0.1", "port": sink, "tls": "none", "insecure": True},
    }
    data.update(extra)
    return data


def sidecar_pass(config: Path, seed: bool = False) -> tuple[float, dict[str, Any]]:
    sidecar = Sidecar(load_config(config))
    started = time.perf_counter()
    results = sidecar.run_once(seed=seed)
    elapsed = time.perf_counter() - started
    sidecar.close()
    failed = {k: v for k, v in results.items() if not isinstance(v, PollResult)}
    if failed:
        raise RuntimeError(f"sidecar failed: {failed}")
    return elapsed, results


def cli_peak(config: Path) -> tuple[float, int]:
    started = time.perf_counter()
    code, peak, stderr = run_measured(
        [
            MAILBRIDGE,
            "sidecar",
            "run",
            "--once",
            "--quiet",
            "--no-progress",
            "--config",
            str(config),
        ],
        dict(os.environ),
    )
    if code != 0:
        raise RuntimeError(f"sidecar CLI failed: {stderr.decode()[-500:]}")
    return time.perf_counter() - started, peak


def report(label: str, value: str, target: str = "", ok: bool | None = None) -> None:
    verdict = "" if ok is None else ("  ok" if ok else "  MISSED")
    print(f"{label:<46} {value:>16}  {target}{verdict}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--kept", type=int, default=10_000)
    parser.add_argument("--accounts", type=int, default=200)
    parser.add_argument("--skip-others", action="store_true")
    args = parser.parse_args()

    rng = random.Random(2026)
    work = Path(tempfile.mkdtemp(prefix="mailbridge-bench-"))
    os.chmod(work, 0o755)
    server = start_dovecot()
    sink, sink_port = start_sink()
    try:
        user = "bench"
        os.environ[env_for(user)] = server.add_user(user)
        total = fill(server, user, args.messages, rng)
        count = args.messages
        print(f"corpus: {count} messages, {total / 1e6:.0f} MB", flush=True)

        seconds = floor(server, user)
        floor_rate = count / seconds
        report("floor: poplib RETR loop", f"{floor_rate:.1f} msg/s")
        fetch_rate = getmail_rate = None
        if not args.skip_others:
            seconds = fetchmail(server, user, sink_port, work)
            fetch_rate = count / seconds
            report("fetchmail to smtp-sink", f"{fetch_rate:.1f} msg/s")
            try:
                seconds = getmail(server, user, work)
                getmail_rate = count / seconds
                report("getmail6 to a Maildir", f"{getmail_rate:.1f} msg/s")
            except RuntimeError as err:
                report("getmail6 to a Maildir", "failed", str(err)[-120:])

        folder = work / "sidecar"
        folder.mkdir()
        config = write_config(folder, [account(server, user, sink_port, "bench")])
        seconds, _ = sidecar_pass(config)
        rate = count / seconds
        report(
            "sidecar to smtp-sink",
            f"{rate:.1f} msg/s",
            f">= {floor_rate / 2:.1f} (half the floor)",
            rate >= floor_rate / 2,
        )
        report("sidecar / floor", f"{rate / floor_rate:.2f} x", ">= 0.5 x")
        if fetch_rate is not None:
            report(
                "sidecar / fetchmail",
                f"{rate / fetch_rate:.1f} x",
                ">= 20 x",
                rate / fetch_rate >= 20,
            )
            report("floor / fetchmail", f"{floor_rate / fetch_rate:.1f} x")
        if getmail_rate is not None:
            report("sidecar / getmail6", f"{rate / getmail_rate:.1f} x")

        folder = work / "sidecar-cli"
        folder.mkdir()
        config = write_config(folder, [account(server, user, sink_port, "bench")])
        seconds, peak = cli_peak(config)
        report(
            "sidecar CLI on the corpus: peak RSS",
            f"{peak / 1024:.1f} MB",
            "< 100 MB",
            peak < 100 * 1024,
        )

        big = "bench-big"
        os.environ[env_for(big)] = server.add_user(big)
        server.deliver(big, make_message(big, 1, 50 * 1024 * 1024))
        folder = work / "sidecar-big"
        folder.mkdir()
        config = write_config(folder, [account(server, big, sink_port, "big")])
        seconds, peak = cli_peak(config)
        report(
            "sidecar CLI, one 50 MB message: peak RSS",
            f"{peak / 1024:.1f} MB",
            "< 100 MB",
            peak < 100 * 1024,
        )

        kept = "bench-kept"
        os.environ[env_for(kept)] = server.add_user(kept)
        for i in range(args.kept):
            server.deliver(kept, make_message(kept, i, 600))
        folder = work / "sidecar-kept"
        folder.mkdir()
        config = write_config(folder, [account(server, kept, sink_port, "kept")])
        sidecar_pass(config, seed=True)
        sidecar_pass(config)  # Dovecot builds its indexes on the first visit.
        polls = [sidecar_pass(config)[0] for _ in range(5)]
        median = statistics.median(polls) * 1000
        report(
            f"poll of {args.kept} kept messages, none new",
            f"{median:.0f} ms",
            "< 200 ms",
            median < 200,
        )

        users = [f"bench-many-{i}" for i in range(args.accounts)]
        for name in users:
            os.environ[env_for(name)] = server.add_user(name)
            for i in range(3):
                server.deliver(name, make_message(name, i, 4000))
        folder = work / "sidecar-many"
        folder.mkdir()
        config = write_config(
            folder,
            [account(server, n, sink_port, n) for n in users],
            concurrency=args.accounts,
        )
        seconds, results = sidecar_pass(config)
        delivered = sum(r.delivered for r in results.values())
        report(
            f"{args.accounts} accounts in one process",
            f"{seconds:.1f} s",
            f"{delivered} of {3 * args.accounts} delivered",
            delivered == 3 * args.accounts,
        )
    finally:
        sink.terminate()
        sink.wait()
        server.stop()
        shutil.rmtree(server.root, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
