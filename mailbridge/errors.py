"""Problems found in user input, and the exception that carries them."""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

FieldPath = tuple[str | int, ...]


class Severity(enum.StrEnum):
    """How much a problem matters: errors stop a deploy, warnings do not."""

    ERROR = "error"
    WARNING = "warning"
    INFO = "info"


def path_to_text(path: Sequence[str | int]) -> str:
    """Render a field path as `forwarders[2].to[0]`."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else part
    return text or "(document)"


@dataclass(frozen=True)
class Location:
    """Where in a file something came from; line and column count from 1."""

    file: str
    line: int | None = None
    column: int | None = None

    def __str__(self) -> str:
        if self.line is None:
            return self.file
        if self.column is None:
            return f"{self.file}:{self.line}"
        return f"{self.file}:{self.line}:{self.column}"


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an input, said so that a person can fix it.

    `message` says what is wrong; `expected` and `found` make it concrete;
    `fix` says what to do, when there is something clear to do.
    """

    message: str
    path: FieldPath = ()
    location: Location | None = None
    expected: str | None = None
    found: str | None = None
    fix: str | None = None
    severity: Severity = Severity.ERROR
    rule: str = "spec"

    def with_location(self, location: Location | None) -> Problem:
        return Problem(
            message=self.message,
            path=self.path,
            location=location,
            expected=self.expected,
            found=self.found,
            fix=self.fix,
            severity=self.severity,
            rule=self.rule,
        )

    def to_text(self) -> str:
        where = str(self.location) if self.location else "<input>"
        lines = [f"{where}: {self.severity}: {path_to_text(self.path)}: {self.message}"]
        if self.expected is not None:
            lines.append(f"    expected: {self.expected}")
        if self.found is not None:
            lines.append(f"    found:    {self.found}")
        if self.fix is not None:
            lines.append(f"    fix:      {self.fix}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, object]:
        return {
            "severity": str(self.severity),
            "rule": self.rule,
            "file": self.location.file if self.location else None,
            "line": self.location.line if self.location else None,
            "column": self.location.column if self.location else None,
            "field": path_to_text(self.path),
            "message": self.message,
            "expected": self.expected,
            "found": self.found,
            "fix": self.fix,
        }


@dataclass
class InputError(Exception):
    """Bad input: one or more problems, all reported together (exit status 2)."""

    problems: list[Problem] = field(default_factory=list)
    # Set by a command that already printed these problems as JSON on stdout.
    json_emitted: bool = field(default=False, compare=False)

    def __post_init__(self) -> None:
        super().__init__(self.to_text())

    @classmethod
    def single(cls, message: str, **kwargs: object) -> InputError:
        return cls([Problem(message, **kwargs)])  # type: ignore[arg-type]

    def to_text(self) -> str:
        count = len(self.problems)
        noun = "problem" if count == 1 else "problems"
        body = "\n".join(p.to_text() for p in self.problems)
        return f"{body}\n{count} {noun} found" if count else "no problems"


def collect(errors: Iterable[InputError]) -> InputError:
    """Merge several errors into one that lists every problem."""
    merged: list[Problem] = []
    for err in errors:
        merged.extend(err.problems)
    return InputError(merged)
