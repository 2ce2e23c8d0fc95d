"""Writing files so that readers see the old version or the new one, whole."""

from __future__ import annotations

import grp
import logging
import os
import tempfile
from pathlib import Path

log = logging.getLogger(__name__)


def set_group(fd: int, path: Path, group: str) -> None:
    """Give an open file the group `group`, when this machine has it.

    A preview tree on a machine without the mail packages lacks groups such
    as `dovecot`: the file then keeps root's group, which is stricter.
    """
    try:
        gid = grp.getgrnam(group).gr_gid
    except KeyError:
        log.warning("write group missing here file=%s group=%s", path, group)
        return
    try:
        os.fchown(fd, -1, gid)
    except PermissionError:
        log.warning("write cannot set group file=%s group=%s", path, group)


def write_atomic(
    path: Path,
    data: bytes,
    mode: int = 0o644,
    *,
    group: str | None = None,
    sync_folder: bool = False,
) -> None:
    """Write `data` to a temporary file beside `path`, fsync it, rename it.

    Mode and group are set before the rename, so a secret is never readable
    by others, not even for a moment. `sync_folder` also makes the rename
    itself durable (for keys and state that must survive a power cut).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), mode)
            if group is not None:
                set_group(handle.fileno(), path, group)
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    if sync_folder:
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
