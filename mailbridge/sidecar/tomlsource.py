"""TOML config files, with problems located at their line like YAML's."""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from mailbridge.errors import FieldPath, InputError, Location
from mailbridge.spec.yamlsource import YamlDocument

_DECODE_AT = re.compile(r"\(at line (\d+), column (\d+)\)")


@dataclass
class TomlDocument(YamlDocument):
    """Parsed TOML and its text; `locate` finds a field path's line by
    walking table headers (`[[accounts]]`, `[accounts.pop3]`) and keys."""

    lines: list[str] = field(default_factory=list)

    def locate(self, path: FieldPath, *, key: bool = False) -> Location:
        start = 0
        found = 0
        column = 1
        names: list[str] = []
        for part in path:
            if isinstance(part, int):
                hit = self._nth_header(".".join(names), part, start)
            else:
                names.append(part)
                hit = self._key(part, start)
            if hit is None:
                break
            start = found = hit
            if not isinstance(part, int):
                column = self.lines[hit].find(part) + 1 or 1
        return Location(self.file, found + 1, column)

    def _nth_header(self, name: str, index: int, start: int) -> int | None:
        header = re.compile(rf"^\s*\[\[\s*{re.escape(name)}\s*\]\]")
        count = -1
        for number in range(start, len(self.lines)):
            if header.match(self.lines[number]):
                count += 1
                if count == index:
                    return number
        return None

    def _key(self, name: str, start: int) -> int | None:
        word = re.escape(name)
        pattern = re.compile(
            rf"^\s*(\[\[?[^\]]*\b{word}\s*\]\]?|{word}\s*=)|[{{,]\s*{word}\s*="
        )
        for number in range(start, len(self.lines)):
            if pattern.search(self.lines[number]):
                return number
        return None


def read_toml(path: Path) -> TomlDocument:
    """Parse a TOML file; a syntax error is an InputError with its position."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise InputError.single(
            f"cannot read {path}: {err.strerror}", location=Location(str(path))
        ) from err
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        match = _DECODE_AT.search(str(err))
        line, column = (int(match[1]), int(match[2])) if match else (None, None)
        raise InputError.single(
            "this is not valid TOML: " + _DECODE_AT.sub("", str(err)).strip(),
            location=Location(str(path), line, column),
            fix="correct the syntax at this position",
        ) from err
    return TomlDocument(str(path), data, None, text.splitlines())
