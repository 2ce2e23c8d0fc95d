"""The quarantine folder: mail kept for a person, readable by nobody else."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from mailbridge.sidecar.message import SpooledMessage
from mailbridge.sidecar.quarantine import Quarantine
from tests.sidecar.helpers import make_message


def test_quarantined_mail_is_private_whatever_the_umask(tmp_path: Path) -> None:
    data = make_message("private", 1, 5000)
    message = SpooledMessage()
    message.write(data)
    old = os.umask(0o022)
    try:
        eml = Quarantine(tmp_path / "q").put("acct/../x", "UID 1", message, "550 no")
    finally:
        os.umask(old)
        message.close()
    assert eml.parent == tmp_path / "q" / "acct_.._x"
    assert stat.S_IMODE(eml.parent.stat().st_mode) == 0o700
    for path in eml.parent.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert eml.read_bytes() == data
    (entry,) = Quarantine(tmp_path / "q").entries("acct/../x")
    assert entry["reason"] == "550 no"
    assert entry["uidl"] == "UID 1"
    assert entry["message_id"] == "<private.1@source.example>"
    assert sorted(p.suffix for p in eml.parent.iterdir()) == [".eml", ".json"]
