"""How verify reaches the world: resolver, host address, ports, trust."""

from __future__ import annotations

import enum
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator

from mailbridge.errors import InputError


class Protocol(enum.StrEnum):
    SMTP = "smtp"
    IMAP = "imap"
    POP3 = "pop3"


@dataclass(frozen=True)
class Service:
    """One port of the mail host and how TLS starts on it."""

    name: str
    port: int
    protocol: Protocol
    starttls: bool


# RFC 5321 (25), RFC 8314 (465, 993, 995: implicit TLS), RFC 6409 (587).
SERVICES: dict[str, Service] = {
    s.name: s
    for s in (
        Service("smtp", 25, Protocol.SMTP, starttls=True),
        Service("submissions", 465, Protocol.SMTP, starttls=False),
        Service("submission", 587, Protocol.SMTP, starttls=True),
        Service("imaps", 993, Protocol.IMAP, starttls=False),
        Service("pop3s", 995, Protocol.POP3, starttls=False),
    )
}


class VerifyOptions(BaseModel):
    """Where verify sends its queries and connections.

    The defaults check the real world; tests point everything at loopback::

        VerifyOptions(resolver="127.0.0.1:5353", host_address="127.0.0.1",
                      ports={"smtp": 2525, "imaps": 9993}, ca_file="ca.pem")
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    resolver: str | None = Field(
        None, description="IP[:PORT] of the DNS server; the system's if unset."
    )
    timeout: float = Field(3.0, gt=0, description="Seconds per DNS query or dial.")
    host_address: str | None = Field(
        None, description="Dial this address instead of the mail host's own."
    )
    ports: dict[str, int] = Field(
        default_factory=dict, description="Service name -> port, to override."
    )
    services: tuple[str, ...] = Field(
        tuple(SERVICES), description="Which services to check."
    )
    ca_file: Path | None = Field(None, description="CA bundle to trust instead.")
    mta_sts_address: str | None = Field(
        None, description="Fetch the MTA-STS policy from this address instead."
    )
    mta_sts_port: int = Field(443, ge=1, le=65535)
    latency_target_ms: float = Field(200.0, gt=0)
    expiry_warning_days: int = Field(21, ge=0)
    concurrency: int = Field(32, ge=1, description="Domains checked at once.")
    check_dns: bool = True
    check_tls: bool = True
    check_delivery: bool = Field(
        True, description="RCPT TO the spec's addresses on port 25 (no DATA)."
    )

    @field_validator("services")
    @classmethod
    def _known(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [name for name in value if name not in SERVICES]
        if unknown:
            raise ValueError(f"unknown services {unknown}; known: {list(SERVICES)}")
        return value

    @field_validator("ports")
    @classmethod
    def _ports(cls, value: dict[str, int]) -> dict[str, int]:
        for name, port in value.items():
            if name not in SERVICES:
                raise ValueError(f"unknown service {name!r}; known: {list(SERVICES)}")
            if not 1 <= port <= 65535:
                raise ValueError(f"port {port} of {name} is out of range")
        return value

    def resolver_address(self) -> tuple[str, int] | None:
        """The (ip, port) of `resolver`, or None for the system resolver."""
        if self.resolver is None:
            return None
        return parse_address(self.resolver, default_port=53, what="--resolver")

    def port_of(self, service: str) -> int:
        return self.ports.get(service, SERVICES[service].port)


def parse_address(text: str, *, default_port: int, what: str) -> tuple[str, int]:
    """`IP`, `IP:PORT`, `[IPv6]:PORT` -> (ip, port); InputError otherwise."""
    host, port_text = text.strip(), ""
    if host.startswith("["):
        host, _, rest = host[1:].partition("]")
        port_text = rest.removeprefix(":")
    elif host.count(":") == 1:
        host, port_text = host.split(":")
    try:
        ip = str(ipaddress.ip_address(host))
        port = int(port_text) if port_text else default_port
        if not 1 <= port <= 65535:
            raise ValueError(port)
    except ValueError as err:
        raise InputError.single(
            f"{text!r} is not an address",
            location=None,
            path=(what,),
            expected="IP or IP:PORT, e.g. 127.0.0.1:5353 or [::1]:53",
            found=text,
        ) from err
    return ip, port


def parse_ports(text: str) -> dict[str, int]:
    """`smtp=2525,imaps=9993` -> {"smtp": 2525, "imaps": 9993}."""
    ports: dict[str, int] = {}
    for item in filter(None, (p.strip() for p in text.split(","))):
        name, sep, value = item.partition("=")
        if not sep or name not in SERVICES or not value.isdigit():
            raise InputError.single(
                f"{item!r} is not a service=port pair",
                path=("--ports",),
                expected=f"NAME=PORT with NAME one of {', '.join(SERVICES)}",
                found=item,
            )
        ports[name] = int(value)
    return ports
