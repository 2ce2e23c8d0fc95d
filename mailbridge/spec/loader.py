"""Find spec files, load them, and report every problem of every file."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from mailbridge.errors import InputError, Location, Problem
from mailbridge.perf import paused_gc
from mailbridge.spec.models import DomainSpec
from mailbridge.spec.semantic import check_spec
from mailbridge.spec.validation import validate_document
from mailbridge.spec.yamlsource import YamlDocument, read_yaml

SPEC_SUFFIXES = (".yaml", ".yml")


@dataclass(frozen=True)
class LoadedSpec:
    """A valid spec and where it came from, so later checks can cite lines."""

    spec: DomainSpec
    path: Path
    document: YamlDocument

    def locate(self, path: tuple[str | int, ...]) -> Location:
        return self.document.locate(path)

    def located(self, err: InputError) -> InputError:
        """`err` with each problem that names only a field of this spec
        pointed at that field's line."""
        return InputError(
            [
                p if p.location else p.with_location(self.locate(p.path))
                for p in err.problems
            ]
        )


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


def _not_a_spec(path: Path, doc: YamlDocument) -> InputError | None:
    """A mapping with none of a spec's required keys is some other YAML file.

    Listing every key as unknown would hide that; say what the file is.
    """
    data = doc.data
    if not isinstance(data, dict) or not data:
        return None
    if any(key in data for key in ("version", "domain", "mail_host")):
        return None
    keys = ", ".join(str(k) for k in list(data)[:5])
    fix = "name a domain spec file, such as stacks/<domain>.yaml"
    config = data.get("config")
    if path.name.startswith("Pulumi.") and isinstance(config, dict):
        spec = config.get("mailbridge:spec")
        what = "a Pulumi stack file, not a domain spec"
        if spec:
            fix = f"name its domain spec instead: {spec}"
    else:
        what = "not a domain spec: it has none of version, domain, mail_host"
    return InputError.single(
        f"this is {what}",
        location=doc.locate(()),
        found=f"top-level keys: {keys}",
        expected="a domain spec with `version:`, `domain:` and `mail_host:`",
        fix=fix,
    )


def load_spec(path: Path) -> LoadedSpec:
    """Load and validate one spec file; raise InputError with every problem."""
    doc = read_yaml(path)
    wrong = _not_a_spec(path, doc)
    if wrong is not None:
        raise wrong
    spec = validate_document(doc, DomainSpec, check_spec)
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
