"""Pulumi stacks of the project and the stacks a Git change touches.

One stack per domain: `stacks/Pulumi.<stack>.yaml` holds the stack's
config, whose `mailbridge:spec` names the domain spec beside it. CI builds
its matrix from `changed_stacks`: a change to a spec, a stack file or a peer
spec (`mailbridge:peers`, read by the checks) touches that stack; a change
to code, templates or the program touches them all.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from mailbridge.errors import InputError, Location

STACK_PREFIX = "Pulumi."
STACK_SUFFIX = ".yaml"
SPEC_KEY = "mailbridge:spec"
PEERS_KEY = "mailbridge:peers"

# Paths (folders end in '/') whose change can alter every stack's deploy.
SHARED_PATHS: tuple[str, ...] = (
    "mailbridge/",
    "components/",
    "templates/",
    "policies/",
    "__main__.py",
    "Pulumi.yaml",
    "pyproject.toml",
    "requirements.lock",
)


@dataclass(frozen=True)
class Stack:
    """A stack file and the spec its config names, both relative to the repo."""

    name: str
    stack_file: str
    spec: str | None
    peers: tuple[str, ...] = ()


@dataclass
class ChangedStack:
    """A stack touched by a change, and the changed paths that touch it."""

    stack: Stack
    reasons: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, object]:
        return {
            "stack": self.stack.name,
            "stack_file": self.stack.stack_file,
            "spec": self.stack.spec,
            "peers": list(self.stack.peers),
            "changed": self.reasons,
        }


def read_stack_file(path: Path) -> dict[str, Any]:
    """A Pulumi stack file as a mapping; bad YAML or another shape is bad input."""
    expected = "a Pulumi stack file with a `config:` mapping"
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as err:
        raise InputError.single(
            f"stack file is not valid YAML: {err}",
            location=Location(str(path)),
            expected=expected,
        ) from err
    if not isinstance(data, dict):
        raise InputError.single(
            "this is not a Pulumi stack file",
            location=Location(str(path)),
            expected=expected,
            fix="compare it with stacks/Pulumi.example.com.yaml",
        )
    return data


def find_stacks(root: Path, stacks_dir: str = "stacks") -> list[Stack]:
    """Every `Pulumi.<stack>.yaml` under `root/stacks_dir`, sorted by name."""
    found = []
    for path in sorted((root / stacks_dir).glob(f"{STACK_PREFIX}*{STACK_SUFFIX}")):
        name = path.name[len(STACK_PREFIX) : -len(STACK_SUFFIX)]
        data = read_stack_file(path)
        config = data.get("config") or {}
        if not isinstance(config, dict):
            config = {}
        spec = config.get(SPEC_KEY)
        peers = config.get(PEERS_KEY) or []
        found.append(
            Stack(
                name=name,
                stack_file=path.relative_to(root).as_posix(),
                spec=str(spec) if spec is not None else None,
                peers=tuple(str(p) for p in peers),
            )
        )
    return found


def _touches(changed: str, shared: str) -> bool:
    if shared.endswith("/"):
        return changed.startswith(shared)
    return changed == shared


def changed_stacks(
    stacks: Iterable[Stack],
    changed_paths: Iterable[str],
    shared_paths: Iterable[str] = SHARED_PATHS,
) -> list[ChangedStack]:
    """The stacks that `changed_paths` (repo-relative, '/'-separated) touch."""
    shared = tuple(shared_paths)
    result = {stack.name: ChangedStack(stack) for stack in stacks}
    for raw in sorted(set(changed_paths)):
        path = PurePosixPath(raw).as_posix()
        everyone = any(_touches(path, s) for s in shared)
        for item in result.values():
            own = path in (item.stack.stack_file, item.stack.spec, *item.stack.peers)
            if everyone or own:
                item.reasons.append(path)
    return [item for item in result.values() if item.reasons]


class GitError(Exception):
    """git failed: not a repository, or an unknown revision."""


def _git(root: Path, *args: str) -> list[str]:
    done = subprocess.run(
        ["git", "-C", str(root), *args],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise GitError(f"git {' '.join(args)} failed: {done.stderr.strip()}")
    return [line for line in done.stdout.splitlines() if line]


def changed_since(root: Path, ref: str) -> list[str]:
    """Paths changed between `ref` and the working tree, untracked ones included.

    Comparing with the working tree covers both commits after `ref` and
    edits not committed yet, which is what a pull request's CI and a person
    at their desk both mean by "changed".
    """
    _git(root, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
    paths = _git(root, "diff", "--name-only", "--no-renames", ref, "--")
    paths += _git(root, "ls-files", "--others", "--exclude-standard")
    return sorted(set(paths))
