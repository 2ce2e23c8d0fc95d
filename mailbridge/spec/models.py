"""The domain spec: one YAML file per domain, as Pydantic models.

A minimal spec::

    version: 1
    domain: example.com
    mail_host: {hostname: mx1.example.com, ipv4: [203.0.113.10]}
    forwarders:
      - {address: sales@example.com, to: [owner@gmail.com]}
"""

from __future__ import annotations

import enum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator

from mailbridge.spec.types import (
    AddressPattern,
    DkimSelector,
    DnsName,
    EmailAddress,
    Hostname,
    IPAddress,
    IPv4,
    IPv6,
    Network,
    Port,
    SecretRef,
)


class Model(BaseModel):
    """Base of every spec model: unknown keys are errors, values are frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class MailHost(Model):
    hostname: Hostname = Field(description="Name of the host that runs Postfix.")
    ipv4: list[IPv4] = Field(default_factory=list, description="Public IPv4.")
    ipv6: list[IPv6] = Field(default_factory=list, description="Public IPv6.")


class MXHost(Model):
    host: Hostname = Field(description="Name of the MX target.")
    priority: int = Field(10, ge=0, le=65535, description="Lower wins.")
    external: bool = Field(
        False,
        description="True for an MX run by someone else (a backup MX service).",
    )


class Mailbox(Model):
    address: EmailAddress = Field(description="Address of a real mailbox here.")
    password: SecretRef = Field(description="Reference to the login password.")
    quota_mb: int = Field(1024, ge=1, description="Mailbox quota in MiB.")


class Forwarder(Model):
    address: AddressPattern = Field(
        description="Address, or `*@domain` for a catch-all of the domain."
    )
    to: list[EmailAddress] = Field(min_length=1, description="Where mail goes.")
    backup: bool = Field(
        False,
        description=(
            "Marks this path as the intended backup of a fetch job into the "
            "same inbox (or the reverse: see FetchJob.backup_of)."
        ),
    )

    @property
    def is_catch_all(self) -> bool:
        return self.address.startswith("*@")


class TLSMode(enum.StrEnum):
    IMPLICIT = "implicit"
    STARTTLS = "starttls"
    NONE = "none"


class OAuth2Client(Model):
    """An OAuth2 client whose refresh token yields access tokens."""

    client_id: str = Field(min_length=1)
    client_secret: SecretRef
    refresh_token: SecretRef
    token_url: str = Field(
        "https://oauth2.googleapis.com/token", description="Token endpoint."
    )
    scope: str | None = None


class POP3Source(Model):
    host: Hostname
    port: Port | None = Field(None, description="995 for implicit TLS, else 110.")
    tls: TLSMode = TLSMode.IMPLICIT
    insecure: bool = Field(
        False, description="Must be true to allow tls: none (plaintext login)."
    )
    username: str = Field(min_length=1)
    password: SecretRef | None = None
    oauth2: OAuth2Client | None = Field(None, description="Log in with XOAUTH2.")
    auth: Literal["user", "plain", "xoauth2"] | None = Field(
        None, description="Login method; chosen from the credentials if unset."
    )
    ca_file: str | None = Field(None, description="Extra CA bundle to trust.")
    fingerprint: str | None = Field(
        None, description="SHA-256 fingerprint of the server certificate to pin."
    )

    @property
    def effective_port(self) -> int:
        if self.port is not None:
            return self.port
        return 995 if self.tls == TLSMode.IMPLICIT else 110


class Via(enum.StrEnum):
    GMAIL_API = "gmail-api"
    IMAP = "imap"
    SMTP = "smtp"


class GmailTarget(Model):
    oauth2: OAuth2Client
    labels: list[str] = Field(default_factory=list, description="Label names.")
    never_spam: bool = False
    api_url: str = Field("https://gmail.googleapis.com", description="API root.")


class IMAPTarget(Model):
    host: Hostname = "imap.gmail.com"
    port: Port = 993
    username: str | None = Field(None, description="Defaults to deliver_to.")
    password: SecretRef | None = None
    oauth2: OAuth2Client | None = None
    folder: str = "INBOX"


class SMTPTarget(Model):
    host: Hostname
    port: Port = 587
    tls: TLSMode = TLSMode.STARTTLS
    username: str | None = None
    password: SecretRef | None = None


class FetchJob(Model):
    """A POP3 mailbox that the sidecar empties into a Gmail inbox."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")
    pop3: POP3Source
    keep_on_server: bool = False
    keep_days: int | None = Field(
        None, ge=0, description="Delete this many days after delivery."
    )
    poll_seconds: int = Field(60, ge=10)
    deliver_to: EmailAddress
    via: Via = Via.GMAIL_API
    gmail_api: GmailTarget | None = None
    imap: IMAPTarget | None = None
    smtp: SMTPTarget | None = None
    backup_of: EmailAddress | None = Field(
        None,
        description=(
            "Forwarder address whose copies reach the same inbox; this fetch "
            "job is then the intended backup path and skips duplicates."
        ),
    )


