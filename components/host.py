"""MailHost: the rendered Postfix, Dovecot, postsrsd, OpenDKIM and sidecar files."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi

from components.providers.host import HostFiles
from mailbridge.deploy.program import (
    HostSplit,
    dkim_key_file,
    dkim_key_path,
    files_to_inputs,
    render_split,
)
from mailbridge.errors import InputError
from mailbridge.render import HostOptions
from mailbridge.secrets import SecretStore
from mailbridge.spec.models import DomainSpec, LocalHost, SSHHost


@dataclass
class MailHostArgs:
    """What the host serves, the secrets and signing keys, and where it goes.

    `dkim_keys` maps `(domain, selector)` to the private key of each
    selector that signs; `reload_commands` overrides the command that
    reloads a service (keys: postfix, dovecot, opendkim, postsrsd,
    mailbridge-sidecar).
    """

    specs: list[DomainSpec]
    backend: LocalHost | SSHHost
    secrets: pulumi.Input[Mapping[str, str]] = field(default_factory=dict)
    dkim_keys: Mapping[tuple[str, str], pulumi.Input[str]] = field(default_factory=dict)
    options: HostOptions | None = None
    project_dir: str = "."
    reload_commands: Mapping[str, str] | None = None


def _connection(
    args: MailHostArgs,
) -> pulumi.Input[dict[str, Any]]:
    backend = args.backend
    if isinstance(backend, LocalHost):
        root = Path(args.project_dir, backend.root).resolve()
        return {"backend": "local", "root": str(root)}
    ref = backend.private_key

    def build(values: Mapping[str, str]) -> dict[str, Any]:
        return {
            "backend": "ssh",
            "host": backend.host,
            "port": backend.port,
            "user": backend.user,
            "host_key": backend.host_key,
            "root": backend.root,
            "private_key": SecretStore(values=dict(values or {})).resolve(ref),
        }

    return pulumi.Output.secret(pulumi.Output.from_input(args.secrets).apply(build))


def _render(
    specs: list[DomainSpec], values: Mapping[str, str] | None, options: HostOptions
) -> HostSplit:
    """The host's files; a problem with the inputs stops the run, no traceback."""
    try:
        return render_split(specs, dict(values or {}), options)
    except InputError as err:
        raise pulumi.RunError(err.to_text()) from err


class MailHost(pulumi.ComponentResource):
    """Writes the host's files to a target and reloads what changed.

    Files that hold no secret are plain inputs, so `pulumi preview` shows
    their diff; files that hold one (password hashes, SRS secrets, the
    sidecar's credentials, DKIM keys) are secret inputs, encrypted in the
    state. Backends: `local` (a folder here, the default `build/host`) and
    `ssh`::

        MailHost("example.com-host", MailHostArgs([spec], spec.host, secrets))
    """

    root: str
    paths: pulumi.Output[list[str]]
    changed: pulumi.Output[list[str]]

    def __init__(
        self,
        name: str,
        args: MailHostArgs,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("mailbridge:host:MailHost", name, None, opts)
        options = args.options or HostOptions()
        specs = args.specs
        keys = sorted(args.dkim_keys)
        split = pulumi.Output.from_input(args.secrets).apply(
            lambda values: _render(specs, values, options)
        )
        # Files holding no secret stay readable in diffs and in the state;
        # `render_split` has checked that none contains a secret value.
        plain = pulumi.Output.unsecret(split.apply(lambda s: files_to_inputs(s.plain)))

        def secret_files(items: list[Any]) -> dict[str, Any]:
            files = files_to_inputs(items[0].secret)
            for (domain, selector), pem in zip(keys, items[1:], strict=True):
                files[dkim_key_path(domain, selector, options)] = dkim_key_file(pem)
            return dict(sorted(files.items()))

        rendered: pulumi.Output[dict[str, Any]] = pulumi.Output.all(
            split, *[args.dkim_keys[k] for k in keys]
        ).apply(secret_files)
        secret: pulumi.Output[dict[str, Any]] = pulumi.Output.secret(rendered)
        backend = args.backend
        if isinstance(backend, LocalHost):
            self.root = str(Path(args.project_dir, backend.root).resolve())
        else:
            self.root = f"{backend.user}@{backend.host}:{backend.root}"
        files = HostFiles(
            f"{name}-files",
            {
                "files": plain,
                "secret_files": secret,
                "connection": _connection(args),
                "reload": backend.reload,
                "reload_commands": dict(args.reload_commands or {}),
            },
            pulumi.ResourceOptions(parent=self),
        )
        self.paths = files.paths
        self.changed = files.changed
        self.register_outputs(
            {"root": self.root, "paths": self.paths, "changed": self.changed}
        )
