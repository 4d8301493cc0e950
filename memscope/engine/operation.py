"""Operation specs and their loader: YAML in, validated steps out, every error with file:line:col."""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, StringConstraints, field_validator
from pydantic import ValidationError as PydanticValidationError

from memscope._yaml_lines import KeyPath, compose, dotted
from memscope.config_errors import error_message
from memscope.engine.registry import registered_workers
from memscope.engine.worker import Worker, WorkerParams
from memscope.errors import OperationLoadError

__all__ = ["OperationFile", "OperationSpec", "ParallelGroup", "Step", "load_operation", "parse_operation"]


@dataclass
class Step:
    """One worker with its validated params, and where it was declared."""

    worker: str
    raw_params: dict[str, Any]
    line: int
    col: int
    worker_cls: type[Worker] | None = None
    params: WorkerParams | None = None


@dataclass
class ParallelGroup:
    """Steps run concurrently; no two may write the same field."""

    branches: list[Step]
    line: int
    col: int


@dataclass
class OperationSpec:
    """A loaded, validated operation."""

    name: str
    description: str
    mode: str
    inputs: dict[str, Any]  # name -> default; REQUIRED marks an input without a default
    steps: list[Step | ParallelGroup]
    source: str
    builtin: bool = False
    notes: list[str] = field(default_factory=list)
    outputs: tuple[str, ...] = ()  # the fields a run returns to its caller (RunResult.outputs)
    outputs_line: int = 1  # where `outputs:` is declared (line 1 when it is absent)

    def is_required(self, name: str) -> bool:
        """True when input `name` has no default: a run must give it."""
        return self.inputs.get(name) is REQUIRED

    def workers(self) -> list[Step]:
        """Every step, parallel branches flattened, in order."""
        out: list[Step] = []
        for item in self.steps:
            out.extend(item.branches if isinstance(item, ParallelGroup) else [item])
        return out


def _input(item: Any) -> str | dict[str, Any]:
    """An input: a name (required), or a one-key mapping {name: default} (optional)."""
    if isinstance(item, str) and item.strip():
        return item.strip()
    if isinstance(item, dict) and len(item) == 1 and isinstance(next(iter(item)), str):
        return item
    raise ValueError(f"an input is a name, or a one-key mapping {{name: default}}; got {item!r}")


Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]


class OperationFile(BaseModel):
    """The shape of an operation file; its steps' workers and params are checked against the registry after."""

    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True)

    name: Name
    description: str = ""
    mode: Literal["inline", "queued"] = "inline"
    inputs: list[Annotated[Any, AfterValidator(_input)]] = []  # name, or {name: default}
    outputs: list[Name] = []
    steps: list[Any]  # `worker: {params}` or `parallel: [steps]`, checked against the registry after

    @field_validator("steps")
    @classmethod
    def _some_steps(cls, value: list[Any]) -> list[Any]:
        if not value:
            raise ValueError("steps must be a non-empty list of `- worker_name: {params}` items")
        return value

    @field_validator("outputs")
    @classmethod
    def _distinct(cls, value: list[str]) -> list[str]:
        twice = sorted({name for name in value if value.count(name) > 1})
        if twice:
            raise ValueError(f"outputs {twice} are listed twice; list each once")
        return value


class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED: Any = _Required()


def _where(source: str, node: yaml.Node) -> str:
    return f"{source}:{node.start_mark.line + 1}:{node.start_mark.column + 1}"


def _mapping(node: yaml.Node) -> list[tuple[yaml.ScalarNode, yaml.Node]] | None:
    return list(node.value) if isinstance(node, yaml.MappingNode) else None


