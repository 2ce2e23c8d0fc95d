"""Turn Pydantic validation errors into located, readable problems."""

from __future__ import annotations

import typing
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from mailbridge.errors import FieldPath, InputError, Problem
from mailbridge.spec.yamlsource import YamlDocument, read_yaml

ModelT = TypeVar("ModelT", bound=BaseModel)
SemanticCheck = Callable[[Any], Sequence[Problem]]


def _known_fields(model: type[BaseModel], path: FieldPath) -> list[str] | None:
    """Field names (aliases) of the model reached by `path`, if it is one."""
    current: Any = model
    for part in path:
        if isinstance(part, int):
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return None
        info = current.model_fields.get(str(part))
        if info is None:
            matches = [f for f in current.model_fields.values() if f.alias == part]
            if not matches:
                return None
            info = matches[0]
        current = _model_in(info.annotation)
        if current is None:
            return None
    if isinstance(current, type) and issubclass(current, BaseModel):
        return [f.alias or name for name, f in current.model_fields.items()]
    return None


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The single BaseModel inside an annotation like `list[X] | None`."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    found = [m for a in typing.get_args(annotation) if (m := _model_in(a)) is not None]
    return found[0] if len(found) == 1 else None


def _clean_loc(loc: tuple[int | str, ...]) -> FieldPath:
    """Drop the union-member and validator tags Pydantic adds to locations."""
    parts: list[str | int] = []
    for part in loc:
        if isinstance(part, str) and ("[" in part or part.startswith("function-")):
            continue
        parts.append(part)
    return tuple(parts)


def _describe(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def problem_from_error(
    error: ErrorDetails, doc: YamlDocument, model: type[BaseModel]
) -> Problem:
    """One Pydantic error as a Problem with file, line, column and fix."""
    path = _clean_loc(error["loc"])
    kind = error["type"]
    ctx = error.get("ctx", {}) or {}
    found = _describe(error.get("input"))
    if kind == "extra_forbidden":
        known = _known_fields(model, path[:-1])
        expected = ", ".join(sorted(known)) if known else None
        return Problem(
            f"unknown key {path[-1]!r}",
            path=path,
            location=doc.locate(path, key=True),
            expected=f"one of: {expected}" if expected else None,
            fix="remove it or correct its spelling",
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
            found=found,
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
        return Problem(
            "unknown or missing variant",
            path=path,
            location=doc.locate(path),
            found=found,
            expected=str(ctx.get("expected_tags", "")) or error["msg"],
            fix="set the variant key to one of the expected values",
        )
    return Problem(
        error["msg"].rstrip(".").lower(),
        path=path,
        location=doc.locate(path),
        found=found,
        expected=_expected_for(kind, ctx),
    )


def _expected_for(kind: str, ctx: dict[str, Any]) -> str | None:
    table = {
        "int_parsing": "a whole number",
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
        bounds = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in ctx.items())
        return f"a number {bounds}"
    return table.get(kind)


def validate_document(
    doc: YamlDocument,
    model: type[ModelT],
    semantic: SemanticCheck | None = None,
) -> ModelT:
    """Validate parsed YAML against `model`, then run `semantic` on the result.

    Every problem of the document is collected before raising InputError.
    """
    if not isinstance(doc.data, dict):
        raise InputError.single(
            "the file must hold a YAML mapping at the top level",
            location=doc.locate(()),
            found=type(doc.data).__name__,
            expected="`key: value` lines, for example `domain: example.com`",
        )
    try:
        value = model.model_validate(doc.data)
    except ValidationError as err:
        problems = [problem_from_error(e, doc, model) for e in err.errors()]
        raise InputError(_unique(problems)) from err
    if semantic is not None:
        found = [
            p if p.location else p.with_location(doc.locate(p.path))
            for p in semantic(value)
        ]
        errors = [p for p in found if p.severity == "error"]
        if errors:
            raise InputError(errors)
    return value


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
