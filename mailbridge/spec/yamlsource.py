"""YAML loading that remembers the line and column of every value."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mailbridge.errors import FieldPath, InputError, Location, Problem

# libyaml composes about twenty times faster than the pure-Python parser.
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_STR_TAG = "tag:yaml.org,2002:str"


class _ScalarLoader(yaml.SafeLoader):
    """SafeLoader used only to turn non-string scalar nodes into values."""


_LOADER = _ScalarLoader("")


def _scalar(node: yaml.Node) -> Any:
    """The value of a scalar node (ints, bools, null...), strings as they are."""
    if node.tag == _STR_TAG:
        return node.value
    constructor = _ScalarLoader.yaml_constructors.get(node.tag)
    if constructor is None or not isinstance(node, yaml.ScalarNode):
        return node.value
    return constructor(_LOADER, node)


@dataclass
class YamlDocument:
    """Plain data parsed from YAML, and the node tree that knows positions.

    Positions are looked up only when a problem needs one, so loading many
    large specs stays fast.
    """

    file: str
    data: Any
    root: yaml.Node | None
    # Found while reading (a key given twice): reported with the validation's.
    problems: list[Problem] = field(default_factory=list, kw_only=True)

    def locate(self, path: FieldPath, *, key: bool = False) -> Location:
        """The position of `path`, or of its nearest ancestor that exists.

        With `key=True` an unknown mapping key is found at the key itself.
        """
        node = self.root
        if node is None:
            return Location(self.file, 1, 1)
        mark = node.start_mark
        for depth, part in enumerate(path):
            last = depth == len(path) - 1
            child: yaml.Node | None = None
            if isinstance(node, yaml.MappingNode):
                for key_node, value_node in node.value:
                    if _scalar(key_node) == part:
                        child = key_node if (last and key) else value_node
                        break
            elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
                child = node.value[part] if 0 <= part < len(node.value) else None
            if child is None:
                break
            node = child
            mark = node.start_mark
        return Location(self.file, mark.line + 1, mark.column + 1)


def _construct(
    node: yaml.Node, path: FieldPath, file: str, problems: list[Problem]
) -> Any:
    if isinstance(node, yaml.MappingNode):
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = _scalar(key_node)
            if not isinstance(key, str | int):
                key = str(key)
            if key in result:
                mark = key_node.start_mark
                problems.append(
                    Problem(
                        f"key {key!r} appears twice in the same mapping",
                        path=(*path, key),
                        location=Location(file, mark.line + 1, mark.column + 1),
                        fix="keep one of the two entries",
                    )
                )
                continue
            result[key] = _construct(value_node, (*path, key), file, problems)
        return result
    if isinstance(node, yaml.SequenceNode):
        return [
            _construct(item, (*path, index), file, problems)
            for index, item in enumerate(node.value)
        ]
    return _scalar(node)


def _syntax_problem(err: yaml.MarkedYAMLError, text: str, file: str) -> Problem:
    """A YAML syntax error said plainly: where, what started it, what to do."""
    mark = err.problem_mark
    if mark is None:
        return Problem(
            f"this is not valid YAML: {err.problem}", location=Location(file)
        )
    location = Location(file, mark.line + 1, mark.column + 1)
    lines = text.splitlines()
    line = lines[mark.line] if mark.line < len(lines) else ""
    indent = line[: len(line) - len(line.lstrip(" \t"))]
    if "\t" in indent or line[mark.column : mark.column + 1] == "\t":
        return Problem(
            "this is not valid YAML: a tab character; YAML indents with spaces only",
            location=location,
            found=f"a tab in line {mark.line + 1}",
            expected="spaces for indentation",
            fix="replace the tab with spaces (2 per level, like the lines around)",
        )
    if "another document" in str(err.problem):
        return Problem(
            "a spec file holds one YAML document; a second one starts here",
            location=location,
            found="a `---` line after the first document",
            expected="one document per file",
            fix="remove the `---` line, or move what follows into its own file",
        )
    message = f"this is not valid YAML: {err.problem}"
    start = err.context_mark
    fix = "check indentation and quoting near this position"
    if err.context and start is not None and start.line != mark.line:
        message += (
            f" ({err.context} that starts at line {start.line + 1}, "
            f"column {start.column + 1})"
        )
        fix = (
            f"check the brackets, quotes and indentation from line "
            f"{start.line + 1} to here"
        )
    elif "mapping values are not allowed" in str(err.problem):
        fix = "indent this key like the keys above it, or quote a value that holds ': '"
    return Problem(
        message,
        location=location,
        expected="`key: value` lines, lists as `- item` lines or `[a, b]`",
        fix=fix,
    )


def parse_yaml(text: str, file: str) -> YamlDocument:
    """Parse one YAML document; raise InputError with the position on failure."""
    doc = YamlDocument(file=file, data=None, root=None)
    try:
        node = yaml.compose(text, Loader=_Loader)
    except yaml.MarkedYAMLError as err:
        raise InputError([_syntax_problem(err, text, file)]) from err
    except yaml.YAMLError as err:
        raise InputError(
            [Problem(f"this is not valid YAML: {err}", location=Location(file))]
        ) from err
    if node is None:
        doc.data = {}
        return doc
    doc.root = node
    doc.data = _construct(node, (), file, doc.problems)
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
    except IsADirectoryError as err:
        raise InputError.single(
            "this is a folder; this command reads one spec file",
            location=Location(str(path)),
            expected=f"one spec file, such as {path / '<domain>.yaml'}",
            fix="name one spec file of the folder",
        ) from err
    except UnicodeDecodeError as err:
        raise InputError.single(
            f"this file is not UTF-8 text: {err.reason} at byte {err.start}",
            location=Location(str(path)),
            expected="a YAML text file in UTF-8",
            fix="save the file as UTF-8",
        ) from err
    except OSError as err:
        raise InputError.single(
            f"cannot read this file: {err}", location=Location(str(path))
        ) from err
    return parse_yaml(text, str(path))
