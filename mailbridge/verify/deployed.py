"""DKIM keys as a deploy left them, read from `pulumi stack output --json`.

A stack's `dkim` output maps each selector to its record name, state,
whether it is retired, and the public TXT value it published::

    {"domain": "example.com",
     "dkim": {"s2026a": {"record": "s2026a._domainkey.example.com",
                         "state": "active", "retired": false,
                         "value": "v=DKIM1; k=rsa; p=MIIB..."}}}

The private keys stay in the Pulumi state; this is all verify needs to
compare the live DKIM records with the deployed keys.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from mailbridge.errors import InputError, Location, Problem

log = logging.getLogger(__name__)

OPTION = "--dkim-from-stack-output"
_SHAPE = (
    'the JSON of `pulumi stack output --json`: {"domain": ..., '
    '"dkim": {SELECTOR: {"value": ..., "retired": ...}}}'
)


@dataclass(frozen=True)
class DeployedKeys:
    """One domain's deployed selectors: public values, and those retired."""

    domain: str
    values: dict[str, str] = field(default_factory=dict)
    retired: frozenset[str] = frozenset()


def read_stack_outputs(paths: Iterable[Path]) -> dict[str, DeployedKeys]:
    """Domain -> its deployed keys, from one stack output file per stack.

    A stack with no outputs yet (`{}`) is left out. Every unreadable or
    malformed file is reported together as InputError.
    """
    found: dict[str, DeployedKeys] = {}
    problems: list[Problem] = []
    for path in paths:
        try:
            keys = _read_one(path)
        except InputError as err:
            problems.extend(err.problems)
            continue
        if keys is None:
            log.info("deployed keys file=%s no outputs (stack not deployed)", path)
            continue
        if keys.domain in found:
            problems.append(
                _problem(path, f"a second stack output for {keys.domain}", "domain")
            )
            continue
        log.info(
            "deployed keys file=%s domain=%s selectors=%d",
            path,
            keys.domain,
            len(keys.values),
        )
        found[keys.domain] = keys
    if problems:
        raise InputError(problems)
    return found


def _read_one(path: Path) -> DeployedKeys | None:
    """The file's keys; None for a stack that was never deployed (`{}`)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as err:
        raise InputError([_problem(path, f"cannot read it: {err}", "")]) from err
    except json.JSONDecodeError as err:
        problem = _problem(path, f"not JSON: {err.msg}", "")
        located = problem.with_location(Location(str(path), err.lineno, err.colno))
        raise InputError([located]) from err
    if data == {}:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("domain"), str):
        raise InputError([_problem(path, "no `domain` output", "domain")])
    selectors = data.get("dkim", {})
    if not isinstance(selectors, dict):
        raise InputError([_problem(path, "`dkim` is not an object", "dkim")])
    values: dict[str, str] = {}
    retired: set[str] = set()
    for name, row in selectors.items():
        value = row.get("value") if isinstance(row, dict) else None
        if not isinstance(value, str) or not value.startswith("v=DKIM1"):
            raise InputError(
                [_problem(path, f"selector {name} has no DKIM value", "dkim", name)]
            )
        if row.get("retired") is True:
            retired.add(name)
        else:
            values[name] = value
    domain = data["domain"].lower().rstrip(".")
    return DeployedKeys(domain, values, frozenset(retired))


def _problem(path: Path, message: str, *field_path: str) -> Problem:
    return Problem(
        message,
        path=tuple(p for p in field_path if p),
        location=Location(str(path)),
        expected=_SHAPE,
        fix=f"write it with `pulumi stack output --stack STACK --json > {path}`",
    )
