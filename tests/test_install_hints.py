"""Every `pip install` hint in the code names memscope's real distribution and an extra it declares."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from memscope.extras import DIST_NAME, EXTRAS, install_hint

ROOT = Path(__file__).resolve().parent.parent
HINT = re.compile(r"pip install '?([A-Za-z0-9_.-]+)(?:\[([A-Za-z0-9_,-]+)\])?")


def _project() -> dict[str, object]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


@pytest.mark.unit
def test_extras_named_in_errors_exist_in_pyproject() -> None:
    project = _project()
    assert project["name"] == DIST_NAME == "memscope-ai"
    assert set(EXTRAS) <= set(project["optional-dependencies"])  # type: ignore[call-overload]
    assert install_hint("es") == "run `pip install 'memscope-ai[es]'`"
    with pytest.raises(ValueError, match="unknown extra"):
        install_hint("local")


@pytest.mark.unit
def test_no_hint_installs_the_unrelated_memscope_package() -> None:
    extras = set(_project()["optional-dependencies"])  # type: ignore[call-overload]
    sources = [*ROOT.glob("memscope/**/*.py"), *ROOT.glob("workers/**/*.py"), ROOT / "README.md", ROOT / "Dockerfile"]
    found = 0
    for path in sources:
        for match in HINT.finditer(path.read_text()):
            name, wanted = match.group(1), match.group(2)
            assert name != "memscope", f"{path.relative_to(ROOT)}: {match.group(0)} installs PyPI's unrelated memscope"
            if name == DIST_NAME and wanted:
                found += 1
                assert set(wanted.split(",")) <= extras, f"{path.relative_to(ROOT)}: {match.group(0)}"
    assert found > 0, "the scan found no hint at all: the pattern is broken"


@pytest.mark.unit
@pytest.mark.parametrize(
    ("blocked", "code", "extra"),
    [
        ("openai", "from memscope.llm.factory import make_chat as m, LLMSettings as S; m(S(backend='openai',"
                   " api_key='k'))",
         "openai"),
        ("dashscope", "from memscope.llm.factory import make_chat as m, LLMSettings as S;"
                      " m(S(backend='dashscope', api_key='k'))",
         "dashscope"),
        ("elasticsearch", "from memscope.stores.es_errors import import_es; import_es()", "es"),
        ("celery", "import memscope.jobs.celery_dispatch", "celery"),
        ("redis", "import memscope.jobs.celery_dispatch", "celery"),
    ],
)  # fmt: skip
def test_a_missing_extra_names_its_install_command(blocked: str, code: str, extra: str) -> None:
    """Each SDK is blocked in a fresh interpreter (as if not installed); the error says what to run."""
    script = f"import sys; sys.modules[{blocked!r}] = None\n{code}"
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=False)
    assert done.returncode != 0
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("memscope.errors.") and f"pip install 'memscope-ai[{extra}]'" in last, last
