"""The one located-YAML loader: config and operation files, whose errors name file:line.

`compose` reads a file's node tree (guarding size, alias bombs and depth; a syntax error is one
problem with its line and column); operation files are validated from those nodes (line:col of each
key). For config files, `load_document` turns the nodes into plain data (never constructing
arbitrary objects), records the line of every mapping key and list item by its path, and
interpolates the environment into string values:

- `${VAR}` is the variable's value; unset is a problem (the value is left empty).
- `${VAR:-default}` is the default when VAR is unset or empty; `${VAR:-}` is an empty default.
- `$${` is a literal `${` (so `$${VAR}` stays `${VAR}`); any other `$` is left as it is.
- A plain (unquoted) value that interpolates to nothing, `~` or `null` becomes null, as if written so.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

__all__ = [
    "MAX_YAML_BYTES",
    "MAX_YAML_VALUES",
    "Document",
    "KeyPath",
    "Problem",
    "compose",
    "dotted",
    "guard_text",
    "guard_tree",
    "interpolate",
    "interpolate_tree",
    "load_document",
]

KeyPath = tuple[str | int, ...]

_STR_TAG = "tag:yaml.org,2002:str"
_NULL_FORMS = frozenset({"", "~", "null", "Null", "NULL"})
_TOKEN = re.compile(r"\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)(:-([^}]*))?\}|\$\{")
_HOW = "write ${NAME} or ${NAME:-default} (NAME: letters, digits, _), or $${ for a literal '${'"
MAX_YAML_BYTES = 1_000_000  # config and operation files; real ones are a few KB
MAX_YAML_VALUES = 100_000  # values once aliases are expanded (a "billion laughs" file is far more)
TOO_DEEP = "the YAML is nested too deeply to read; flatten it"


@dataclass(frozen=True)
class Problem:
    """One thing wrong in a config: where (key path, line, column) and what, saying what to do."""

    path: KeyPath
    message: str
    line: int | None = None
    column: int | None = None
    covers_value: bool = False  # the value itself is unusable: skip further errors about it

    def format(self, source: str) -> str:
        """Render as 'source:line: key.path: message' (column and key path only when known)."""
        where = source
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        return f"{where}: {dotted(self.path)}: {self.message}" if self.path else f"{where}: {self.message}"


@dataclass
class Document:
    """A loaded config: plain data, the line of each key path, and the problems found so far."""

    data: Any
    lines: dict[KeyPath, int] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)

    def line_of(self, path: KeyPath) -> int | None:
        """The line of `path`, else of its nearest ancestor that is in the file."""
        for end in range(len(path), -1, -1):
            if path[:end] in self.lines:
                return self.lines[path[:end]]
        return None


def dotted(path: KeyPath) -> str:
    """A key path as written by a person: `store.elasticsearch.url`, `operations.paths[0]`."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


def interpolate(text: str, environ: Mapping[str, str] | None = None) -> tuple[str, list[str]]:
    """Replace ${VAR} and ${VAR:-default} in `text`; return the result and any problems found."""
    env = os.environ if environ is None else environ
    problems: list[str] = []

    def replace(match: re.Match[str]) -> str:
        token, name, has_default, default = match.group(0), match.group(1), match.group(2), match.group(3)
        if token == "$${":
            return "${"
        if name is None:
            problems.append(f"malformed '${{' in {text!r}; {_HOW}")
            return ""
        if has_default is not None and "${" in default:
            problems.append(f"nested '${{' inside the default of {token!r} is not supported; {_HOW}")
            return ""
        value = env.get(name)
        if has_default is not None:
            return value if value else default
        if value is None:
            problems.append(
                f"environment variable {name} is not set and has no default; "
                f"set it or write ${{{name}:-/some/default}}"
            )
            return ""
        return value

    return _TOKEN.sub(replace, text), problems


def interpolate_tree(data: Any, environ: Mapping[str, str] | None = None) -> tuple[Any, list[Problem]]:
    """Interpolate every string in nested dicts and lists (a config given as a dict, not a file)."""
    problems: list[Problem] = []

    def walk(value: Any, path: KeyPath) -> Any:
        if isinstance(value, str):
            result, found = interpolate(value, environ)
            problems.extend(Problem(path, message, covers_value=True) for message in found)
            return result
        if isinstance(value, Mapping):
            return {key: walk(item, (*path, str(key))) for key, item in value.items()}
        if isinstance(value, list | tuple):
            return [walk(item, (*path, index)) for index, item in enumerate(value)]
        return value

    return walk(data, ()), problems


def guard_text(text: str) -> Problem | None:
    """A problem when the text is too large to be a config or operation file (checked before parsing)."""
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_YAML_BYTES:
        return Problem((), f"the file is {size:,} bytes; YAML files are limited to {MAX_YAML_BYTES:,} bytes", 1)
    return None


