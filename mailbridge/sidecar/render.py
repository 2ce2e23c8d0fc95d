"""Render the sidecar config from the fetch jobs of domain specs."""

from __future__ import annotations

from typing import Any

import yaml
from pydantic import BaseModel

from mailbridge.spec.models import DomainSpec, FetchJob, OAuth2Client
from mailbridge.spec.types import SECRET_PREFIX, secret_name

from .config import SidecarConfig

SECRETS_DIR = "/etc/mailbridge/secrets"
HEADER = (
    "# mailbridge sidecar config, rendered from the domain specs' fetch jobs.\n"
    "# Secrets are read from files the deploy writes (mode 0600); any of them\n"
    "# may be changed to {env: VARIABLE}. See docs/sidecar.md.\n"
)


def secret_source(ref: str) -> dict[str, str]:
    """`secret:NAME` of a spec as the file reference the sidecar reads."""
    name = secret_name(ref) if ref.startswith(SECRET_PREFIX) else ref
    return {"file": f"{SECRETS_DIR}/{name}"}


def render_sidecar_config(specs: list[DomainSpec]) -> str:
    """The sidecar config (YAML) for every fetch job of `specs`, sorted.

    The result validates as SidecarConfig; the same specs give the same text.
    """
    accounts = [
        _account(spec, job)
        for spec in sorted(specs, key=lambda s: s.domain)
        for job in spec.fetch
    ]
    data: dict[str, Any] = {
        "version": 1,
        "state": {"backend": "sqlite", "path": "/var/lib/mailbridge/sidecar.db"},
        "quarantine_dir": "/var/lib/mailbridge/quarantine",
        "accounts": accounts,
    }
    SidecarConfig.model_validate(data)
    body = yaml.safe_dump(data, sort_keys=False, default_flow_style=False, width=88)
    return HEADER + body


def _account(spec: DomainSpec, job: FetchJob) -> dict[str, Any]:
    pop3 = job.pop3
    source = _fields(pop3, ("host", "port", "tls", "insecure", "username", "auth"))
    source.update(_fields(pop3, ("ca_file", "fingerprint")))
    if pop3.password is not None:
        source["password"] = secret_source(pop3.password)
    if pop3.oauth2 is not None:
        source["oauth2"] = _oauth2(pop3.oauth2)
    account: dict[str, Any] = {
        "name": f"{spec.domain}-{job.name}",
        "pop3": source,
        "keep_on_server": job.keep_on_server,
    }
    if job.keep_days is not None:
        account["keep_days"] = job.keep_days
    account["poll_seconds"] = job.poll_seconds
    account["deliver_to"] = job.deliver_to
    account["via"] = job.via.value
    if job.backup_of is not None:
        account["backup_of"] = job.backup_of
    if job.gmail_api is not None:
        gmail = _fields(job.gmail_api, ("labels", "never_spam", "api_url"))
        gmail["oauth2"] = _oauth2(job.gmail_api.oauth2)
        account["gmail_api"] = gmail
    if job.imap is not None:
        imap = _fields(job.imap, ("host", "port", "username", "folder"))
        _credentials(imap, job.imap.password, job.imap.oauth2)
        account["imap"] = imap
    if job.smtp is not None:
        smtp = _fields(job.smtp, ("host", "port", "tls", "username"))
        _credentials(smtp, job.smtp.password, None)
        if "@" in (job.smtp.username or ""):
            # A relay taking AUTH lets a login send as its own address only
            # (mailbridge's own Postfix: reject_authenticated_sender_login_
            # mismatch); a message's foreign Return-Path would be refused.
            smtp["sender"] = job.smtp.username
        account["smtp"] = smtp
    return account


def _credentials(
    block: dict[str, Any], password: str | None, oauth2: OAuth2Client | None
) -> None:
    if password is not None:
        block["password"] = secret_source(password)
    if oauth2 is not None:
        block["oauth2"] = _oauth2(oauth2)


def _oauth2(client: OAuth2Client) -> dict[str, Any]:
    data = _fields(client, ("client_id", "token_url", "scope"))
    data["client_secret"] = secret_source(client.client_secret)
    data["refresh_token"] = secret_source(client.refresh_token)
    return data


def _fields(model: BaseModel, names: tuple[str, ...]) -> dict[str, Any]:
    """The named fields that are set, as plain YAML-ready values."""
    dumped = model.model_dump(mode="json")
    return {name: dumped[name] for name in names if dumped.get(name) is not None}
