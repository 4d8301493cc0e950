"""The install command for each optional part: memscope is `memscope-ai` on PyPI (`memscope` is another project)."""

from __future__ import annotations

__all__ = ["DIST_NAME", "EXTRAS", "install_hint"]

DIST_NAME = "memscope-ai"

# extra -> what it brings (pyproject.toml's [project.optional-dependencies] carries the same names).
EXTRAS = {
    "openai": "the openai chat and embedding backends (any OpenAI-compatible server)",
    "dashscope": "the dashscope (Qwen) chat, embedding and rerank backends",
    "es": "the Elasticsearch store",
    "celery": "Celery workers over Redis (jobs.backend: celery)",
    "server": "`memscope serve` (REST API, memory browser) and `memscope mcp` (FastAPI, uvicorn, Jinja2, MCP SDK)",
    "record": "the conversation record on SQL databases (SQLAlchemy, Alembic and their drivers)",
    "sentence-transformers": "sentence-transformers models other than the built-in all-MiniLM-L6-v2 (pulls torch)",
}


def install_hint(extra: str | None = None) -> str:
    """The command that installs `extra` (or memscope itself), e.g. run `pip install 'memscope-ai[es]'`."""
    if extra is None:
        return f"run `pip install {DIST_NAME}`"
    if extra not in EXTRAS:
        raise ValueError(f"unknown extra {extra!r}; known: {', '.join(EXTRAS)}")
    return f"run `pip install '{DIST_NAME}[{extra}]'`"
