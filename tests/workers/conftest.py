"""Fixtures for worker tests: a shared local embedder and `make_resources`, real parts wired together.

`make_resources(tmp_path, model_server=None, clock=None, *, llm=True, embedder="local", store=None,
**overrides) -> Resources` builds what an OperationRunner needs:

- store: a real `SqliteStore(tmp_path / "m.db")` (or the `store` you pass, e.g. to reopen the same file
  with other models); stores it opened are closed after the test.
- llm: a real `OpenAIChat` pointed at the scripted server (`model_server.openai_base_url`), fast
  retries; `llm=False` or no server gives `llm=None` (the "no LLM configured" state).
- embedder: "local" (the session's MiniLM, real semantics), "server" (the scripted server's
  deterministic hash embeddings, dim 64, when semantics do not matter), None, or any Embedder.
- meter: one `UsageMeter` shared by the runner and the chat model, so RunReports count calls.
- clock: a fixed aware datetime, or a zero-argument callable; default 2023-06-01 12:00 UTC.
- overrides: any other `Resources` field (language, timezone, reranker, settings).

Usage: `res = make_resources(tmp_path, model_server, clock=datetime(2023, 5, 10, tzinfo=UTC))`,
then `OperationRunner(res).run(OperationCatalog().get("consolidate_memory"), {"user_id": "u1"})`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from memscope.engine import Resources
from memscope.llm.base import Embedder, UsageMeter
from memscope.llm.local_embedding import LocalEmbedder
from memscope.llm.openai_backend import OpenAIChat, OpenAIEmbedder
from memscope.stores.sqlite import SqliteStore

DEFAULT_NOW = datetime(2023, 6, 1, 12, 0, tzinfo=UTC)

MakeResources = Callable[..., Resources]


@pytest.fixture(scope="session")
def local_embedder() -> LocalEmbedder:
    """One real all-MiniLM-L6-v2 embedder for the whole session (loaded on first use)."""
    embedder = LocalEmbedder()
    embedder.warm_up()
    return embedder


@pytest.fixture
def make_resources(request: pytest.FixtureRequest) -> Iterator[MakeResources]:
    """A factory of Resources over real parts; see the module docstring for its arguments."""
    opened: list[SqliteStore] = []

    def make(
        tmp_path: Path,
        model_server: Any = None,
        clock: datetime | Callable[[], datetime] | None = None,
        *,
        llm: bool = True,
        embedder: str | Embedder | None = "local",
        store: Any = None,
        **overrides: Any,
    ) -> Resources:
        if store is None:
            store = SqliteStore(tmp_path / "m.db")
            opened.append(store)
        meter = UsageMeter()
        chat = None
        if llm and model_server is not None:
            chat = OpenAIChat(
                model="test-model",
                api_key="test",
                base_url=model_server.openai_base_url,
                meter=meter,
                timeout_s=10.0,
                max_retries=2,
                retry_base_delay_s=0.01,
                retry_max_delay_s=0.05,
            )
        if embedder == "local":
            embedder = request.getfixturevalue("local_embedder")
        elif embedder == "server":
            assert model_server is not None, "embedder='server' needs the model_server"
            embedder = OpenAIEmbedder(api_key="test", base_url=model_server.openai_base_url, dim=model_server.dim)
        if isinstance(clock, datetime):
            fixed = clock
            clock = lambda: fixed  # noqa: E731
        return Resources(
            store=store, llm=chat, embedder=embedder, meter=meter, clock=clock or (lambda: DEFAULT_NOW), **overrides
        )

    yield make
    for store in opened:
        store.close()
