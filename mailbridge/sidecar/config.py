"""The sidecar's own config file: accounts to poll, targets, state, metrics.

Secrets never appear inline: each is a reference to a file or to an
environment variable, read when the sidecar starts. A minimal config::

    version: 1
    state: {backend: sqlite, path: /var/lib/mailbridge/sidecar.db}
    accounts:
      - name: example.com-legacy-isp
        pop3:
          host: pop.isp.example
          username: alice
          password: {file: /etc/mailbridge/secrets/isp-pop3}
        deliver_to: alice@gmail.com
        via: smtp
        smtp: {host: mx1.example.com, port: 587}
"""

from __future__ import annotations

import ipaddress
import os
import re
import urllib.parse
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from mailbridge.errors import FieldPath, InputError, Problem
from mailbridge.spec.models import TLSMode, Via
from mailbridge.spec.types import (
    EmailAddress,
    FieldValueError,
    Port,
    check_ip,
    normalize_hostname,
)
from mailbridge.spec.validation import load_model

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_SECRET_FILE_DIR = "/etc/mailbridge/secrets"


def _host_or_ip(value: str) -> str:
    """A fully qualified host name, `localhost`, or an IP address."""
    text = value.strip().lower()
    if text == "localhost":
        return text
    try:
        return check_ip(text)
    except FieldValueError:
        return normalize_hostname(text)


HostOrIP = Annotated[str, AfterValidator(_host_or_ip)]


class Model(BaseModel):
    """Base of the config models: unknown keys are errors, values frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class SecretSource(Model):
    """Where a secret's value is read from: exactly one of `file` or `env`.

    ``password: {file: /etc/mailbridge/secrets/isp-pop3}`` reads the file
    (trailing newline dropped); ``password: {env: ISP_POP3_PASSWORD}`` reads
    the environment variable.
    """

    file: str | None = Field(None, description="Absolute path of a 0600 file.")
    env: str | None = Field(None, description="Name of an environment variable.")

    @model_validator(mode="after")
    def _one_source(self) -> SecretSource:
        if (self.file is None) == (self.env is None):
            raise FieldValueError(
                "a secret needs exactly one of `file` or `env`",
                expected="{file: /etc/mailbridge/secrets/NAME} or {env: VARIABLE}",
            )
        if self.file is not None and not self.file.startswith("/"):
            raise FieldValueError(
                f"secret file {self.file!r} is not an absolute path",
                expected=f"an absolute path such as {_SECRET_FILE_DIR}/NAME",
            )
        if self.env is not None and not _ENV_NAME.match(self.env):
            raise FieldValueError(
                f"{self.env!r} is not an environment variable name",
                expected="letters, digits and '_', e.g. MAILBRIDGE_SECRET_ISP_POP3",
            )
        return self

    def describe(self) -> str:
        """Where the value lives, for messages (never the value itself)."""
        return f"file {self.file}" if self.file else f"environment variable {self.env}"

    def read(self) -> str:
        """The secret's value; a missing source is an InputError."""
        if self.file is not None:
            try:
                return Path(self.file).read_text(encoding="utf-8").rstrip("\r\n")
            except OSError as err:
                raise InputError.single(
                    f"cannot read secret file {self.file}: {err.strerror}",
                    expected="a readable file holding the secret",
                    fix="let the deploy write it (mode 0600), or use {env: NAME}",
                ) from err
        assert self.env is not None
        value = os.environ.get(self.env)
        if value is None:
            raise InputError.single(
                f"environment variable {self.env} is not set",
                expected="the secret's value in the sidecar's environment",
                fix=f"export {self.env}=..., or use {{file: PATH}}",
            )
        return value


class OAuth2Client(Model):
    """An OAuth2 client; its refresh token yields short-lived access tokens."""

    client_id: str = Field(min_length=1)
    client_secret: SecretSource
    refresh_token: SecretSource
    token_url: str = "https://oauth2.googleapis.com/token"
    scope: str | None = None


class TLSOptions(Model):
    ca_file: str | None = Field(None, description="Extra CA bundle to trust.")
    fingerprint: str | None = Field(
        None, description="SHA-256 fingerprint (hex, ':' allowed) to pin."
    )
    insecure: bool = Field(
        False, description="Must be true to allow tls: none (plaintext login)."
    )


