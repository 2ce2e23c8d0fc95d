"""Render the files of a mail host from the templates in `templates/`."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2

from mailbridge.errors import InputError
from mailbridge.render.host import DkimSigner, HostPlan, build_plan
from mailbridge.render.options import (
    GROUP_SECRET,
    PUBLIC,
    SECRET,
    HostOptions,
    RenderedFile,
)
from mailbridge.render.passwords import SCHEME
from mailbridge.render.sidecar import sidecar_files
from mailbridge.secrets import SecretStore
from mailbridge.spec.models import DomainSpec

log = logging.getLogger(__name__)

TEMPLATES_DIR = Path(__file__).resolve().parent.parent.parent / "templates"


@dataclass(frozen=True)
class Output:
    """One rendered file: where it goes, its template, mode and group."""

    path: str
    template: str
    mode: int = PUBLIC
    group: str | None = None
    signer: DkimSigner | None = None


def outputs(plan: HostPlan, options: HostOptions) -> list[Output]:
    """The files this host gets, in the order they are rendered."""
    files = [
        Output("etc/postfix/main.cf", "postfix/main.cf.j2"),
        Output("etc/postfix/master.cf", "postfix/master.cf.j2"),
        Output("etc/postfix/virtual_alias", "postfix/virtual_alias.j2"),
        Output("etc/postfix/virtual_mailboxes", "postfix/virtual_mailboxes.j2"),
        Output("etc/postfix/sender_login", "postfix/sender_login.j2"),
        Output("etc/postfix/transport", "postfix/transport.j2"),
        Output("etc/dovecot/dovecot.conf", "dovecot/dovecot.conf.j2"),
        Output(
            "etc/dovecot/passwd",
            "dovecot/passwd.j2",
            GROUP_SECRET,
            options.dovecot_group,
        ),
    ]
    files += [
        Output(path, template, signer=signer)
        for signer in plan.signers
        for path, template in (
            (signer.config, "opendkim/opendkim.conf.j2"),
            (f"{signer.folder}/KeyTable", "opendkim/KeyTable.j2"),
            (f"{signer.folder}/policy.lua", "opendkim/policy.lua.j2"),
        )
    ]
    if plan.signers:
        files.append(Output("etc/opendkim/TrustedHosts", "opendkim/TrustedHosts.j2"))
    files += [
        Output(f"etc/systemd/system/{s.name}.service", "opendkim/unit.j2", signer=s)
        for s in plan.signers
        if s.name != "opendkim"
    ]
    if plan.arc_keys and options.arc:
        files += [
            Output("etc/rspamd/local.d/arc.conf", "rspamd/arc.conf.j2"),
            Output("etc/rspamd/override.d/actions.conf", "rspamd/actions.conf.j2"),
            Output("etc/rspamd/override.d/options.inc", "rspamd/options.inc.j2"),
        ]
        files += [
            Output(f"etc/rspamd/override.d/{name}", f"rspamd/{name}.j2")
            for name in (
                "worker-proxy.inc",
                "worker-normal.inc",
                "worker-controller.inc",
            )
        ]
    if plan.srs is not None:
        files += [
            Output("etc/default/postsrsd", "postsrsd/postsrsd.j2"),
            Output("etc/postsrsd.secret", "postsrsd/postsrsd.secret.j2", SECRET),
        ]
    return files


def environment(templates_dir: Path) -> jinja2.Environment:
    """Jinja2 set up for config files: undefined names are errors."""
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates_dir)),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render_host(
    specs: list[DomainSpec],
    secrets: SecretStore,
    options: HostOptions | None = None,
) -> dict[str, RenderedFile]:
    """Every file of a mail host serving `specs`, by path relative to `/`.

    Pure: reads the templates and the secrets, writes nothing. The same
    specs, secrets and options give byte-identical files.
    """
    options = options or HostOptions()
    plan = build_plan(specs, secrets, options)
    _check_secrets(plan)
    env = environment(options.templates_dir or TEMPLATES_DIR)
    context = _context(plan, options)
    files: dict[str, RenderedFile] = {}
    for out in outputs(plan, options):
        text = env.get_template(out.template).render(context, signer=out.signer)
        files[out.path] = RenderedFile(text.encode(), out.mode, out.group)
        log.debug("render: file=%s template=%s", out.path, out.template)
    files.update(sidecar_files(specs, secrets))
    return dict(sorted(files.items()))


def _context(plan: HostPlan, options: HostOptions) -> dict[str, Any]:
    return {
        "plan": plan,
        "options": options,
        "path": options.path,
        "cert": options.cert_path(plan.hostname),
        "key": options.key_path(plan.hostname),
        "password_scheme": SCHEME,
        "trusted_hosts": [
            n.replace("[", "").replace("]", "") for n in options.mynetworks
        ],
    }


def _check_secrets(plan: HostPlan) -> None:
    """Secrets go into line-based files: a line break would split one."""
    if plan.srs is not None and any(
        "\n" in s or not s.strip() for s in plan.srs.secrets
    ):
        raise InputError.single(
            "an SRS secret is empty or spans several lines",
            path=("srs", "secrets"),
            expected="one line of random text per secret",
            fix="store a value such as the output of `openssl rand -base64 32`",
        )
