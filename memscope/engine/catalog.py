"""The operation catalog: built-in operations plus the user's folders, the user's winning on a name clash."""

from __future__ import annotations

import importlib.resources
import logging
from collections.abc import Iterable, Mapping
from pathlib import Path

from memscope.engine.operation import OperationSpec, load_operation
from memscope.engine.registry import load_worker_modules
from memscope.errors import OperationLoadError

__all__ = ["API_OUTPUTS", "OperationCatalog", "builtin_operation_files", "output_problems"]

log = logging.getLogger("memscope.engine")

# The outputs memscope's own API (MemoryScope) and jobs layer read from the operations they run: an
# operation of one of these names, built-in or a user's override, must declare them.
API_OUTPUTS: dict[str, tuple[str, ...]] = {
    "retrieve_memory": ("results", "pending_messages", "context_text", "query_time"),  # and beliefs, when declared
    "general_context": ("profile", "beliefs", "segments", "pending_messages", "context_text"),
    "get_profile": ("profile",),
    "get_beliefs": ("beliefs",),
    "consolidate_memory": ("consolidated_ids", "more_pending"),  # and hot_segments, when declared
    "reflect_and_reconsolidate": (),
    "list_memory": ("memories",),
    "add_memory": ("stored_memories",),
    "update_memory": ("stored_memories",),
    "delete_memory": ("stored_memories",),
}


def builtin_operation_files() -> list[Path]:
    """The YAML files shipped in `memscope.operations`."""
    root = importlib.resources.files("memscope.operations")
    return sorted(Path(str(p)) for p in root.iterdir() if p.name.endswith((".yaml", ".yml")))


def output_problems(spec: OperationSpec, required: Mapping[str, tuple[str, ...]] = API_OUTPUTS) -> list[str]:
    """The outputs memscope reads from an operation of this name that it does not declare, as FILE:LINE errors."""
    needed = required.get(spec.name, ())
    missing = [o for o in needed if o not in spec.outputs]
    if not missing:
        return []
    return [
        f"{spec.source}:{spec.outputs_line}:1: operation {spec.name!r} must declare outputs {missing}: "
        f"memscope's API reads {list(needed)} from it; list them under `outputs:` "
        f"(declared: {list(spec.outputs) or 'none'}) and keep a step that writes each"
    ]


class OperationCatalog:
    """Loads and validates every operation once; look them up by name."""

    def __init__(
        self,
        paths: Iterable[str | Path] = (),
        worker_modules: Iterable[str] = (),
        required_outputs: Mapping[str, tuple[str, ...]] = API_OUTPUTS,
    ) -> None:
        load_worker_modules(worker_modules)
        self.operations: dict[str, OperationSpec] = {}
        problems: list[str] = []
        for file in builtin_operation_files():
            self._add(file, builtin=True, problems=problems)
        for folder in paths:
            folder = Path(folder).expanduser()
            if not folder.is_dir():
                problems.append(f"{folder}:1:1: operations.paths names a folder that does not exist")
                continue
            try:
                files = sorted([*folder.glob("*.yaml"), *folder.glob("*.yml")])
            except OSError as exc:
                problems.append(f"{folder}:1:1: cannot read the operations folder: {exc}")
                continue
            for file in files:
                self._add(file, builtin=False, problems=problems)
        for spec in self.operations.values():
            problems.extend(output_problems(spec, required_outputs))
        if problems:
            raise OperationLoadError(problems)

    def _add(self, file: Path, *, builtin: bool, problems: list[str]) -> None:
        try:
            spec = load_operation(file, builtin=builtin)
        except OperationLoadError as exc:
            problems.extend(exc.problems)
            return
        previous = self.operations.get(spec.name)
        if previous is not None:
            if previous.builtin and not builtin:
                log.info("operation %r from %s overrides the built-in %s", spec.name, file, previous.source)
                spec.notes.append(f"overrides built-in {previous.source}")
            else:
                problems.append(
                    f"{file}:1:1: operation {spec.name!r} is already defined in {previous.source}"
                )
                return
        self.operations[spec.name] = spec

    def get(self, name: str) -> OperationSpec:
        """The operation called `name`; a KeyError lists the known ones."""
        try:
            return self.operations[name]
        except KeyError:
            raise KeyError(
                f"unknown operation {name!r}; known: {', '.join(sorted(self.operations))}"
            ) from None

    def __contains__(self, name: object) -> bool:
        return name in self.operations

    def names(self) -> list[str]:
        """Operation names, sorted."""
        return sorted(self.operations)