class POP3Source(TLSOptions):
    host: HostOrIP
    port: Port | None = Field(None, description="995 for implicit TLS, else 110.")
    tls: TLSMode = TLSMode.IMPLICIT
    username: str = Field(min_length=1)
    password: SecretSource | None = None
    oauth2: OAuth2Client | None = None
    auth: Literal["user", "plain", "xoauth2"] | None = Field(
        None, description="Login method; chosen from the credentials if unset."
    )
    timeout: float = Field(60.0, gt=0, description="Socket timeout in seconds.")

    @property
    def effective_port(self) -> int:
        if self.port is not None:
            return self.port
        return 995 if self.tls == TLSMode.IMPLICIT else 110

    @property
    def effective_auth(self) -> str:
        if self.auth is not None:
            return self.auth
        return "xoauth2" if self.oauth2 is not None else "user"


class GmailTarget(Model):
    oauth2: OAuth2Client
    labels: list[str] = Field(default_factory=list, description="Label names.")
    never_spam: bool = False
    api_url: str = Field("https://gmail.googleapis.com", description="API root.")
    user_id: str = Field("me", description="Gmail user id in API paths.")
    retry_base_seconds: float = Field(
        1.0, gt=0, description="First delay when Gmail asks to slow down."
    )


class IMAPTarget(TLSOptions):
    host: HostOrIP = "imap.gmail.com"
    port: Port = 993
    tls: TLSMode = TLSMode.IMPLICIT
    username: str | None = Field(None, description="Defaults to deliver_to.")
    password: SecretSource | None = None
    oauth2: OAuth2Client | None = None
    folder: str = "INBOX"
    timeout: float = Field(60.0, gt=0)


class SMTPTarget(TLSOptions):
    host: HostOrIP
    port: Port = 587
    tls: TLSMode = TLSMode.STARTTLS
    username: str | None = None
    password: SecretSource | None = None
    sender: EmailAddress | None = Field(
        None,
        description=(
            "MAIL FROM of every relayed message; default: the message's "
            "Return-Path. Set an address the login owns when the relay checks "
            "sender ownership (mailbridge's own Postfix on 587 and 465 does)."
        ),
    )
    timeout: float = Field(120.0, gt=0)