class SPF(Model):
    include: list[DnsName] = Field(default_factory=list)
    ip4: list[Network] = Field(default_factory=list)
    ip6: list[Network] = Field(default_factory=list)
    a: list[DnsName] = Field(default_factory=list)
    mx: list[DnsName] = Field(default_factory=list)
    exists: list[str] = Field(default_factory=list)
    ptr: bool = Field(False, description="Discouraged by RFC 7208 section 5.5.")
    redirect: DnsName | None = None
    all: Literal["-all", "~all", "?all", "+all"] = "-all"
    mail_host: bool = Field(
        True, description="Authorize the mail host's addresses (no DNS lookup)."
    )


class DkimAlgorithm(enum.StrEnum):
    RSA = "rsa"
    ED25519 = "ed25519"


class SelectorState(enum.StrEnum):
    """Where a selector is in its life: see docs/spec.md, DKIM rotation."""

    PUBLISHED = "published"
    ACTIVE = "active"
    RETIRING = "retiring"


class Selector(Model):
    """One DKIM key, named by its selector."""

    name: DkimSelector
    algorithm: DkimAlgorithm = DkimAlgorithm.RSA
    bits: int = Field(2048, description="RSA modulus size; ignored for ed25519.")
    state: SelectorState = SelectorState.ACTIVE


class DKIM(Model):
    selectors: list[Selector] = Field(min_length=1)
    retire_after_days: int = Field(
        7, ge=0, description="How long a retiring selector stays published."
    )


class DMARC(Model):
    policy: Literal["none", "quarantine", "reject"] = "quarantine"
    subdomain_policy: Literal["none", "quarantine", "reject"] | None = None
    pct: int = Field(100, ge=0, le=100)
    rua: list[str] = Field(default_factory=list)
    ruf: list[str] = Field(default_factory=list)
    adkim: Literal["r", "s"] = "r"
    aspf: Literal["r", "s"] = "r"

    @field_validator("rua", "ruf")
    @classmethod
    def _mailto(cls, value: list[str]) -> list[str]:
        from mailbridge.spec.types import FieldValueError, normalize_address

        result = []
        for uri in value:
            if not uri.startswith("mailto:"):
                raise FieldValueError(
                    f"{uri!r} is not a mailto: URI",
                    expected="mailto:dmarc@example.com",
                )
            result.append("mailto:" + normalize_address(uri[len("mailto:") :]))
        return result


class MTASTS(Model):
    mode: Literal["enforce", "testing", "none"] = "enforce"
    max_age: int = Field(604800, ge=86400, le=31557600)


class TLSRPT(Model):
    rua: list[str] = Field(min_length=1)


class ExternalForward(Model):
    """Forwarding set up outside mailbridge, declared so loops through it show."""

    from_: EmailAddress = Field(alias="from")
    to: list[EmailAddress] = Field(min_length=1)


