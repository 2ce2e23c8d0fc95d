"""Resolve `secret:NAME` references to values, at deploy or run time only.

Values come from a mapping (Pulumi config secrets, handed in by the Pulumi
program) or from the environment variable `MAILBRIDGE_SECRET_<NAME>`, with
NAME upper-cased and `-` and `.` turned into `_`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from mailbridge.errors import InputError
from mailbridge.spec.types import SECRET_PREFIX, secret_name

ENV_PREFIX = "MAILBRIDGE_SECRET_"


def env_name(name: str) -> str:
    """The environment variable that holds secret NAME."""
    return ENV_PREFIX + name.upper().replace("-", "_").replace(".", "_")


@dataclass
class SecretStore:
    """Looks secrets up in `values` first, then in `environ`.

    Missing secrets are reported all at once by `require`, so a deploy names
    every secret it lacks instead of failing on the first.
    """

    values: Mapping[str, str] = field(default_factory=dict)
    environ: Mapping[str, str] = field(default_factory=lambda: os.environ)

    def get(self, ref: str) -> str | None:
        name = secret_name(ref) if ref.startswith(SECRET_PREFIX) else ref
        if name in self.values:
            return self.values[name]
        return self.environ.get(env_name(name))

    def resolve(self, ref: str) -> str:
        value = self.get(ref)
        if value is None:
            raise _missing([ref])
        return value

    def require(self, refs: list[str]) -> None:
        """Raise one InputError naming every reference that has no value."""
        missing = sorted({r for r in refs if self.get(r) is None})
        if missing:
            raise _missing(missing)


def _missing(refs: list[str]) -> InputError:
    names = [secret_name(r) if r.startswith(SECRET_PREFIX) else r for r in refs]
    return InputError.single(
        "secret values are missing: " + ", ".join(names),
        expected="a value for each secret reference the spec uses",
        fix="set them with `pulumi config set --secret --path mailbridge:secrets.NAME "
        "VALUE`, or export " + ", ".join(env_name(n) for n in names),
    )
