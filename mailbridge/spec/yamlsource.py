"""YAML loading that remembers the line and column of every value."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from mailbridge.errors import FieldPath, InputError, Location, Problem


@dataclass
class YamlDocument:
    """Plain data parsed from YAML, with the position of each node."""

    file: str
    data: Any
    positions: dict[FieldPath, tuple[int, int]]
    key_positions: dict[FieldPath, tuple[int, int]]

    def locate(self, path: FieldPath, *, key: bool = False) -> Location:
        """The position of `path`, or of its nearest ancestor that exists.

        With `key=True` an unknown mapping key is found at the key itself.
        """
        table = self.key_positions if key else self.positions
        if key and path in table:
            line, column = table[path]
            return Location(self.file, line, column)
        probe = tuple(path)
        while probe:
            if probe in self.positions:
                line, column = self.positions[probe]
                return Location(self.file, line, column)
            probe = probe[:-1]
        line, column = self.positions.get((), (1, 1))
        return Location(self.file, line, column)


def _construct(
    node: yaml.Node,
    path: FieldPath,
    doc: YamlDocument,
    problems: list[Problem],
) -> Any:
    doc.positions[path] = (node.start_mark.line + 1, node.start_mark.column + 1)
    if isinstance(node, yaml.MappingNode):
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = yaml.SafeLoader.construct_object(_LOADER, key_node)
            if not isinstance(key, str | int):
                key = str(key)
            child = (*path, key)
            here = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
            if key in result:
                problems.append(
                    Problem(
                        f"key {key!r} appears twice in the same mapping",
                        path=child,
                        location=Location(doc.file, *here),
                        fix="keep one of the two entries",
                    )
                )
                continue
            doc.key_positions[child] = here
            result[key] = _construct(value_node, child, doc, problems)
        return result
    if isinstance(node, yaml.SequenceNode):
        return [
            _construct(item, (*path, index), doc, problems)
            for index, item in enumerate(node.value)
        ]
    return yaml.SafeLoader.construct_object(_LOADER, node)


class _ScalarLoader(yaml.SafeLoader):
    """SafeLoader used only to turn scalar nodes into Python values."""


_LOADER = _ScalarLoader("")


def parse_yaml(text: str, file: str) -> YamlDocument:
    """Parse one YAML document; raise InputError with the position on failure."""
    doc = YamlDocument(file=file, data=None, positions={}, key_positions={})
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark
        location = Location(file, mark.line + 1, mark.column + 1) if mark else None
        raise InputError(
            [
                Problem(
                    f"this is not valid YAML: {err.problem}",
                    location=location,
                    expected="a YAML mapping such as `domain: example.com`",
                    fix="check indentation and quoting near this position",
                )
            ]
        ) from err
    except yaml.YAMLError as err:
        raise InputError(
            [Problem(f"this is not valid YAML: {err}", location=Location(file))]
        ) from err
    if node is None:
        doc.data = {}
        doc.positions[()] = (1, 1)
        return doc
    problems: list[Problem] = []
    doc.data = _construct(node, (), doc, problems)
    if problems:
        raise InputError(problems)
    return doc


def read_yaml(path: Path) -> YamlDocument:
    """Read and parse a YAML file, reporting an unreadable file as bad input."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as err:
        raise InputError.single(
            "file not found",
            location=Location(str(path)),
            fix="check the path; a folder is searched for *.yaml specs",
        ) from err
    except (OSError, UnicodeDecodeError) as err:
        raise InputError.single(
            f"cannot read this file: {err}", location=Location(str(path))
        ) from err
    return parse_yaml(text, str(path))