class Limits(Model):
    max_fanout: int = Field(50, ge=1, description="Most targets of one alias.")
    max_chain: int = Field(8, ge=1, description="Longest forwarding chain.")


class SRS(Model):
    domain: Hostname | None = Field(None, description="Defaults to the domain.")
    secrets: list[SecretRef] = Field(
        min_length=1, description="First signs; all verify, for rotation."
    )


class ZoneFileDNS(Model):
    backend: Literal["zonefile"] = "zonefile"
    path: str | None = Field(None, description="Zone fragment to write.")
    ttl: int = Field(3600, ge=60)


class TSIGKey(Model):
    name: Hostname
    algorithm: Literal[
        "hmac-sha256", "hmac-sha384", "hmac-sha512", "hmac-sha224", "hmac-sha1"
    ] = "hmac-sha256"
    secret: SecretRef


class RFC2136DNS(Model):
    backend: Literal["rfc2136"]
    server: IPAddress = Field(description="IP address of the primary server.")
    port: Port = 53
    zone: Hostname | None = None
    tsig: TSIGKey
    ttl: int = Field(3600, ge=60)


class CloudflareDNS(Model):
    backend: Literal["cloudflare"]
    zone_id: str
    api_token: SecretRef
    ttl: int = Field(3600, ge=60)


class Route53DNS(Model):
    backend: Literal["route53"]
    zone_id: str
    ttl: int = Field(3600, ge=60)


def _backend_default(name: str) -> BeforeValidator:
    """Without `backend:`, a mapping means the default backend, as documented."""

    def fill(value: Any) -> Any:
        if isinstance(value, dict) and "backend" not in value:
            return {"backend": name, **value}
        return value

    return BeforeValidator(fill)


DNSBackend = Annotated[
    ZoneFileDNS | RFC2136DNS | CloudflareDNS | Route53DNS,
    Field(discriminator="backend"),
    _backend_default("zonefile"),
]


class LocalHost(Model):
    backend: Literal["local"] = "local"
    root: str = Field("build/host", description="Folder standing for `/`.")
    reload: bool = Field(False, description="Reload the services after a write.")


class SSHHost(Model):
    backend: Literal["ssh"]
    host: str
    port: Port = 22
    user: str = "root"
    private_key: SecretRef
    host_key: str | None = Field(None, description="Expected host key line.")
    root: str = "/"
    reload: bool = True


HostBackend = Annotated[
    LocalHost | SSHHost, Field(discriminator="backend"), _backend_default("local")
]


class DomainSpec(Model):
    """Everything one domain needs so that its mail lands in Gmail."""

    version: Literal[1] = Field(description="Spec format version.")
    domain: Hostname
    mail_host: MailHost
    mx: list[MXHost] = Field(
        default_factory=list, description="Defaults to the mail host at 10."
    )
    mailboxes: list[Mailbox] = Field(default_factory=list)
    forwarders: list[Forwarder] = Field(default_factory=list)
    fetch: list[FetchJob] = Field(default_factory=list)
    spf: SPF = Field(default_factory=SPF)
    dkim: DKIM | None = None
    dmarc: DMARC = Field(default_factory=DMARC)
    mta_sts: MTASTS | None = None
    tls_rpt: TLSRPT | None = None
    autoconfig: bool = Field(True, description="Client set-up records (SRV...).")
    no_mail: list[Hostname] = Field(
        default_factory=list,
        description="Names that never send or receive mail: null MX, SPF -all.",
    )
    external_forwards: list[ExternalForward] = Field(default_factory=list)
    limits: Limits = Field(default_factory=Limits)
    srs: SRS | None = None
    dns: DNSBackend = Field(default_factory=ZoneFileDNS)
    host: HostBackend = Field(default_factory=LocalHost)

    @property
    def mx_hosts(self) -> list[MXHost]:
        if self.mx:
            return list(self.mx)
        return [MXHost(host=self.mail_host.hostname, priority=10)]

    def owns(self, address: str) -> bool:
        """True for an address of this domain."""
        return address.rsplit("@", 1)[-1] == self.domain
