"""Messages a target refused for good, kept on disk with the reason."""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

from .message import SpooledMessage

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


class Quarantine:
    """`<folder>/<account>/<time>-<uidl>.eml` plus a `.json` with the reason.

    The message also stays on the POP3 server: quarantine is a copy for a
    person to look at, never the only one.
    """

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)

    def put(
        self, account: str, uidl: str, message: SpooledMessage, reason: str
    ) -> Path:
        target = self.folder / _UNSAFE.sub("_", account)
        # Mail is private: only the sidecar's user may list or read it.
        target.mkdir(mode=0o700, parents=True, exist_ok=True)
        stem = f"{int(time.time())}-{_UNSAFE.sub('_', uidl)}"
        eml = target / f"{stem}.eml"
        _write_atomic(eml, message.chunks())
        info = {
            "account": account,
            "uidl": uidl,
            "message_id": message.message_id,
            "size": message.size,
            "sha256": message.sha256,
            "reason": reason,
            "quarantined_at": time.time(),
        }
        data = json.dumps(info, indent=2).encode()
        _write_atomic(target / f"{stem}.json", iter([data]))
        return eml

    def entries(self, account: str | None = None) -> list[dict[str, object]]:
        pattern = f"{_UNSAFE.sub('_', account)}/*.json" if account else "*/*.json"
        found: list[dict[str, object]] = []
        for path in sorted(self.folder.glob(pattern)):
            found.append(json.loads(path.read_text()))
        return found


def _write_atomic(path: Path, chunks: object) -> None:
    tmp = path.with_name(path.name + ".tmp")
    # Created 0600, whatever the umask: the message is never readable by
    # others, not even while it is written.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    with open(fd, "wb") as handle:
        for chunk in chunks:  # type: ignore[attr-defined]
            handle.write(chunk)
        handle.flush()
        os.fsync(handle.fileno())
    tmp.replace(path)
