"""Write a rendered host tree to a target folder, here or over SSH, and reload.

A target stands for the host's `/` at `root`: the rendered path
`/etc/postfix/main.cf` lands at `<root>/etc/postfix/main.cf`. Files are
written atomically (temporary file, then rename) with their mode and group
set before they appear, so a server never reads half a file or a key file
with loose permissions.
"""

from __future__ import annotations

import base64
import contextlib
import grp
import io
import logging
import posixpath
import secrets
import shlex
import stat
import subprocess
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from mailbridge.fsutil import write_atomic

log = logging.getLogger(__name__)

# Which service reads which path (the first matching prefix wins), and how
# it picks up new files. Reloads run in this order: systemd learns of new
# units before the services they start are restarted.
SERVICE_PREFIXES: tuple[tuple[str, str], ...] = (
    ("/etc/systemd/system/", "systemd"),
    ("/etc/postfix/", "postfix"),
    ("/etc/dovecot/", "dovecot"),
    ("/etc/opendkim-ed25519.conf", "opendkim-ed25519"),
    ("/etc/opendkim/ed25519/", "opendkim-ed25519"),
    ("/etc/opendkim", "opendkim"),
    ("/etc/postsrsd", "postsrsd"),
    ("/etc/default/postsrsd", "postsrsd"),
    ("/etc/rspamd/", "rspamd"),
    ("/etc/mailbridge/", "mailbridge-sidecar"),
)
RELOAD_COMMANDS: Mapping[str, str] = {
    "systemd": "systemctl daemon-reload",
    "postfix": "postfix reload",
    "dovecot": "doveadm reload",
    "opendkim": "service opendkim restart",
    "opendkim-ed25519": "systemctl restart opendkim-ed25519",
    "postsrsd": "service postsrsd restart",
    "rspamd": "service rspamd reload",
    "mailbridge-sidecar": "service mailbridge-sidecar restart",
}


class HostError(Exception):
    """A target could not be reached, written, or a reload failed."""


