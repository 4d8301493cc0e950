"""Package-level promises: a light import, the public names, every LLM worker's prompts in en and zh."""

from __future__ import annotations

import subprocess
import sys

import pytest

import memscope
from memscope.engine import OperationCatalog, registered_workers
from memscope.engine.llm_worker import load_prompts

pytestmark = pytest.mark.unit


def test_import_is_light():
    code = (
        "import sys, memscope; print(','.join(m for m in ('numpy', 'torch', 'openai', 'celery') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == ""


def test_public_names_resolve():
    for name in memscope.__all__:
        assert getattr(memscope, name) is not None


def test_at_least_twenty_workers_and_every_llm_worker_speaks_en_and_zh():
    workers = {n: c for n, c in registered_workers().items() if c.__module__.startswith("memscope.workers.")}
    assert len(workers) >= 20
    llm_workers = [name for name, cls in workers.items() if cls.uses_llm]
    assert len(llm_workers) >= 6
    for name in llm_workers:
        prompts = load_prompts("memscope.workers", name)
        for language in ("en", "zh"):
            assert prompts[language]["system"].strip() and prompts[language]["user"].strip(), (name, language)


def test_builtin_operations_reference_only_registered_workers():
    catalog = OperationCatalog()
    for name in catalog.names():
        for step in catalog.get(name).workers():
            assert step.worker in registered_workers()


@pytest.mark.integration
@pytest.mark.slow
def test_a_wheel_builds_without_setuptools_warnings_and_carries_every_package(tmp_path):
    """`pip install` of the project prints no "Package would be ignored" (a folder missing from `packages`)."""
    import shutil
    import zipfile
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    source = tmp_path / "src"  # a copy: setuptools' build/ folder (stale files and all) stays out of the checkout
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(repo / name, source / name)
    for folder in ("memscope", "workers", "operations"):
        shutil.copytree(repo / folder, source / folder, ignore=shutil.ignore_patterns("__pycache__"))
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-v", "-w", str(tmp_path), str(source)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    output = done.stdout + done.stderr
    assert "would be ignored" not in output.lower() and "is absent from the `packages`" not in output
    [wheel] = tmp_path.glob("memscope_ai-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {
        "memscope/__main__.py", "memscope/cli/__init__.py", "memscope/cli/__main__.py",
        "memscope/operations/retrieve_memory.yaml", "memscope/workers/prompts/update_insights.yaml",
    }  # fmt: skip
    assert expected <= names
    for folder in (repo / "memscope").rglob("*.py"):
        assert f"memscope/{folder.relative_to(repo / 'memscope')}" in names, folder
