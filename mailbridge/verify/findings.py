"""What verify found: one model per finding, grouped per domain."""

from __future__ import annotations

import enum

from pydantic import BaseModel, ConfigDict, Field


class Status(enum.StrEnum):
    """How a check came out; `unknown` means it could not be decided.

    A DNS timeout or a server failure is `unknown`, never "missing": the
    record may well be there, the answer just did not arrive.
    """

    OK = "ok"
    WARNING = "warning"
    ERROR = "error"
    UNKNOWN = "unknown"

    @property
    def rank(self) -> int:
        return _RANK[self]


_RANK = {Status.OK: 0, Status.UNKNOWN: 1, Status.WARNING: 2, Status.ERROR: 3}


class Finding(BaseModel):
    """One check of one record or port.

    Example: check `spf.lookups`, subject `example.com TXT`, status error,
    expected `at most 10 DNS lookups`, found `12`, with why and fix.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    check: str = Field(description="Check id, such as `mx` or `tls.submission`.")
    subject: str = Field(description="The record (`name TYPE`) or `host:port`.")
    status: Status
    expected: str | None = Field(None, description="What the spec or RFC wants.")
    found: str | None = Field(None, description="What is live right now.")
    why: str | None = Field(None, description="Why it matters.")
    fix: str | None = Field(None, description="How to fix it.")
    detail: dict[str, float | int | str] = Field(
        default_factory=dict,
        description="Measurements, such as latency_ms or days_left.",
    )

    def to_text(self) -> str:
        lines = [f"{self.status.upper():8} {self.check}  {self.subject}"]
        for label, value in (
            ("expected", self.expected),
            ("found", self.found),
            ("why", self.why),
            ("fix", self.fix),
        ):
            if value is not None and self.status != Status.OK:
                lines.append(f"         {label + ':':9} {value}")
        return "\n".join(lines)


class Report(BaseModel):
    """Every finding for one domain."""

    model_config = ConfigDict(extra="forbid")

    domain: str
    findings: list[Finding] = Field(default_factory=list)

    @property
    def status(self) -> Status:
        """The worst status of any finding; ok for none."""
        worst = Status.OK
        for finding in self.findings:
            if finding.status.rank > worst.rank:
                worst = finding.status
        return worst

    def count(self, status: Status) -> int:
        return sum(1 for f in self.findings if f.status == status)

    def by_check(self, check: str) -> list[Finding]:
        """Findings whose check id is `check` or starts with `check.`."""
        return [
            f
            for f in self.findings
            if f.check == check or f.check.startswith(check + ".")
        ]

    def to_dict(self) -> dict[str, object]:
        return {
            "domain": self.domain,
            "status": str(self.status),
            "findings": [f.model_dump(mode="json") for f in self.findings],
        }
