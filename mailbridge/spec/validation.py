"""Turn Pydantic validation errors into located, readable problems."""

from __future__ import annotations

import difflib
import typing
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from mailbridge.errors import FieldPath, InputError, Problem
from mailbridge.spec.yamlsource import YamlDocument, read_yaml

ModelT = TypeVar("ModelT", bound=BaseModel)
SemanticCheck = Callable[[Any], Sequence[Problem]]


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """The BaseModels inside an annotation like `list[X] | None` or `A | B`."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    found: list[type[BaseModel]] = []
    for arg in typing.get_args(annotation):
        found.extend(m for m in _models_in(arg) if m not in found)
    return found


def _tagged(members: list[type[BaseModel]], part: str) -> type[BaseModel] | None:
    """The member of a tagged union whose Literal tag (`backend: x`) is `part`."""
    for member in members:
        for info in member.model_fields.values():
            if typing.get_origin(
                info.annotation
            ) is Literal and part in typing.get_args(info.annotation):
                return member
    return None


def _walk(
    model: type[BaseModel], loc: tuple[int | str, ...]
) -> tuple[FieldPath, list[type[BaseModel]]]:
    """Pydantic's error location as a path of the file, and the models it ends in.

    Union-member and validator tags are dropped, and so is the tag Pydantic
    adds for the chosen member of a tagged union (`dns.cloudflare.zone_id`
    is `dns.zone_id` in the file).
    """
    members = [model]
    parts: list[str | int] = []
    for part in loc:
        if isinstance(part, int):
            parts.append(part)
            continue
        if "[" in part or part.startswith("function-"):
            continue
        if len(members) > 1 and (member := _tagged(members, part)) is not None:
            members = [member]
            continue
        parts.append(part)
        info = None
        if len(members) == 1:
            fields = members[0].model_fields
            info = fields.get(part) or next(
                (f for f in fields.values() if f.alias == part), None
            )
        members = _models_in(info.annotation) if info is not None else []
    return tuple(parts), members


def _tags_at(model: type[BaseModel], loc: tuple[int | str, ...]) -> list[str]:
    """The tags a tagged union at `loc` accepts, from its members' Literals."""
    members = _walk(model, loc)[1]
    return [
        tag
        for member in members
        for info in member.model_fields.values()
        if typing.get_origin(info.annotation) is Literal
        for tag in typing.get_args(info.annotation)
    ]


def _known_fields(
    model: type[BaseModel], loc: tuple[int | str, ...]
) -> list[str] | None:
    """Field names (aliases) of the model that `loc` reaches, if it is one."""
    members = _walk(model, loc)[1]
    if len(members) != 1:
        return None
    return [f.alias or name for name, f in members[0].model_fields.items()]


def _clean_loc(loc: tuple[int | str, ...], model: type[BaseModel]) -> FieldPath:
    return _walk(model, loc)[0]


