"""The embedded default's local state: stack config kept out of the repo.

`scripts/up` keeps each stack's working config (passphrase salt, encrypted
secrets) under `.pulumi-state/stacks/`, so the tracked `stacks/Pulumi.*.yaml`
never changes on a user's machine. Before each run the tracked settings are
copied over the working ones; secrets and the salt stay.

    python -m mailbridge.deploy.localstate merge TRACKED WORKING
    python -m mailbridge.deploy.localstate spec-of TRACKED
    python -m mailbridge.deploy.localstate missing-secrets SPEC WORKING

Bad input (a spec with problems, a stack file that is not one) is said as
the other commands say it, with exit status 2 and no traceback.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from mailbridge.deploy.program import secret_refs
from mailbridge.deploy.stacks import SPEC_KEY, read_stack_file
from mailbridge.errors import InputError, Location
from mailbridge.secrets import env_name
from mailbridge.spec import load_spec
from mailbridge.spec.types import secret_name

SECRETS_KEY = "mailbridge:secrets"


def _read(path: Path) -> dict[str, Any]:
    return read_stack_file(path) if path.exists() else {}


def spec_of(tracked: Path) -> str:
    """The spec path a stack file names in `config: mailbridge:spec`."""
    config = _read(tracked).get("config")
    spec = config.get(SPEC_KEY) if isinstance(config, dict) else None
    if not isinstance(spec, str) or not spec:
        raise InputError.single(
            f"the stack file names no spec ({SPEC_KEY})",
            location=Location(str(tracked)),
            expected=f"`config:` with `{SPEC_KEY}: stacks/<domain>.yaml`",
            fix=f"add `{SPEC_KEY}: stacks/<domain>.yaml` under `config:`",
        )
    return spec


def merge(tracked: dict[str, Any], working: dict[str, Any]) -> dict[str, Any]:
    """The working stack file with the tracked config on top of its own.

    Keys of the working file that the tracked one lacks (the salt, the
    encrypted `mailbridge:secrets`) are kept.
    """
    result = dict(working)
    for key, value in tracked.items():
        if key != "config":
            result.setdefault(key, value)
    config = dict(working.get("config") or {})
    config.update(tracked.get("config") or {})
    result["config"] = config
    return result


def missing_secrets(
    spec_path: Path,
    working: dict[str, Any],
    environ: Mapping[str, str] | None = None,
) -> list[str]:
    """Names of the spec's secrets with no value in the config nor `environ`.

    A value in the config wins over `MAILBRIDGE_SECRET_<NAME>`, so a secret
    given in the environment must not get a random example value there.
    """
    spec = load_spec(spec_path).spec
    have = (working.get("config") or {}).get(SECRETS_KEY) or {}
    env = os.environ if environ is None else environ
    names = [secret_name(r) for r in secret_refs(spec)]
    return [n for n in names if n not in have and env_name(n) not in env]


def main(argv: list[str]) -> int:
    try:
        return _command(argv)
    except InputError as err:
        sys.stderr.write(err.to_text() + "\n")
        return 2


def _command(argv: list[str]) -> int:
    if len(argv) == 2 and argv[0] == "spec-of":
        sys.stdout.write(spec_of(Path(argv[1])) + "\n")
        return 0
    if len(argv) == 3 and argv[0] == "merge":
        tracked, working = Path(argv[1]), Path(argv[2])
        merged = merge(_read(tracked), _read(working))
        working.parent.mkdir(parents=True, exist_ok=True)
        working.write_text(yaml.safe_dump(merged, sort_keys=False), encoding="utf-8")
        return 0
    if len(argv) == 3 and argv[0] == "missing-secrets":
        for name in missing_secrets(Path(argv[1]), _read(Path(argv[2]))):
            sys.stdout.write(name + "\n")
        return 0
    sys.stderr.write(__doc__ or "")
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
