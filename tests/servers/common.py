"""Helpers every real-server fixture needs: ports, folders, processes, logs.

Typical use in a fixture::

    root = server_dir("postfix")
    port = free_port()
    proc = subprocess.Popen([...])
    wait_for_port(port, process=proc, log=root / "server.log")
    ...
    stop_process(proc)
    remove_dir(root)
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

LOOPBACK = "127.0.0.1"
# A loopback address outside the servers' `mynetworks`: a client bound to
# it plays "the internet".
OUTSIDE = "127.0.0.5"

T = TypeVar("T")


class ServerError(RuntimeError):
    """A test server did not start or did not behave; the message has its log."""


def free_port(host: str = LOOPBACK, taken: set[int] | None = None) -> int:
    """A TCP port on `host` that nothing listens on now (and not in `taken`)."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((host, 0))
            port = int(sock.getsockname()[1])
        if taken is None or port not in taken:
            if taken is not None:
                taken.add(port)
            return port
    raise ServerError(f"no free TCP port on {host}")


def free_ports(count: int, host: str = LOOPBACK) -> list[int]:
    """`count` distinct free TCP ports on `host`."""
    taken: set[int] = set()
    return [free_port(host, taken) for _ in range(count)]


def port_open(port: int, host: str = LOOPBACK) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def wait_for_port(
    port: int,
    host: str = LOOPBACK,
    *,
    timeout: float = 15.0,
    process: subprocess.Popen[bytes] | None = None,
    log: Path | None = None,
    name: str = "server",
) -> None:
    """Return once `host:port` accepts connections; raise with the log if not.

    A `process` that exits while we wait fails at once instead of at timeout.
    """
    deadline = time.monotonic() + timeout
    while not port_open(port, host):
        if process is not None and process.poll() is not None:
            raise ServerError(
                f"{name} exited with status {process.returncode} before "
                f"listening on {host}:{port}\n{log_tail(log)}"
            )
        if time.monotonic() > deadline:
            raise ServerError(
                f"{name} did not listen on {host}:{port} within {timeout}s\n"
                + log_tail(log)
            )
        time.sleep(0.05)


def wait_for(
    probe: Callable[[], T | None],
    *,
    timeout: float = 15.0,
    what: str = "condition",
    log: Path | None = None,
) -> T:
    """Poll `probe` until it returns something other than None (or False)."""
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if result is not None and result is not False:
            return result
        if time.monotonic() > deadline:
            raise ServerError(
                f"timed out after {timeout}s waiting for {what}\n" + log_tail(log)
            )
        time.sleep(0.1)


def server_dir(prefix: str) -> Path:
    """A new empty folder for one server's files, removed with `remove_dir`.

    It lives below a root-owned folder whose ancestors nobody else may
    write to (OpenDKIM refuses keys below a world-writable folder such as
    /tmp), and it can be traversed by the daemons' own users (dovecot,
    postfix, opendkim), which reach their files through it.
    """
    base = Path("/run/mailbridge-tests")
    try:
        base.mkdir(mode=0o755, exist_ok=True)
    except OSError:
        base = Path(tempfile.gettempdir())
    path = Path(tempfile.mkdtemp(prefix=f"{prefix}-", dir=base))
    path.chmod(0o755)
    return path


def remove_dir(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def log_tail(path: Path | None, lines: int = 80) -> str:
    """The last `lines` lines of a log file, for failure messages."""
    if path is None:
        return ""
    try:
        text = path.read_text(errors="replace")
    except OSError as err:
        return f"(no log at {path}: {err.strerror})"
    tail = text.splitlines()[-lines:]
    return f"--- last lines of {path} ---\n" + "\n".join(tail)


def stop_process(
    process: subprocess.Popen[bytes] | None, timeout: float = 10.0
) -> None:
    """SIGTERM, then SIGKILL after `timeout`; always reaps the process."""
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def wait_pid_gone(pid: int, timeout: float = 10.0) -> bool:
    """True once no process has `pid` (a daemon we stopped indirectly)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False


def run(args: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    """Run a program to completion, capturing text output (never raises)."""
    return subprocess.run(  # type: ignore[call-overload, no-any-return]
        args, capture_output=True, text=True, check=False, **kwargs
    )