def _describe(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def problem_from_error(
    error: ErrorDetails, doc: YamlDocument, model: type[BaseModel]
) -> Problem:
    """One Pydantic error as a Problem with file, line, column and fix."""
    path = _clean_loc(error["loc"], model)
    kind = error["type"]
    ctx = error.get("ctx", {}) or {}
    found = _describe(error.get("input"))
    if kind == "extra_forbidden":
        known = _known_fields(model, error["loc"][:-1])
        expected = ", ".join(sorted(known)) if known else None
        close = difflib.get_close_matches(str(path[-1]), known or [], n=1)
        return Problem(
            f"unknown key {path[-1]!r}",
            path=path,
            location=doc.locate(path, key=True),
            expected=f"one of: {expected}" if expected else None,
            fix=f"did you mean `{close[0]}`? Otherwise remove it"
            if close
            else "remove it or correct its spelling",
        )
    if kind == "missing":
        return Problem(
            f"required key {path[-1]!r} is missing",
            path=path,
            location=doc.locate(path),
            fix=f"add `{path[-1]}:` here",
        )
    if kind == "value_error":
        err = ctx.get("error")
        message = str(err) if err is not None else error["msg"]
        fix = getattr(err, "fix", None)
        expected = getattr(err, "expected", None)
        return Problem(
            message,
            path=path,
            location=doc.locate(path),
            found=getattr(err, "found", None) or found,
            expected=expected,
            fix=fix,
        )
    if kind == "literal_error":
        return Problem(
            "this value is not one of the allowed choices",
            path=path,
            location=doc.locate(path),
            found=found,
            expected=str(ctx.get("expected", "")),
            fix="use one of the expected values",
        )
    if kind == "union_tag_invalid" or kind == "union_tag_not_found":
        key = str(ctx.get("discriminator", "")).strip("'") or "backend"
        tags = ctx.get("expected_tags") or ", ".join(
            repr(t) for t in _tags_at(model, error["loc"])
        )
        at = (*path, key)
        missing = kind == "union_tag_not_found"
        return Problem(
            f"required key {key!r} is missing"
            if missing
            else f"unknown {key} {ctx.get('tag')!r}",
            path=at,
            location=doc.locate(path if missing else at),
            found=None if missing else repr(ctx.get("tag")),
            expected=f"one of: {tags}" if tags else None,
            fix=f"add `{key}:` here" if missing else f"set `{key}:` to one of these",
        )
    message = error["msg"].rstrip(".").lower()
    if kind == "too_short":
        actual = ctx.get("actual_length", 0)
        message = "this list is empty" if actual == 0 else f"this list has {actual}"
    return Problem(
        message,
        path=path,
        location=doc.locate(path),
        found=found,
        expected=_expected_for(kind, ctx),
        fix=_fix_for(kind, error.get("input")),
    )


def _fix_for(kind: str, value: Any) -> str | None:
    """What to write instead, for the common kinds of type error."""
    if kind == "list_type" and isinstance(value, dict):
        return "make it a list item: start the entry with `- ` on its own line"
    if kind == "list_type" and isinstance(value, str | int | float):
        return f"write it as a list: [{value}]"
    if kind in {"int_parsing", "int_type", "int_from_float"}:
        return "write a whole number, without quotes or units"
    if kind in {"bool_parsing", "bool_type"}:
        return "write true or false, without quotes"
    if kind == "string_type":
        return 'write text; quote it ("...") if it looks like a number or true/false'
    if kind in {"dict_type", "model_type", "model_attributes_type"}:
        return "write `key: value` lines indented under this key, or `{key: value}`"
    if kind in {"greater_than_equal", "less_than_equal", "greater_than", "less_than"}:
        return "choose a value inside the range"
    if kind == "too_short":
        return "add at least one entry"
    return None


def _expected_for(kind: str, ctx: dict[str, Any]) -> str | None:
    table = {
        "int_parsing": "a whole number",
        "int_from_float": "a whole number",
        "int_type": "a whole number",
        "bool_parsing": "true or false",
        "bool_type": "true or false",
        "string_type": "a text value",
        "list_type": "a list (`- item` lines or `[a, b]`)",
        "dict_type": "a mapping of `key: value` lines",
        "model_type": "a mapping of `key: value` lines",
        "model_attributes_type": "a mapping of `key: value` lines",
    }
    if kind in {"greater_than_equal", "less_than_equal", "greater_than", "less_than"}:
        bounds = " and ".join(f"{_BOUND_WORDS[k]} {v}" for k, v in ctx.items())
        return f"a number {bounds}"
    if kind == "too_short":
        least = ctx.get("min_length", 1)
        return f"at least {least} item{'s' if least != 1 else ''}"
    return table.get(kind)


# Pydantic's bound names, said in words.
_BOUND_WORDS = {
    "ge": "of at least",
    "le": "of at most",
    "gt": "above",
    "lt": "below",
}


def validate_document(
    doc: YamlDocument,
    model: type[ModelT],
    semantic: SemanticCheck | None = None,
) -> ModelT:
    """Validate parsed YAML against `model`, then run `semantic` on the result.

    Every problem of the document is collected before raising InputError,
    those found while reading it (a key given twice) included.
    """
    early = list(doc.problems)
    if not isinstance(doc.data, dict):
        raise InputError(
            [
                *early,
                Problem(
                    "the file must hold a YAML mapping at the top level",
                    location=doc.locate(()),
                    found=type(doc.data).__name__,
                    expected="`key: value` lines, for example `domain: example.com`",
                ),
            ]
        )
    try:
        value = model.model_validate(doc.data)
    except ValidationError as err:
        problems = early + [problem_from_error(e, doc, model) for e in err.errors()]
        if semantic is not None:
            problems.extend(_salvage(doc, model, semantic, err))
        raise InputError(sorted(_unique(problems), key=_position)) from err
    errors = early
    if semantic is not None:
        errors = errors + _located_errors(semantic(value), doc)
    if errors:
        raise InputError(sorted(_unique(errors), key=_position))
    return value


def _position(problem: Problem) -> tuple[int, int]:
    where = problem.location
    return (where.line or 0, where.column or 0) if where else (0, 0)


def _located_errors(problems: Sequence[Problem], doc: YamlDocument) -> list[Problem]:
    return [
        p if p.location else p.with_location(doc.locate(p.path))
        for p in problems
        if p.severity == "error"
    ]


def _salvage(
    doc: YamlDocument,
    model: type[BaseModel],
    semantic: SemanticCheck,
    err: ValidationError,
) -> list[Problem]:
    """Cross-field problems of what is left once the invalid entries are gone.

    Field errors stop validation, yet a user wants every problem at once: drop
    each list entry (or optional key) holding a field error, validate the rest,
    run the semantic rules on it and map list indexes back to the file's.
    """
    drops: set[FieldPath] = set()
    for error in err.errors():
        path = _clean_loc(error["loc"], model)
        cut = next((i for i, part in enumerate(path) if isinstance(part, int)), None)
        drops.add(path[: cut + 1] if cut is not None else path[:1])
    data, index_map = _without(doc.data, drops, ())
    try:
        partial = model.model_validate(data)
    except ValidationError:
        return []
    found = []
    for problem in semantic(partial):
        if problem.severity != "error":
            continue
        path = _remap(problem.path, index_map)
        found.append(
            Problem(
                problem.message,
                path=path,
                location=doc.locate(path),
                expected=problem.expected,
                found=problem.found,
                fix=problem.fix,
                rule=problem.rule,
            )
        )
    return found


IndexMap = dict[FieldPath, list[int]]


def _without(
    value: Any, drops: set[FieldPath], path: FieldPath
) -> tuple[Any, IndexMap]:
    """A copy of `value` without the paths in `drops`, and the kept indexes."""
    index_map: IndexMap = {}
    if isinstance(value, dict):
        result: dict[Any, Any] = {}
        for key, item in value.items():
            child = (*path, key)
            if child in drops:
                continue
            result[key], sub = _without(item, drops, child)
            index_map.update(sub)
        return result, index_map
    if isinstance(value, list):
        kept = [i for i in range(len(value)) if (*path, i) not in drops]
        index_map[path] = kept
        items = []
        for i in kept:
            item, sub = _without(value[i], drops, (*path, i))
            items.append(item)
            index_map.update(sub)
        return items, index_map
    return value, index_map


def _remap(path: FieldPath, index_map: IndexMap) -> FieldPath:
    """Turn indexes of the pruned copy back into indexes of the file."""
    original: list[str | int] = []
    for part in path:
        kept = index_map.get(tuple(original))
        if isinstance(part, int) and kept is not None and part < len(kept):
            original.append(kept[part])
        else:
            original.append(part)
    return tuple(original)


def _unique(problems: list[Problem]) -> list[Problem]:
    seen: set[tuple[Any, ...]] = set()
    result = []
    for p in problems:
        key = (p.path, p.message)
        if key not in seen:
            seen.add(key)
            result.append(p)
    return result


def load_model(
    path: Path, model: type[ModelT], semantic: SemanticCheck | None = None
) -> tuple[ModelT, YamlDocument]:
    """Read a YAML file into `model`; raise InputError listing every problem."""
    doc = read_yaml(path)
    return validate_document(doc, model, semantic), doc
