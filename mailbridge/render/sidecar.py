"""The sidecar's files in the host tree: its config and the secrets it reads.

The sidecar owns its config format (`mailbridge.sidecar.render`); this
module only places its output, and skips it when that module is absent.
"""

from __future__ import annotations

import importlib
import logging
import posixpath
from collections.abc import Callable

from mailbridge.render.options import PUBLIC, SECRET, RenderedFile
from mailbridge.secrets import SecretStore
from mailbridge.spec.models import DomainSpec, FetchJob
from mailbridge.spec.types import secret_name

log = logging.getLogger(__name__)

CONFIG_PATH = "etc/mailbridge/sidecar.yaml"
DEFAULT_SECRETS_DIR = "/etc/mailbridge/secrets"

Renderer = Callable[[list[DomainSpec]], str]


def load_renderer() -> tuple[Renderer, str] | None:
    """The sidecar's `render_sidecar_config` and its secrets folder, if any."""
    try:
        module = importlib.import_module("mailbridge.sidecar.render")
    except ModuleNotFoundError as err:
        if err.name is None or not err.name.startswith("mailbridge.sidecar"):
            raise
        return None
    renderer: Renderer = module.render_sidecar_config
    folder = str(getattr(module, "SECRETS_DIR", DEFAULT_SECRETS_DIR))
    return renderer, folder


def fetch_secret_refs(job: FetchJob) -> list[str]:
    """Every secret reference one fetch job needs at run time."""
    refs: list[str] = []
    clients = [job.pop3.oauth2]
    passwords = [job.pop3.password]
    if job.gmail_api is not None:
        clients.append(job.gmail_api.oauth2)
    if job.imap is not None:
        passwords.append(job.imap.password)
        clients.append(job.imap.oauth2)
    if job.smtp is not None:
        passwords.append(job.smtp.password)
    refs.extend(p for p in passwords if p is not None)
    for client in clients:
        if client is not None:
            refs += [client.client_secret, client.refresh_token]
    return refs


def sidecar_secret_refs(specs: list[DomainSpec]) -> list[str]:
    """The secrets the sidecar's files will hold; none without the sidecar."""
    if not any(spec.fetch for spec in specs) or load_renderer() is None:
        return []
    return sorted({r for s in specs for job in s.fetch for r in fetch_secret_refs(job)})


def sidecar_files(
    specs: list[DomainSpec], secrets: SecretStore
) -> dict[str, RenderedFile]:
    """The sidecar config and one 0600 file per secret its fetch jobs use."""
    if not any(spec.fetch for spec in specs):
        return {}
    found = load_renderer()
    if found is None:
        log.info("render: sidecar module missing, skipped file=%s", CONFIG_PATH)
        return {}
    renderer, folder = found
    refs = sidecar_secret_refs(specs)
    secrets.require(refs)
    files = {CONFIG_PATH: RenderedFile(renderer(list(specs)).encode(), PUBLIC)}
    for ref in refs:
        path = posixpath.join(folder, secret_name(ref)).lstrip("/")
        files[path] = RenderedFile(secrets.resolve(ref).encode(), SECRET)
    return files
