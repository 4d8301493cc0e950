"""The runtime: settings turned into a store, models, the operation catalog and a runner."""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

from memscope.access import AccessRecorder
from memscope.config import Settings, load_settings
from memscope.engine import OperationCatalog, OperationRunner, Resources, RunResult
from memscope.errors import OperationRunError, ValidationError
from memscope.llm.base import ChatModel, Embedder, Reranker, UsageMeter
from memscope.redact import remember
from memscope.stores.base import Fence, Store

__all__ = ["Runtime", "open_store", "store_label"]

log = logging.getLogger("memscope")


def open_store(settings: Settings) -> Store:
    """The store the settings name (sqlite file or Elasticsearch), opened lazily by the backend."""
    if settings.store.backend == "elasticsearch":
        from memscope.stores.elasticsearch import ElasticsearchStore

        es = settings.store.elasticsearch
        api_key = es.api_key.get_secret_value() if es.api_key else None
        password = es.password.get_secret_value() if es.password else None
        remember(api_key, password, es.url)  # scrubbed from any error text that echoes them
        return ElasticsearchStore(
            es.url,
            index_prefix=es.index_prefix,
            api_key=api_key,
            username=es.username,
            password=password,
            verify_certs=es.verify_certs,
            request_timeout_s=float(es.request_timeout_s),
            refresh=es.refresh,
        )
    from memscope.stores.sqlite import SqliteStore

    path = Path(settings.store.path).expanduser()
    return SqliteStore(path)


def store_label(settings: Settings) -> str:
    """The configured store, for messages: `sqlite /abs/path.db` or `elasticsearch <masked url> (prefix p)`."""
    if settings.store.backend == "elasticsearch":
        from memscope.config import settings_to_dict

        es = settings_to_dict(settings)["store"]["elasticsearch"]  # the URL's password masked
        return f"elasticsearch {es['url']} (index prefix {es['index_prefix']})"
    return f"sqlite {Path(settings.store.path).expanduser().resolve()}"


class Runtime:
    """Everything an operation run needs, built once from settings and shared by API and jobs."""

    def __init__(
        self,
        settings: Settings | str | Path | dict[str, Any] | None = None,
        *,
        store: Store | None = None,
        embedder: Embedder | None = None,
        llm: ChatModel | str | None = "from-settings",
        reranker: Reranker | None = None,
        clock: Any = None,
    ) -> None:
        from memscope.llm.factory import make_chat, make_embedder, make_reranker

        self.settings = settings if isinstance(settings, Settings) else load_settings(settings)
        s = self.settings
        self.meter = UsageMeter()
        self.store = store or open_store(s)
        self.embedder = embedder or make_embedder(s.embedding)
        self.llm: ChatModel | None = (
            make_chat(s.llm, meter=self.meter) if isinstance(llm, str) else llm
        )
        if self.llm is not None and getattr(self.llm, "meter", None) is None:
            self.llm.meter = self.meter  # type: ignore[union-attr]
        self.reranker = reranker or make_reranker(s.rerank)
        self.store.check_embedding_model(self.embedder.name, self.embedder.dim)
        self.catalog = OperationCatalog(paths=s.operations.paths, worker_modules=s.workers.modules)
        resources = Resources(
            store=self.store,
            embedder=self.embedder,
            llm=self.llm,  # type: ignore[arg-type]
            reranker=self.reranker,
            settings=s,
            meter=self.meter,
            language=s.language,
            timezone=s.timezone,
            access=AccessRecorder(self.store),
        )
        if clock is not None:
            resources.clock = clock
        self.resources = resources
        self.runner = OperationRunner(resources, step_timeout_s=float(s.operations.inline_step_timeout_s))
        self._closed = False
        self._lock = threading.Lock()

    @property
    def has_llm(self) -> bool:
        """True when an LLM is configured."""
        return self.llm is not None

    def run(self, operation: str, *, fence: Fence | None = None, **inputs: Any) -> RunResult:
        """Run a catalog operation with keyword inputs (None-valued optional inputs use defaults);
        a job passes its `fence` so that its writes stop once it lost the user's lease."""
        spec = self.catalog.get(operation)
        try:
            return self.runner.run(spec, {k: v for k, v in inputs.items() if v is not None}, fence=fence)
        except OperationRunError as exc:
            if isinstance(exc.__cause__, ValidationError):  # the caller's input: say what to fix, plainly
                raise ValidationError(str(exc.__cause__)) from exc
            raise

    def describe(self) -> dict[str, str]:
        """The chosen backends, for logs and the CLI."""
        return {
            "store": self.settings.store.backend,
            "jobs": self.settings.jobs.backend,
            "embedding": self.embedder.name,
            "llm": getattr(self.llm, "name", None) or "none",
        }

    def close(self) -> None:
        """Stop the runner's threads, write the queued access counts, then close the store."""
        with self._lock:
            if not self._closed:
                self._closed = True
                self.runner.close()
                if self.resources.access is not None:
                    self.resources.access.close()
                self.store.close()
