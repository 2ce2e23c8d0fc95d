"""The Pulumi program's steps: read the stack's config, build the domain."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pulumi

from components.domain import MailDomain, MailDomainArgs
from mailbridge.deploy.program import secret_refs
from mailbridge.errors import InputError, Location, Problem
from mailbridge.secrets import SecretStore, env_name
from mailbridge.spec import load_spec
from mailbridge.spec.models import DomainSpec
from mailbridge.spec.types import secret_name


def run(project_dir: Path | None = None) -> MailDomain:
    """Build this stack's MailDomain from config `mailbridge:spec` and export it.

    Config: `mailbridge:spec` (path of the spec, from the project folder),
    optional `mailbridge:peers` (paths of other specs, for the checks) and
    the secret object `mailbridge:secrets` (NAME -> value). A bad spec stops
    the run with its located problems, not a traceback.
    """
    root = project_dir or Path.cwd()
    config = pulumi.Config("mailbridge")
    spec_path = root / config.require("spec")
    try:
        loaded = load_spec(spec_path)
        spec = loaded.spec
        peers = [
            load_spec(root / path).spec for path in (config.get_object("peers") or [])
        ]
    except InputError as err:
        raise pulumi.RunError(err.to_text()) from err
    given: pulumi.Input[Mapping[str, str]] = config.get_secret_object("secrets") or {}
    # Every secret is checked before anything uses one: a missing value stops
    # the run with all the names and the fix, not a traceback.
    secrets = pulumi.Output.from_input(given).apply(
        lambda values: require_secrets(spec_path, spec, values)
    )
    try:
        domain = MailDomain(
            spec.domain,
            MailDomainArgs(spec, secrets=secrets, peers=peers, project_dir=str(root)),
        )
    except InputError as err:
        # A valid spec that still cannot be deployed (an SPF record over the
        # lookup limit, ...): its located problems, not a traceback.
        raise pulumi.RunError(loaded.located(err).to_text()) from err
    pulumi.export("domain", domain.domain)
    if domain.zone_path is not None:
        pulumi.export("zone_fragment", domain.zone_path)
    pulumi.export("host_root", domain.host_root)
    pulumi.export("records", domain.records)
    pulumi.export("dkim", domain.selectors)
    pulumi.export("signing", domain.signing)
    return domain


def require_secrets(
    spec_path: Path, spec: DomainSpec, values: Mapping[str, str] | None
) -> Mapping[str, str]:
    """`values`, once every `secret:NAME` of the spec has a value here or in the env.

    Raises pulumi.RunError (shown without a traceback) naming each missing one.
    """
    store = SecretStore(values=dict(values or {}))
    missing = [secret_name(ref) for ref in secret_refs(spec) if store.get(ref) is None]
    if missing:
        problem = Problem(
            "secret values are missing: " + ", ".join(missing),
            location=Location(str(spec_path)),
            expected="a value for each `secret:NAME` the spec names, in the "
            "stack config or the environment",
            fix="for each NAME: `pulumi config set --secret --path "
            "mailbridge:secrets.NAME` (it asks for the value), or export "
            + ", ".join(env_name(name) for name in missing),
        )
        raise pulumi.RunError(InputError([problem]).to_text())
    return dict(values or {})
