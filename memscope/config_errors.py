"""How a pydantic ValidationError of a YAML file becomes FILE:LINE problems a person can act on.

Separate from the schemas (`memscope.config`) so that any YAML file validated by a pydantic model
(the config, operation files) renders its problems the same way: the key path, its line, and a
message saying what is expected (`expected a whole number >= 1, got 'ten'`), the allowed keys with a
close match for an unknown one, and never the value of a secret.
"""

from __future__ import annotations

import difflib
import re
import types
from collections.abc import Collection
from pathlib import Path
from typing import Any, Union, get_args, get_origin

import annotated_types
import pydantic
from pydantic import BaseModel, SecretStr

from memscope._yaml_lines import Document, KeyPath, Problem

__all__ = ["error_message", "model_problems", "plain_number", "show"]


def model_problems(
    exc: pydantic.ValidationError, root: type[BaseModel], doc: Document, *, secret_keys: Collection[str] = ()
) -> list[Problem]:
    """One Problem per error of validating `doc` against `root`, skipping values already explained."""
    reported = [problem.path for problem in doc.problems if problem.covers_value]
    problems: list[Problem] = []
    for error in exc.errors(include_url=False):
        loc: KeyPath = tuple(error["loc"])
        if any(loc[: len(path)] == path for path in reported):
            continue  # already explained (e.g. an unset environment variable)
        problems.append(Problem(loc, error_message(error, root, secret_keys), doc.line_of(loc)))
    return problems


def error_message(error: Any, root: type[BaseModel], secret_keys: Collection[str] = ()) -> str:
    """What one pydantic error (from `exc.errors()`) of validating against `root` means, for a person."""
    return _message(error, tuple(error["loc"]), root, secret_keys)


def _message(error: Any, loc: KeyPath, root: type[BaseModel], secret_keys: Collection[str]) -> str:
    kind, value = error["type"], error.get("input")
    if any(part in secret_keys for part in loc):  # never echo a key, even a malformed one
        value = _Hidden(value)
    model, info, is_item = _field_at(loc, root)
    if kind == "extra_forbidden":
        allowed = list(model.model_fields) if model else []
        close = difflib.get_close_matches(str(loc[-1]), allowed, n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        return f"unknown key{hint} (allowed: {', '.join(allowed)})"
    if kind == "literal_error":
        choices = re.findall(r"'([^']*)'", error.get("ctx", {}).get("expected", ""))
        return f"{show(value)} is not allowed; choose one of: {', '.join(choices)}"
    if kind == "missing":
        return "required key is missing; add it"
    if kind in ("value_error", "assertion_error"):
        return str(error.get("ctx", {}).get("error", error["msg"]))
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        section = _submodel(info.annotation) if info else None
        keys = f" with keys: {', '.join(section.model_fields)}" if section else ""
        return f"expected a mapping{keys}; got {show(value)}"
    if info is None:
        return f"{error['msg']}, got {show(value)}"
    expected = _expected(info, str(loc[-1] if not is_item else loc[-2]), is_item)
    scalar = isinstance(value, int | float) and expected.startswith("a string")  # bool is an int too
    hint = " (quote it to make it text)" if scalar else ""
    return f"expected {expected}, got {show(value)}{hint}"


def _field_at(loc: KeyPath, root: type[BaseModel]) -> tuple[type[BaseModel] | None, Any, bool]:
    """The model holding the last key of `loc`, that key's FieldInfo, and whether loc ends in a list item."""
    model: type[BaseModel] | None = root
    parent, info, is_item = model, None, False
    for part in loc:
        if isinstance(part, int):
            is_item = True
            continue
        parent, is_item = model, False
        if model is None or part not in model.model_fields:
            return parent, None, False
        info = model.model_fields[part]
        model = _submodel(info.annotation)
    return parent, info, is_item


def _submodel(annotation: Any) -> type[BaseModel] | None:
    return annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None


def _expected(info: Any, name: str, is_item: bool) -> str:
    args = get_args(info.annotation)
    union = get_origin(info.annotation) in (Union, types.UnionType)
    optional = union and type(None) in args
    base = next((arg for arg in args if arg is not type(None)), info.annotation) if union else info.annotation
    if get_origin(base) is list:
        element = get_args(base)[0]
        if not is_item:
            return f"a list of {_NOUNS.get(element, 'value')}s"
        base = element
    noun = {bool: "true or false", int: "a whole number", float: "a number", str: "a string", Path: "a path",
            SecretStr: "a string"}  # fmt: skip
    text = noun.get(base, "a value")
    if name.endswith("_s") and base in (int, float):
        text = "a number of seconds"
    for bound in info.metadata:
        if isinstance(bound, annotated_types.Gt):
            text += f" > {plain_number(bound.gt)}"
        elif isinstance(bound, annotated_types.Ge):
            text += f" >= {plain_number(bound.ge)}"
        elif isinstance(bound, annotated_types.MinLen) and bound.min_length == 1:
            text = "a non-empty string"
    return text + (" or null" if optional else "")


_NOUNS = {str: "string", Path: "path", int: "whole number"}


def plain_number(value: Any) -> Any:
    """60.0 as 60: a whole float shown as a whole number."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


class _Hidden:
    """A secret's value in a problem message: its type, never its text."""

    def __init__(self, value: Any) -> None:
        self.kind = type(value).__name__

    def __repr__(self) -> str:
        return f"a {self.kind} (value hidden)"


def show(value: Any) -> str:
    """A value as a problem message quotes it: null, true/false, or a repr cut at 60 characters."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
