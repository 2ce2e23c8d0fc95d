"""Real Postfix instances and an smtp-sink target, run from test folders.

Facts this relies on: `postfix -c DIR` only
works for folders listed in `alternate_config_directories` of the default
/etc/postfix/main.cf; Postfix logs only to syslog unless `maillog_file` is
set; `data_directory` must belong to the `postfix` user; smtp-sink run as
`postfix` must be able to write its dump folder.

    with allowed_config_directory(root / "etc/postfix"):
        prepare_runtime(root)
        server = PostfixServer(root / "etc/postfix", root / "var/log/postfix.log")
        server.start(ports=[2525])
        ...
        server.stop()
"""

from __future__ import annotations

import email
import email.message
import email.policy
import fcntl
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from tests.servers.common import (
    LOOPBACK,
    ServerError,
    run,
    stop_process,
    wait_for,
    wait_for_port,
)

POSTFIX = shutil.which("postfix") or "/usr/sbin/postfix"
POSTCONF = shutil.which("postconf") or "/usr/sbin/postconf"
SMTP_SINK = shutil.which("smtp-sink") or "/usr/sbin/smtp-sink"
DEFAULT_CONFIG = Path("/etc/postfix")
LOCK_FILE = Path("/run/mailbridge-postfix-alternate.lock")


# master.cf lines of the daemons Postfix runs internally; a test server adds
# its own listeners in front of them.
INTERNAL_SERVICES = """\
pickup    unix  n - n 60 1 pickup
cleanup   unix  n - n -  0 cleanup
qmgr      unix  n - n 300 1 qmgr
tlsmgr    unix  - - n 1000? 1 tlsmgr
rewrite   unix  - - n -  - trivial-rewrite
bounce    unix  - - n -  0 bounce
defer     unix  - - n -  0 bounce
trace     unix  - - n -  0 bounce
verify    unix  - - n -  1 verify
flush     unix  n - n 1000? 0 flush
proxymap  unix  - - n -  - proxymap
smtp      unix  - - n -  - smtp
relay     unix  - - n -  - smtp
showq     unix  n - n -  - showq
error     unix  - - n -  - error
retry     unix  - - n -  - error
discard   unix  - - n -  - discard
local     unix  - n n -  - local
virtual   unix  - n n -  - virtual
lmtp      unix  - - n -  - lmtp
anvil     unix  - - n -  1 anvil
scache    unix  - - n -  1 scache
postlog   unix-dgram n - n - 1 postlogd
"""


def _alternate_dirs() -> list[str]:
    done = run(
        [POSTCONF, "-c", str(DEFAULT_CONFIG), "-h", "alternate_config_directories"]
    )
    return [d for d in done.stdout.replace(",", " ").split() if d]


def _set_alternate_dirs(dirs: list[str]) -> None:
    value = " ".join(dirs)
    done = run(
        [
            POSTCONF,
            "-c",
            str(DEFAULT_CONFIG),
            "-e",
            f"alternate_config_directories = {value}",
        ]
    )
    if done.returncode != 0:
        raise ServerError(f"postconf -e failed: {done.stderr}")


@contextmanager
def allowed_config_directory(config_dir: Path) -> Iterator[None]:
    """Let `postfix -c config_dir` run, for the duration of the block.

    Other fixtures may edit the same setting at the same time, so each edit
    happens under a file lock and only adds or removes this one folder.
    """
    entry = str(config_dir)
    with LOCK_FILE.open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        dirs = _alternate_dirs()
        if entry not in dirs:
            _set_alternate_dirs([*dirs, entry])
    try:
        yield
    finally:
        with LOCK_FILE.open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            _set_alternate_dirs([d for d in _alternate_dirs() if d != entry])


