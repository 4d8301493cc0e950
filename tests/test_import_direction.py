"""One direction of dependencies: the library never imports its plug-in folder, and workers never import workers.

`workers/` installs as `memscope.workers`, so an upward import would hide in the import graph; shared
vocabulary lives in library modules (memscope.retrieval, memscope.observations, memscope.reflection...).
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """Every (line, module) a file imports, including imports inside functions."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
            found.extend((node.lineno, f"{node.module}.{alias.name}") for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level:
            found.append((node.lineno, "." * node.level + (node.module or "")))
    return found


def offending(folder: str, banned: str) -> list[str]:
    """`file:line module` for every import of `banned` (or a relative import) under `folder`."""
    bad = []
    for path in sorted((ROOT / folder).rglob("*.py")):
        for line, module in imported_modules(path):
            if module.startswith(".") or module == banned or module.startswith(banned + "."):
                bad.append(f"{path.relative_to(ROOT)}:{line} {module}")
    return bad


def test_the_library_never_imports_the_builtin_workers() -> None:
    # registry.py names the package as a string to load it as plug-ins, which is not an import edge
    assert offending("memscope", "memscope.workers") == []


def test_no_worker_imports_another_worker() -> None:
    assert offending("workers", "memscope.workers") == []


def test_the_check_sees_an_upward_import(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text("def f():\n    from memscope.workers.rerank import Rerank\n", encoding="utf-8")
    assert (2, "memscope.workers.rerank") in imported_modules(sample)