class Account(Model):
    """One POP3 mailbox and the inbox its mail goes to."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]{0,127}$")
    pop3: POP3Source
    keep_on_server: bool = False
    keep_days: int | None = Field(
        None, ge=0, description="Delete this many days after delivery."
    )
    poll_seconds: int = Field(60, ge=1)
    deliver_to: EmailAddress
    via: Via = Via.GMAIL_API
    gmail_api: GmailTarget | None = None
    imap: IMAPTarget | None = None
    smtp: SMTPTarget | None = None
    backup_of: EmailAddress | None = Field(
        None, description="Forwarder whose copies reach the same inbox."
    )

    @property
    def target_key(self) -> str:
        """Names the inbox for dedupe: the same inbox, whatever the path."""
        return self.deliver_to


class SQLiteState(Model):
    backend: Literal["sqlite"] = "sqlite"
    path: str = "/var/lib/mailbridge/sidecar.db"


class PostgresState(Model):
    backend: Literal["postgres"]
    dsn: SecretSource = Field(description="libpq connection string, as a secret.")
    lease_seconds: int = Field(
        120, ge=10, description="How long a replica holds an account unrenewed."
    )


StateBackend = Annotated[SQLiteState | PostgresState, Field(discriminator="backend")]


class Metrics(Model):
    enabled: bool = Field(True, description="False turns the HTTP port off.")
    bind: str = "127.0.0.1"
    port: Port | None = Field(9325, description="Prometheus port; null: off.")


class Retry(Model):
    base_seconds: float = Field(5.0, gt=0, description="First backoff delay.")
    max_seconds: float = Field(900.0, gt=0, description="Longest backoff delay.")


class SidecarConfig(Model):
    """The whole sidecar config file."""

    version: Literal[1]
    state: StateBackend = Field(default_factory=SQLiteState)
    spool_dir: str | None = Field(
        None, description="Where large messages spill to disk; default: temp."
    )
    quarantine_dir: str = "/var/lib/mailbridge/quarantine"
    metrics: Metrics = Field(default_factory=Metrics)
    concurrency: int = Field(32, ge=1, le=1024, description="Accounts at once.")
    retry: Retry = Field(default_factory=Retry)
    accounts: list[Account] = Field(default_factory=list)


def check_config(config: SidecarConfig) -> list[Problem]:
    """Cross-field rules of a config, each with its field path."""
    problems: list[Problem] = []
    names: dict[str, int] = {}
    for i, account in enumerate(config.accounts):
        base: FieldPath = ("accounts", i)
        if account.name in names:
            problems.append(
                Problem(
                    f"account {account.name} is defined twice",
                    path=(*base, "name"),
                    found=f"accounts[{names[account.name]}] and accounts[{i}]",
                    fix="give each account its own name",
                )
            )
        names.setdefault(account.name, i)
        problems.extend(_account_problems(account, base))
    return problems


def _account_problems(account: Account, base: FieldPath) -> list[Problem]:
    problems: list[Problem] = []
    pop3 = account.pop3
    if pop3.tls == TLSMode.NONE and not pop3.insecure:
        problems.append(
            Problem(
                f"account {account.name} would log in to {pop3.host} without TLS",
                path=(*base, "pop3", "tls"),
                found="tls: none",
                expected="tls: implicit or tls: starttls",
                fix="use TLS; only for a test server, add `insecure: true`",
            )
        )
    auth = pop3.effective_auth
    if auth == "xoauth2" and pop3.oauth2 is None:
        problems.append(_missing(base, "pop3", "auth: xoauth2 needs an oauth2: block"))
    if auth in ("user", "plain") and pop3.password is None:
        problems.append(_missing(base, "pop3", f"auth: {auth} needs a password"))
    if account.keep_days is not None and not account.keep_on_server:
        problems.append(
            Problem(
                "keep_days needs keep_on_server: true",
                path=(*base, "keep_days"),
                fix="set keep_on_server: true, or remove keep_days",
            )
        )
    section = account.via.value.replace("-", "_")
    target = getattr(account, section)
    if target is None and account.via != Via.IMAP:
        problems.append(_missing(base, "via", f"via: {account.via} needs `{section}:`"))
    for name in ("imap", "smtp"):
        block = getattr(account, name)
        if block is not None and block.tls == TLSMode.NONE and not block.insecure:
            problems.append(
                Problem(
                    f"the {name} target would send credentials without TLS",
                    path=(*base, name, "tls"),
                    fix="use TLS; only for a test server, add `insecure: true`",
                )
            )
    urls: list[tuple[FieldPath, str]] = []
    for name, client in (
        ("pop3", account.pop3.oauth2),
        ("gmail_api", account.gmail_api.oauth2 if account.gmail_api else None),
        ("imap", account.imap.oauth2 if account.imap else None),
    ):
        if client is not None:
            urls.append(((*base, name, "oauth2", "token_url"), client.token_url))
    if account.gmail_api is not None:
        urls.append(((*base, "gmail_api", "api_url"), account.gmail_api.api_url))
    problems.extend(_url_problem(path, url) for path, url in urls if _bad_url(url))
    if account.via == Via.IMAP:
        imap = account.imap or IMAPTarget()
        if imap.password is None and imap.oauth2 is None:
            problems.append(
                _missing(base, "imap", "the IMAP target needs a password or oauth2")
            )
    return problems


def _bad_url(url: str) -> bool:
    """Tokens and mail go over https; plain http only to this machine (a
    local stand-in or proxy), where nothing crosses a network."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return False
    if parts.scheme != "http" or not parts.hostname:
        return True
    host = parts.hostname
    if host == "localhost":
        return False
    try:
        return not ipaddress.ip_address(host).is_loopback
    except ValueError:
        return True


def _url_problem(path: FieldPath, url: str) -> Problem:
    return Problem(
        "this URL would carry OAuth2 secrets or mail without TLS",
        path=path,
        found=url,
        expected="an https:// URL (http:// only to localhost or 127.0.0.1)",
        fix="use the https:// address of the service",
    )


def _missing(base: FieldPath, key: str, message: str) -> Problem:
    return Problem(
        message,
        path=(*base, key),
        fix="add the missing block (see docs/sidecar.md)",
    )


def load_config(path: Path) -> SidecarConfig:
    """Read and validate a sidecar config (YAML, or TOML for a `.toml` file);
    InputError lists every problem with its line."""
    if path.suffix.lower() == ".toml":
        from mailbridge.spec.validation import validate_document

        from .tomlsource import read_toml

        return validate_document(read_toml(path), SidecarConfig, _semantic)
    config, _ = load_model(path, SidecarConfig, _semantic)
    return config


def _semantic(config: SidecarConfig) -> Sequence[Problem]:
    return check_config(config)