@dataclass(frozen=True)
class HostFile:
    """One file as it should be on the host: bytes, mode, and owning group."""

    content: bytes
    mode: int = 0o644
    group: str | None = None

    def to_dict(self) -> dict[str, str | None]:
        """Plain strings, as Pulumi carries them (numbers would become floats)."""
        try:
            text, encoding = self.content.decode("utf-8"), "utf-8"
        except UnicodeDecodeError:
            text, encoding = base64.b64encode(self.content).decode(), "base64"
        return {
            "content": text,
            "encoding": encoding,
            "mode": f"{self.mode:04o}",
            "group": self.group,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> HostFile:
        text = str(data["content"])
        if data.get("encoding", "utf-8") == "base64":
            content = base64.b64decode(text)
        else:
            content = text.encode("utf-8")
        group = data.get("group")
        return cls(content, int(str(data["mode"]), 8), str(group) if group else None)


class Target(Protocol):
    """Where a host tree goes: file operations and commands on one host."""

    def read(self, path: str) -> HostFile | None: ...

    def write(self, path: str, file: HostFile) -> None: ...

    def remove(self, path: str) -> None: ...

    def run(self, command: str) -> str: ...

    def close(self) -> None: ...


def _relative(path: str) -> str:
    clean = posixpath.normpath("/" + path.lstrip("/"))
    if clean == "/" or ".." in path.split("/"):
        raise HostError(f"refusing to write outside the host tree: {path!r}")
    return clean.lstrip("/")


def _group_name(gid: int) -> str | None:
    if gid == 0:
        return None
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


@dataclass
class LocalTarget:
    """A folder on this machine standing for the host's `/`."""

    root: Path

    def _path(self, path: str) -> Path:
        return self.root / _relative(path)

    def read(self, path: str) -> HostFile | None:
        target = self._path(path)
        try:
            info = target.stat()
            content = target.read_bytes()
        except FileNotFoundError:
            return None
        return HostFile(content, stat.S_IMODE(info.st_mode), _group_name(info.st_gid))

    def write(self, path: str, file: HostFile) -> None:
        write_atomic(self._path(path), file.content, file.mode, group=file.group)

    def remove(self, path: str) -> None:
        target = self._path(path)
        target.unlink(missing_ok=True)
        _prune_empty(target.parent, self.root)

    def run(self, command: str) -> str:
        done = subprocess.run(
            command, shell=True, capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            raise HostError(
                f"command {command!r} failed with status {done.returncode}: "
                f"{(done.stderr or done.stdout).strip()}"
            )
        return done.stdout

    def close(self) -> None:
        return None


def _prune_empty(folder: Path, root: Path) -> None:
    while folder != root and root in folder.parents:
        try:
            folder.rmdir()
        except OSError:
            return
        folder = folder.parent


@dataclass
class SSHSettings:
    """How to reach a host over SSH; `host_key` is an OpenSSH public key line.

    Without `host_key` the user's known_hosts decides, and an unknown host
    is refused.
    """

    host: str
    port: int
    user: str
    # Never in a repr: settings may end up in a log line or an error.
    private_key: str = field(repr=False)
    host_key: str | None = None
    timeout: float = 15.0

    def where(self) -> str:
        return f"{self.user}@{self.host}:{self.port}"


def _load_private_key(text: str) -> object:
    import paramiko

    errors = []
    for kind in (paramiko.Ed25519Key, paramiko.ECDSAKey, paramiko.RSAKey):
        try:
            return kind.from_private_key(io.StringIO(text))
        except (paramiko.SSHException, ValueError) as err:
            errors.append(f"{kind.__name__}: {err}")
    raise HostError("the SSH private key cannot be read: " + "; ".join(errors))


class SSHTarget:
    """A folder on a remote host standing for its `/`, reached over SSH."""

    def __init__(self, settings: SSHSettings, root: str) -> None:
        import paramiko

        self.settings = settings
        self.root = root
        self.client = paramiko.SSHClient()
        if settings.host_key:
            parts = settings.host_key.split()
            try:
                key = paramiko.PKey.from_type_string(
                    parts[0], base64.b64decode(parts[1], validate=True)
                )
            except (IndexError, ValueError, paramiko.SSHException) as err:
                raise HostError(
                    f"host_key of {settings.where()} is not an OpenSSH public "
                    f"key line such as `ssh-ed25519 AAAA...`: {err}"
                ) from err
            known = (
                settings.host
                if settings.port == 22
                else f"[{settings.host}]:{settings.port}"
            )
            self.client.get_host_keys().add(known, key.get_name(), key)
        else:
            self.client.load_system_host_keys()
        self.client.set_missing_host_key_policy(paramiko.RejectPolicy())
        try:
            self.client.connect(
                settings.host,
                port=settings.port,
                username=settings.user,
                pkey=_load_private_key(settings.private_key),  # type: ignore[arg-type]
                timeout=settings.timeout,
                allow_agent=False,
                look_for_keys=False,
            )
        except (OSError, paramiko.SSHException) as err:
            raise HostError(f"cannot log in to {settings.where()}: {err}") from err
        self.sftp = self.client.open_sftp()

    def _path(self, path: str) -> str:
        return posixpath.join(self.root, _relative(path))

    def read(self, path: str) -> HostFile | None:
        target = self._path(path)
        try:
            info = self.sftp.stat(target)
        except FileNotFoundError:
            return None
        with self.sftp.open(target, "rb") as handle:
            content = handle.read()
        group = self.run(f"stat -c %G {shlex.quote(target)}").strip()
        mode = stat.S_IMODE(info.st_mode or 0)
        return HostFile(content, mode, None if group == "root" else group)

    def write(self, path: str, file: HostFile) -> None:
        target = self._path(path)
        folder, name = posixpath.split(target)
        # A new name each time, opened only if nothing is there yet ("x"):
        # never written through a link someone left in the folder.
        tmp = posixpath.join(folder, f".{name}.{secrets.token_hex(8)}.mailbridge-tmp")
        self.run(f"mkdir -p {shlex.quote(folder)}")
        try:
            with self.sftp.open(tmp, "wbx") as handle:
                self.sftp.chmod(tmp, file.mode)
                handle.write(file.content)
            if file.group is not None:
                self.run(f"chgrp {shlex.quote(file.group)} {shlex.quote(tmp)}")
            self.sftp.posix_rename(tmp, target)
        except BaseException:
            # A half-made file (maybe holding a secret) is not left behind.
            with contextlib.suppress(OSError):
                self.sftp.remove(tmp)
            raise

    def remove(self, path: str) -> None:
        target = self._path(path)
        with contextlib.suppress(FileNotFoundError):
            self.sftp.remove(target)
        # Remove folders left empty, up to (not including) the root.
        folder = posixpath.dirname(target)
        root = posixpath.normpath(self.root)
        while folder.startswith(root + "/") and folder != root:
            try:
                self.sftp.rmdir(folder)
            except OSError:
                break
            folder = posixpath.dirname(folder)

    def run(self, command: str) -> str:
        _, stdout, stderr = self.client.exec_command(
            command, timeout=self.settings.timeout
        )
        out = stdout.read().decode("utf-8", "replace")
        status = stdout.channel.recv_exit_status()
        if status != 0:
            err = stderr.read().decode("utf-8", "replace").strip()
            raise HostError(
                f"command {command!r} on {self.settings.where()} failed with "
                f"status {status}: {err or out.strip()}"
            )
        return out

    def close(self) -> None:
        self.sftp.close()
        self.client.close()


@contextlib.contextmanager
def open_target(connection: Mapping[str, object]) -> Iterator[Target]:
    """A target from the plain dict the MailHost resource carries.

    `{"backend": "local", "root": "/abs/path"}` or `{"backend": "ssh",
    "host": ..., "port": ..., "user": ..., "private_key": ..., "host_key":
    ..., "root": "/"}`.
    """
    target: Target
    if connection["backend"] == "local":
        target = LocalTarget(Path(str(connection["root"])))
    elif connection["backend"] == "ssh":
        host_key = connection.get("host_key")
        settings = SSHSettings(
            host=str(connection["host"]),
            port=int(float(str(connection["port"]))),
            user=str(connection["user"]),
            private_key=str(connection["private_key"]),
            host_key=str(host_key) if host_key else None,
        )
        target = SSHTarget(settings, str(connection["root"]))
    else:
        raise HostError(f"unknown host backend {connection['backend']!r}")
    try:
        yield target
    finally:
        target.close()


def services_for(paths: Iterable[str]) -> list[str]:
    """The services that read any of `paths`, in the order they reload."""
    found = set()
    for path in paths:
        absolute = "/" + path.lstrip("/")
        for prefix, service in SERVICE_PREFIXES:
            if absolute.startswith(prefix):
                found.add(service)
                break
    return [service for service in RELOAD_COMMANDS if service in found]


def apply_tree(
    target: Target,
    wanted: Mapping[str, HostFile],
    previous: Iterable[str] = (),
) -> list[str]:
    """Make the target hold `wanted`; remove `previous` paths no longer wanted.

    Returns the paths written or removed, sorted. Files already as wanted
    are left untouched, so a second run changes nothing.
    """
    changed = []
    for path in sorted(wanted):
        if target.read(path) != wanted[path]:
            target.write(path, wanted[path])
            changed.append(path)
    for path in sorted(set(previous) - set(wanted)):
        if target.read(path) is not None:
            target.remove(path)
            changed.append(path)
    log.info("host wrote=%d files", len(changed))
    return sorted(changed)


def read_tree(target: Target, paths: Iterable[str]) -> dict[str, HostFile]:
    """The files of `paths` as the target has them now; absent ones left out."""
    found = {}
    for path in paths:
        current = target.read(path)
        if current is not None:
            found[path] = current
    return found


def reload_services(
    target: Target, services: Iterable[str], commands: Mapping[str, str]
) -> list[str]:
    """Run each service's reload command on the target; returns the services."""
    done = []
    for service in services:
        command = commands.get(service)
        if command is None:
            log.warning("host service=%s has no reload command; skipped", service)
            continue
        target.run(command)
        log.info("host reloaded service=%s", service)
        done.append(service)
    return done
