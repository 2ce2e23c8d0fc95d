"""Find spec files, load them, and report every problem of every file."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from mailbridge.errors import InputError, Location, Problem
from mailbridge.perf import paused_gc
from mailbridge.spec.models import DomainSpec
from mailbridge.spec.semantic import check_spec
from mailbridge.spec.validation import load_model
from mailbridge.spec.yamlsource import YamlDocument

SPEC_SUFFIXES = (".yaml", ".yml")


@dataclass(frozen=True)
class LoadedSpec:
    """A valid spec and where it came from, so later checks can cite lines."""

    spec: DomainSpec
    path: Path
    document: YamlDocument

    def locate(self, path: tuple[str | int, ...]) -> Location:
        return self.document.locate(path)


# Top-level keys that only a domain spec has; `version:` alone is enough, so
# a spec whose `domain:` key is misspelt is reported, not silently skipped.
SPEC_KEYS = ("domain:", "version:")


def is_spec_file(path: Path) -> bool:
    """A domain spec is a YAML file whose top level has `domain:` or `version:`.

    Pulumi stack files (`Pulumi.<stack>.yaml`) sit beside specs and are skipped.
    """
    if path.suffix not in SPEC_SUFFIXES or path.name.startswith("Pulumi."):
        return False
    try:
        head = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    return any(line.startswith(SPEC_KEYS) for line in head.splitlines())


def find_spec_files(paths: Iterable[Path]) -> list[Path]:
    """Expand folders into their spec files, sorted; files are kept as given."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found.extend(p for p in sorted(path.rglob("*")) if is_spec_file(p))
        else:
            found.append(path)
    return found


def _other_yaml(paths: Iterable[Path], most: int = 5) -> list[str]:
    """YAML files under the folders that were skipped as not being specs."""
    names = [
        str(p)
        for path in paths
        if path.is_dir()
        for p in sorted(path.rglob("*"))
        if p.suffix in SPEC_SUFFIXES
    ]
    return names[:most] + (
        [f"and {len(names) - most} more"] if len(names) > most else []
    )


def load_spec(path: Path) -> LoadedSpec:
    """Load and validate one spec file; raise InputError with every problem."""
    spec, doc = load_model(path, DomainSpec, check_spec)
    return LoadedSpec(spec=spec, path=path, document=doc)


def load_specs(paths: Iterable[Path]) -> list[LoadedSpec]:
    """Load many specs; problems of all files are reported together.

    Two files for the same domain are an error too.
    """
    paths = list(paths)
    files = find_spec_files(paths)
    if not files:
        skipped = _other_yaml(paths)
        raise InputError.single(
            "no domain specs found",
            location=Location(", ".join(str(p) for p in paths) or "."),
            found=(
                f"only YAML files that are not specs: {', '.join(skipped)}"
                if skipped
                else "no *.yaml or *.yml files"
            ),
            expected="YAML files with a top-level `version:` or `domain:` key",
            fix="name a spec file or a folder that holds specs",
        )
    loaded: list[LoadedSpec] = []
    problems: list[Problem] = []
    with paused_gc():
        for file in files:
            try:
                loaded.append(load_spec(file))
            except InputError as err:
                problems.extend(err.problems)
    owners: dict[str, LoadedSpec] = {}
    for item in loaded:
        other = owners.setdefault(item.spec.domain, item)
        if other is not item:
            problems.append(
                Problem(
                    f"domain {item.spec.domain} is also defined in {other.path}",
                    path=("domain",),
                    location=item.locate(("domain",)),
                    expected="one spec per domain",
                    fix="merge the two files",
                )
            )
    if problems:
        raise InputError(problems)
    return loaded
