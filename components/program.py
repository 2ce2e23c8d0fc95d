"""The Pulumi program's steps: read the stack's config, build the domain."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pulumi

from components.domain import MailDomain, MailDomainArgs
from mailbridge.errors import InputError
from mailbridge.spec import load_spec


def run(project_dir: Path | None = None) -> MailDomain:
    """Build this stack's MailDomain from config `mailbridge:spec` and export it.

    Config: `mailbridge:spec` (path of the spec, from the project folder),
    optional `mailbridge:peers` (paths of other specs, for the checks) and
    the secret object `mailbridge:secrets` (NAME -> value). A bad spec stops
    the run with its located problems, not a traceback.
    """
    root = project_dir or Path.cwd()
    config = pulumi.Config("mailbridge")
    try:
        spec = load_spec(root / config.require("spec")).spec
        peers = [
            load_spec(root / path).spec for path in (config.get_object("peers") or [])
        ]
    except InputError as err:
        raise pulumi.RunError(err.to_text()) from err
    secrets: pulumi.Input[Mapping[str, str]] = config.get_secret_object("secrets") or {}
    domain = MailDomain(
        spec.domain,
        MailDomainArgs(spec, secrets=secrets, peers=peers, project_dir=str(root)),
    )
    pulumi.export("domain", domain.domain)
    if domain.zone_path is not None:
        pulumi.export("zone_fragment", domain.zone_path)
    pulumi.export("host_root", domain.host_root)
    pulumi.export("records", domain.records)
    pulumi.export("dkim", domain.selectors)
    pulumi.export("signing", domain.signing)
    return domain