def guard_tree(root: Node) -> Problem | None:
    """A problem when aliases make the node graph recursive, or expand it past MAX_YAML_VALUES values.

    Walks the graph as a loader would expand it, iteratively, and stops at the first problem.
    """
    count, on_path = 0, set()
    stack: list[tuple[Node, bool]] = [(root, False)]
    while stack:
        node, leaving = stack.pop()
        if leaving:
            on_path.discard(id(node))
            continue
        line = node.start_mark.line + 1
        if id(node) in on_path:
            message = "recursive alias: the value anchored here contains an alias to itself; remove that alias"
            return Problem((), message, line, node.start_mark.column + 1)
        count += 1
        if count > MAX_YAML_VALUES:
            message = f"aliases expand the file past {MAX_YAML_VALUES:,} values (a YAML bomb?); write values out"
            return Problem((), message, line, node.start_mark.column + 1)
        if isinstance(node, SequenceNode):
            children: list[Node] = list(node.value)
        elif isinstance(node, MappingNode):
            children = [part for pair in node.value for part in pair]
        else:
            continue
        on_path.add(id(node))
        stack.append((node, True))
        stack.extend((child, False) for child in reversed(children))
    return None


class LineLoader(yaml.SafeLoader):
    """A SafeLoader used only to compose nodes and construct plain scalars (int, bool, null...)."""


def compose(text: str) -> tuple[Node | None, Problem | None]:
    """The YAML node tree of a config or operation file (None for an empty file), or the one problem that
    stops reading it: oversize, a syntax error (with its line and column), an alias bomb, too deep."""
    too_big = guard_text(text)
    if too_big is not None:
        return None, too_big
    loader = LineLoader(text)
    try:
        root = loader.get_single_node()
        return root, guard_tree(root) if root is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        message = f"invalid YAML: {exc.problem}"
        if exc.context:
            start = exc.context_mark
            at = f" that starts at line {start.line + 1}, column {start.column + 1}" if start else ""
            message += f" ({exc.context}{at})"
        if mark is None:
            return None, Problem((), message)
        return None, Problem((), message, mark.line + 1, mark.column + 1)
    except yaml.YAMLError as exc:
        return None, Problem((), f"invalid YAML: {exc}")
    except RecursionError:
        return None, Problem((), TOO_DEEP, 1)
    finally:
        loader.dispose()


def load_document(text: str, environ: Mapping[str, str] | None = None) -> Document:
    """Parse YAML text into a Document; syntax errors, bombs and oversize files become one problem."""
    root, problem = compose(text)
    if problem is not None:
        return Document(None, problems=[problem])
    doc = Document(None)
    if root is not None:
        doc.lines[()] = root.start_mark.line + 1
        doc.data = _Walker(LineLoader(""), doc, environ).value(root, ())
    return doc


class _Walker:
    """Turns composed nodes into plain data, recording lines and interpolating strings."""

    def __init__(self, loader: LineLoader, doc: Document, environ: Mapping[str, str] | None) -> None:
        self.loader, self.doc, self.environ = loader, doc, environ

    def value(self, node: Node, path: KeyPath) -> Any:
        if isinstance(node, MappingNode):
            return self.mapping(node, path)
        if isinstance(node, SequenceNode):
            items = []
            for index, item in enumerate(node.value):
                self.doc.lines[(*path, index)] = item.start_mark.line + 1
                items.append(self.value(item, (*path, index)))
            return items
        return self.scalar(node, path)

    def mapping(self, node: MappingNode, path: KeyPath) -> dict[str, Any]:
        explicit = sum(1 for key, _ in node.value if key.tag != "tag:yaml.org,2002:merge")
        self.loader.flatten_mapping(node)  # `<<: *anchor` merge keys: merged pairs come first
        merged = len(node.value) - explicit
        result: dict[str, Any] = {}
        first_line: dict[str, int] = {}
        for position, (key_node, value_node) in enumerate(node.value):
            line = key_node.start_mark.line + 1
            if not isinstance(key_node, ScalarNode):
                message = "a key must be a plain name, not a list or mapping"
                self.doc.problems.append(Problem(path, message, line))
                continue
            key = str(key_node.value)
            if key in first_line and position >= merged and first_line[key] >= 0:
                self.doc.problems.append(
                    Problem((*path, key), f"duplicate key (first given on line {first_line[key]}); "
                            "give each key once", line)
                )
                continue
            first_line[key] = line if position >= merged else -1
            self.doc.lines[(*path, key)] = line
            result[key] = self.value(value_node, (*path, key))
        return result

    def scalar(self, node: Node, path: KeyPath) -> Any:
        line = self.doc.lines.get(path, node.start_mark.line + 1)
        if node.tag != _STR_TAG:
            try:
                return self.loader.construct_object(node, deep=True)
            except yaml.YAMLError as exc:
                problem = getattr(exc, "problem", None) or str(exc)
                message = f"cannot read this value: {problem}"
                self.doc.problems.append(Problem(path, message, line, covers_value=True))
                return None
        text = str(node.value)
        if "${" not in text:
            return text
        result, found = interpolate(text, self.environ)
        self.doc.problems.extend(Problem(path, message, line, covers_value=True) for message in found)
        if getattr(node, "style", None) is None and result in _NULL_FORMS:
            return None
        return result
