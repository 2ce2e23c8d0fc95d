"""Dot-stuffing both ways, at block and line boundaries (RFC 1939, 5321)."""

from __future__ import annotations

import pytest

from mailbridge.sidecar.pop3 import _unstuff
from mailbridge.sidecar.targets.smtp import _stuff


@pytest.mark.parametrize(
    ("block", "line_start", "expected"),
    [
        (b".\r\n", True, (b"", True)),
        (b"..a\r\nb\r\n.\r\n", True, (b".a\r\nb\r\n", True)),
        (b"..a\r\n", False, (b"..a\r\n", False)),
        (b"x\r\n..\r\n...y\r\n", True, (b"x\r\n.\r\n..y\r\n", False)),
        (b"x\n.\n", True, (b"x\n", True)),
    ],
)
def test_unstuff(block: bytes, line_start: bool, expected: tuple[bytes, bool]) -> None:
    assert _unstuff(block, line_start) == expected


@pytest.mark.parametrize(
    ("block", "line_start", "expected"),
    [
        (b".a\r\n.\r\n", True, b"..a\r\n..\r\n"),
        (b".a\r\n", False, b".a\r\n"),
        (b"x\n.y\n", True, b"x\r\n..y\r\n"),
        (b"plain\r\n", True, b"plain\r\n"),
    ],
)
def test_stuff(block: bytes, line_start: bool, expected: bytes) -> None:
    assert _stuff(block, line_start) == expected