def load_operation(path: str | Path, *, builtin: bool = False) -> OperationSpec:
    """Read and validate one operation file; raise OperationLoadError listing every problem."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise OperationLoadError([f"{path}:1:1: cannot read operation file: {exc}"]) from exc
    except UnicodeDecodeError as exc:
        line = exc.object[: exc.start].count(b"\n") + 1
        problem = f"{path}:{line}: the file is not UTF-8 text ({exc.reason}); save it as UTF-8"
        raise OperationLoadError([problem]) from None
    return parse_operation(text, str(path), builtin=builtin)


def parse_operation(text: str, source: str = "<string>", *, builtin: bool = False) -> OperationSpec:
    """Validate operation YAML text; `source` names it in errors."""
    root, unreadable = compose(text)  # the loader config files use too
    if unreadable is not None:
        raise OperationLoadError([unreadable.format(source)])
    if root is None:
        raise OperationLoadError(
            [f"{source}:1:1: the file is empty; an operation needs name, mode and steps"]
        )
    return _Validator(source, builtin).operation(root)


class _Validator:
    """Walks the YAML node tree once, collecting every problem before raising."""

    def __init__(self, source: str, builtin: bool) -> None:
        self.source = source
        self.builtin = builtin
        self.problems: list[str] = []
        self.registry = registered_workers()

    def problem(self, node: yaml.Node, message: str) -> None:
        self.problems.append(f"{_where(self.source, node)}: {message}")

    def operation(self, root: yaml.Node) -> OperationSpec:
        items = _mapping(root)
        if items is None:
            self.problem(root, "an operation must be a mapping with keys: " + ", ".join(OperationFile.model_fields))
            raise OperationLoadError(self.problems)
        fields: dict[str, yaml.Node] = {key.value: value for key, value in items}
        shape = self.shape(root)
        if shape is None:
            raise OperationLoadError(self.problems)
        steps = self.steps(fields["steps"], root)
        inputs: dict[str, Any] = {}
        for item in shape.inputs:
            inputs.update(item if isinstance(item, dict) else {item: REQUIRED})
        out_node = fields.get("outputs")
        named = dict(zip(shape.outputs, out_node.value, strict=True)) if isinstance(out_node, yaml.SequenceNode) else {}
        if not self.problems:  # a dropped step would make the dataflow check report noise
            written = self.check_dataflow(set(inputs), steps)
            self.check_outputs(named, written)
        if self.problems:
            raise OperationLoadError(self.problems)
        return OperationSpec(
            shape.name,
            shape.description,
            shape.mode,
            inputs,
            steps,
            self.source,
            self.builtin,
            outputs=tuple(shape.outputs),
            outputs_line=out_node.start_mark.line + 1 if out_node is not None else 1,
        )

    def shape(self, root: yaml.Node) -> OperationFile | None:
        """The file validated against OperationFile; each error at its key's (or value's) line and column."""
        try:
            return OperationFile.model_validate(yaml.safe_load(yaml.serialize(root)))
        except PydanticValidationError as exc:
            for error in exc.errors(include_url=False):
                loc = tuple(error["loc"])
                node = _node_at(root, loc, key=error["type"] in ("extra_forbidden", "missing"))
                where = f"{dotted(loc)}: " if loc else ""
                self.problem(node, where + error_message(error, OperationFile))
            return None

    def check_outputs(self, outputs: dict[str, yaml.Node], written: dict[str, Step]) -> None:
        """Every declared output is written by some step."""
        for name, node in outputs.items():
            if name not in written:
                self.problem(
                    node,
                    f"output {name!r} is written by no step{_suggest(name, written)}; "
                    f"the steps write: {', '.join(sorted(written)) or 'nothing'}",
                )

    def steps(self, node: yaml.Node | None, root: yaml.Node) -> list[Step | ParallelGroup]:
        if node is None or not isinstance(node, yaml.SequenceNode) or not node.value:
            self.problem(node or root, "steps must be a non-empty list of `- worker_name: {params}` items")
            return []
        out: list[Step | ParallelGroup] = []
        for item in node.value:
            items = _mapping(item)
            if items is None or len(items) != 1:
                self.problem(item, "a step is one mapping `worker_name: {params}` or `parallel: [steps]`")
                continue
            key, value = items[0]
            if key.value == "parallel":
                out.append(self.parallel(key, value))
            else:
                step = self.step(key, value)
                if step:
                    out.append(step)
        return out

    def parallel(self, key: yaml.ScalarNode, node: yaml.Node) -> ParallelGroup:
        branches: list[Step] = []
        if not isinstance(node, yaml.SequenceNode) or len(node.value) < 2:
            self.problem(key, "parallel needs a list of at least two steps")
            return ParallelGroup(branches, key.start_mark.line + 1, key.start_mark.column + 1)
        for item in node.value:
            items = _mapping(item)
            if items is None or len(items) != 1 or items[0][0].value == "parallel":
                self.problem(item, "a parallel branch is one mapping `worker_name: {params}` (no nesting)")
                continue
            step = self.step(*items[0])
            if step:
                branches.append(step)
        return ParallelGroup(branches, key.start_mark.line + 1, key.start_mark.column + 1)

    def step(self, key: yaml.ScalarNode, value: yaml.Node) -> Step | None:
        name = str(key.value)
        line, col = key.start_mark.line + 1, key.start_mark.column + 1
        cls = self.registry.get(name)
        if cls is None:
            known = ", ".join(self.registry) or "(none registered)"
            self.problem(
                key, f"unknown worker {name!r}{_suggest(name, self.registry)}; registered workers: {known}"
            )
            return None
        raw: Any = yaml.safe_load(yaml.serialize(value)) if not _is_null(value) else {}
        if not isinstance(raw, dict):
            self.problem(value, f"step {name!r}: params must be a mapping, got {type(raw).__name__}")
            return None
        step = Step(name, raw, line, col, cls)
        try:
            step.params = cls.Params(**raw)
        except PydanticValidationError as exc:
            pairs = _mapping(value) or []
            key_nodes, value_nodes = {k.value: k for k, _ in pairs}, {k.value: v for k, v in pairs}
            for err in exc.errors():
                param = str(err["loc"][0]) if err["loc"] else ""
                unknown = err["type"] == "extra_forbidden"
                where = (key_nodes if unknown else value_nodes).get(param, value)
                if unknown:
                    allowed = ", ".join(cls.Params.model_fields) or "(none)"
                    msg = f"unknown param {param!r}{_suggest(param, cls.Params.model_fields)}; allowed: {allowed}"
                else:
                    msg = f"param {'.'.join(map(str, err['loc']))}: {err['msg']} (got {err.get('input')!r})"
                self.problems.append(f"{_where(self.source, where)}: step {name!r} (worker {name!r}): {msg}")
            return None
        return step

    def check_dataflow(self, available: set[str], steps: list[Step | ParallelGroup]) -> dict[str, Step]:
        """A field must be written (or be an input) before a step reads it; an optional read may find
        its field unset, but never one that only a later step (or a sibling branch) writes.

        Returns every written field with the first step that writes it."""
        available = set(available)
        written: dict[str, Step] = {}
        later = self._writers(steps)
        for position, item in enumerate(steps):
            branches = item.branches if isinstance(item, ParallelGroup) else [item]
            writers: dict[str, Step] = {}
            for step in branches:
                assert step.worker_cls is not None and step.params is not None
                for name in step.worker_cls.declared_reads(step.params):
                    if name not in available:
                        self.problems.append(
                            f"{self._at(step)} reads {name!r} before any step writes it; "
                            f"available here: {sorted(available) or 'nothing'}"
                        )
                for name in step.worker_cls.declared_optional_reads(step.params):
                    writer = next((w for p, w in later.get(name, []) if p >= position and w is not step), None)
                    if name not in available and writer is not None:
                        self.problems.append(
                            f"{self._at(step)} optionally reads {name!r}, which only step {writer.worker!r} "
                            f"(line {writer.line}) writes, later or alongside; move {step.worker!r} after it"
                        )
                if isinstance(item, ParallelGroup):
                    for name in step.worker_cls.declared_writes(step.params):
                        if name in writers:
                            self.problems.append(
                                f"{self.source}:{step.line}:{step.col}: parallel branches {writers[name].worker!r} and "
                                f"{step.worker!r} both write {name!r}; a field may have one writer per group"
                            )
                        writers[name] = step
            for step in branches:
                assert step.worker_cls is not None and step.params is not None
                for name in step.worker_cls.declared_writes(step.params):
                    available.add(name)
                    written.setdefault(name, step)
        return written

    def _at(self, step: Step) -> str:
        return f"{self.source}:{step.line}:{step.col}: step {step.worker!r} (worker {step.worker!r})"

    @staticmethod
    def _writers(steps: list[Step | ParallelGroup]) -> dict[str, list[tuple[int, Step]]]:
        """Field -> (position in `steps`, step) for every step that writes it."""
        out: dict[str, list[tuple[int, Step]]] = {}
        for position, item in enumerate(steps):
            for step in item.branches if isinstance(item, ParallelGroup) else [item]:
                assert step.worker_cls is not None and step.params is not None
                for name in step.worker_cls.declared_writes(step.params):
                    out.setdefault(name, []).append((position, step))
        return out


def _node_at(root: yaml.Node, loc: KeyPath, *, key: bool = False) -> yaml.Node:
    """The node a pydantic error location names (the key node with `key`), else its nearest ancestor."""
    node = root
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            pair = next(((k, v) for k, v in node.value if k.value == part), None)
            if pair is None:
                return node
            if key and part == loc[-1]:
                return pair[0]
            node = pair[1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
        else:
            return node
    return node


def _is_null(node: yaml.Node) -> bool:
    return isinstance(node, yaml.ScalarNode) and node.tag.endswith(":null")


def _suggest(name: str, options: Any) -> str:
    close = difflib.get_close_matches(name, list(options), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""