def prepare_runtime(root: Path) -> None:
    """Create the queue, data and log folders a Postfix below `root` needs."""
    for sub in ("var/spool/postfix", "var/lib/postfix", "var/log"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    shutil.chown(root / "var/lib/postfix", user="postfix")
    # Other servers (Dovecot) put their sockets in private/ before Postfix
    # starts; `postfix check` creates the rest of the queue.
    private = root / "var/spool/postfix/private"
    private.mkdir(mode=0o700, exist_ok=True)
    shutil.chown(private, user="postfix")


def _without_default_config_warnings(
    done: subprocess.CompletedProcess[str],
) -> subprocess.CompletedProcess[str]:
    """Drop warnings about /etc/postfix/main.cf itself.

    Other tests add and remove their folders in its
    `alternate_config_directories` at the same time, and a reader may catch
    it mid-edit; such warnings say nothing about the config under test.
    """
    marker = f"{DEFAULT_CONFIG / 'main.cf'},"

    def keep(text: str) -> str:
        lines = [line for line in text.splitlines(keepends=True) if marker not in line]
        return "".join(lines)

    return subprocess.CompletedProcess(
        done.args, done.returncode, keep(done.stdout), keep(done.stderr)
    )


def postfix_check(config_dir: Path) -> subprocess.CompletedProcess[str]:
    """`postfix -c DIR check`: its output lists every problem it found."""
    done = run([POSTFIX, "-c", str(config_dir), "check"])
    return _without_default_config_warnings(done)


def postconf_n(config_dir: Path) -> subprocess.CompletedProcess[str]:
    """`postconf -c DIR -n`: warnings (unknown or unused settings) on stderr."""
    done = run([POSTCONF, "-c", str(config_dir), "-n"])
    return _without_default_config_warnings(done)


@dataclass
class PostfixServer:
    """A Postfix master in the foreground (`postfix start-fg`), one per folder."""

    config_dir: Path
    log_path: Path
    process: subprocess.Popen[bytes] | None = None

    def start(self, ports: list[int], host: str = LOOPBACK) -> None:
        check = postfix_check(self.config_dir)
        if check.returncode != 0 or check.stdout or check.stderr:
            raise ServerError(f"postfix check failed:\n{check.stdout}{check.stderr}")
        self.process = subprocess.Popen(
            [POSTFIX, "-c", str(self.config_dir), "start-fg"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )
        for port in ports:
            wait_for_port(
                port, host, process=self.process, log=self.log_path, name="postfix"
            )

    def reload(self) -> None:
        done = run([POSTFIX, "-c", str(self.config_dir), "reload"])
        if done.returncode != 0:
            raise ServerError(f"postfix reload failed: {done.stderr}")

    def flush(self) -> None:
        """Try every deferred message again now."""
        run([POSTFIX, "-c", str(self.config_dir), "flush"])

    def stop(self) -> None:
        if self.process is None:
            return
        run([POSTFIX, "-c", str(self.config_dir), "stop"])
        stop_process(self.process)
        self.process = None

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def wait_log(self, needle: str, timeout: float = 20.0) -> str:
        """Wait until the log holds `needle`; return the first line with it."""

        def probe() -> str | None:
            for line in self.log_text().splitlines():
                if needle in line:
                    return line
            return None

        return wait_for(
            probe,
            timeout=timeout,
            what=f"{needle!r} in the Postfix log",
            log=self.log_path,
        )


@dataclass(frozen=True)
class SinkMessage:
    """One transaction smtp-sink received: envelope and message."""

    mail_from: str
    rcpt_to: tuple[str, ...]
    message: email.message.EmailMessage
    raw: bytes


def _parse_dump(raw: bytes) -> SinkMessage:
    """smtp-sink's dump: its own X-* lines (SMTP arguments), then the message."""
    lines = raw.split(b"\n")
    mail_from = ""
    rcpts: list[str] = []
    index = 0
    for index, line in enumerate(lines):  # noqa: B007
        text = line.decode(errors="replace").rstrip("\r")
        if text.startswith("X-Mail-Args: "):
            mail_from = text.split(" ", 1)[1].split(" ", 1)[0].strip("<>")
        elif text.startswith("X-Rcpt-Args: "):
            rcpts.append(text.split(" ", 1)[1].split(" ", 1)[0].strip("<>"))
        elif not text.startswith(("X-Client-", "X-Helo-", "X-Mail-", "X-Rcpt-")):
            break
    body = b"\n".join(lines[index:])
    parsed = email.message_from_bytes(body, policy=email.policy.default)
    assert isinstance(parsed, email.message.EmailMessage)
    return SinkMessage(mail_from, tuple(rcpts), parsed, body)


@dataclass
class SmtpSink:
    """Postfix's smtp-sink on loopback, keeping every message it receives."""

    root: Path
    port: int
    host: str = LOOPBACK
    process: subprocess.Popen[bytes] | None = None
    seen: set[tuple[str, str]] = field(default_factory=set)

    @property
    def dump_dir(self) -> Path:
        return self.root / "dump"

    def start(self) -> None:
        self.dump_dir.mkdir(parents=True, exist_ok=True)
        shutil.chown(self.dump_dir, user="postfix")
        self.process = subprocess.Popen(
            [
                SMTP_SINK,
                "-u",
                "postfix",
                "-d",
                f"{self.dump_dir}/%M%S.",
                f"{self.host}:{self.port}",
                "64",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )
        wait_for_port(self.port, self.host, process=self.process, name="smtp-sink")

    def stop(self) -> None:
        stop_process(self.process)
        self.process = None

    def messages(self) -> list[SinkMessage]:
        return [_parse_dump(p.read_bytes()) for p in sorted(self.dump_dir.iterdir())]

    def wait_message(
        self,
        rcpt: str,
        timeout: float = 30.0,
        log: Path | None = None,
        containing: str | None = None,
    ) -> SinkMessage:
        """The first message for `rcpt` not returned before.

        With `containing`, only a message whose text holds it (a Message-ID,
        say) counts.
        """

        def probe() -> SinkMessage | None:
            for path in sorted(self.dump_dir.iterdir()):
                key = path.name
                raw = path.read_bytes()
                if containing is not None and containing.encode() not in raw:
                    continue
                found = _parse_dump(raw)
                if rcpt in found.rcpt_to and (key, rcpt) not in self.seen:
                    self.seen.add((key, rcpt))
                    return found
            return None

        return wait_for(
            probe, timeout=timeout, what=f"a message for {rcpt} at smtp-sink", log=log
        )
