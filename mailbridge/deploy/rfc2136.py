"""Record sets on a primary name server through RFC 2136 updates signed with TSIG.

Each function opens its own connection, so callers (Pulumi dynamic providers
among them) hold no client between calls. Updates go over TCP; a record set
is replaced in one update message, so readers never see it half-written.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.tsig
import dns.update

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 10.0


class DnsUpdateError(Exception):
    """The server refused an update or a query, or could not be reached."""


@dataclass(frozen=True)
class ServerSettings:
    """Where the primary is and the TSIG key that may update `zone`.

    ::

        ServerSettings("127.0.0.1", 53, "example.com", "deploy",
                       "hmac-sha256", "base64secret==")
    """

    server: str
    port: int
    zone: str
    tsig_name: str
    tsig_algorithm: str
    # Never in a repr: settings may end up in a log line or an error.
    tsig_secret: str = field(repr=False)
    timeout: float = DEFAULT_TIMEOUT

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> ServerSettings:
        """Settings from the plain dict a dynamic provider receives."""
        return cls(
            server=str(data["server"]),
            port=int(float(str(data["port"]))),
            zone=str(data["zone"]),
            tsig_name=str(data["tsig_name"]),
            tsig_algorithm=str(data["tsig_algorithm"]),
            tsig_secret=str(data["tsig_secret"]),
            timeout=float(str(data.get("timeout", DEFAULT_TIMEOUT))),
        )

    def where(self) -> str:
        return f"{self.server}:{self.port} zone={self.zone}"

    def keyring(self) -> dict[dns.name.Name, dns.tsig.Key]:
        key = dns.tsig.Key(self.tsig_name, self.tsig_secret, self.tsig_algorithm)
        return {dns.name.from_text(self.tsig_name): key}


@dataclass(frozen=True)
class RRset:
    """The record set found at a name: its TTL and canonical values."""

    ttl: int
    values: tuple[str, ...]


def canonical_values(
    rtype: str, values: Sequence[str], origin: str | None = None
) -> tuple[str, ...]:
    """Values in dnspython's presentation form, sorted, for comparison."""
    rdtype = dns.rdatatype.from_text(rtype)
    base = dns.name.from_text(origin) if origin else dns.name.root
    texts = {
        dns.rdata.from_text(
            dns.rdataclass.IN, rdtype, value, origin=base, relativize=False
        ).to_text()
        for value in values
    }
    return tuple(sorted(texts))


def _absolute(name: str) -> dns.name.Name:
    return dns.name.from_text(name)


def _send(
    settings: ServerSettings, message: dns.message.Message
) -> dns.message.Message:
    try:
        reply = dns.query.tcp(
            message, settings.server, port=settings.port, timeout=settings.timeout
        )
    except (OSError, dns.exception.DNSException) as err:
        raise DnsUpdateError(
            f"name server {settings.where()} did not answer: {err}"
        ) from err
    return reply


def read_rrset(settings: ServerSettings, name: str, rtype: str) -> RRset | None:
    """The record set at `name`/`rtype` on the primary, or None if there is none."""
    query = dns.message.make_query(_absolute(name), rtype)
    # Ask the primary itself, not a resolver: only its answer is authoritative.
    query.flags &= ~dns.flags.RD
    reply = _send(settings, query)
    code = reply.rcode()
    if code == dns.rcode.NXDOMAIN:
        return None
    if code != dns.rcode.NOERROR:
        raise DnsUpdateError(
            f"query {name} {rtype} at {settings.where()} failed: "
            f"{dns.rcode.to_text(code)}"
        )
    rdtype = dns.rdatatype.from_text(rtype)
    for answer in reply.answer:
        if answer.rdtype == rdtype and answer.name == _absolute(name):
            values = tuple(sorted(rdata.to_text() for rdata in answer))
            return RRset(ttl=answer.ttl, values=values)
    return None


def _update(settings: ServerSettings) -> dns.update.UpdateMessage:
    return dns.update.UpdateMessage(
        settings.zone,
        keyring=settings.keyring(),
        keyname=dns.name.from_text(settings.tsig_name),
        keyalgorithm=settings.tsig_algorithm,
    )


def _commit(
    settings: ServerSettings, update: dns.update.UpdateMessage, what: str
) -> None:
    reply = _send(settings, update)
    code = reply.rcode()
    if code != dns.rcode.NOERROR:
        raise DnsUpdateError(
            f"{what} at {settings.where()} was refused: {dns.rcode.to_text(code)}"
        )


def replace_rrset(
    settings: ServerSettings, name: str, rtype: str, ttl: int, values: Sequence[str]
) -> RRset:
    """Make the record set at `name`/`rtype` exactly `values`; returns it."""
    if not values:
        raise ValueError(f"record set {name} {rtype} needs at least one value")
    update = _update(settings)
    owner = _absolute(name)
    # RFC 2136 section 2.5: deleting and adding in one message is atomic.
    update.delete(owner, rtype)
    for value in values:
        update.add(owner, ttl, rtype, value)
    _commit(settings, update, f"replacing {name} {rtype}")
    log.info("rfc2136 replaced name=%s type=%s values=%d", name, rtype, len(values))
    return RRset(ttl=ttl, values=canonical_values(rtype, values))


def delete_rrset(settings: ServerSettings, name: str, rtype: str) -> None:
    """Remove the record set at `name`/`rtype`; nothing happens if it is absent."""
    update = _update(settings)
    update.delete(_absolute(name), rtype)
    _commit(settings, update, f"deleting {name} {rtype}")
    log.info("rfc2136 deleted name=%s type=%s", name, rtype)
