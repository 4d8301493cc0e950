"""memscope: long-term memory for LLM chatbots.

The API is imported lazily, so `import memscope` stays fast (no numpy, SDKs or models loaded).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = [
    "AsyncMemoryScope",
    "JobRecord",
    "MemoryEvent",
    "MemoryNode",
    "MemoryScope",
    "Message",
    "Profile",
    "RetrievalResult",
    "RetrievedItem",
    "RunReport",
    "Session",
    "__version__",
    "load_settings",
]

_LAZY = {
    "MemoryScope": "memscope.api",
    "AsyncMemoryScope": "memscope.api",
    "RetrievalResult": "memscope.api",
    "RetrievedItem": "memscope.retrieval",
    "Message": "memscope.models",
    "MemoryNode": "memscope.models",
    "MemoryEvent": "memscope.models",
    "JobRecord": "memscope.jobs.base",
    "RunReport": "memscope.engine.report",
    "Profile": "memscope.profile",
    "Session": "memscope.sessions",
    "load_settings": "memscope.config",
}

if TYPE_CHECKING:
    from memscope.api import AsyncMemoryScope, MemoryScope, RetrievalResult
    from memscope.config import load_settings
    from memscope.engine.report import RunReport
    from memscope.jobs.base import JobRecord
    from memscope.models import MemoryEvent, MemoryNode, Message
    from memscope.profile import Profile
    from memscope.retrieval import RetrievedItem
    from memscope.sessions import Session


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'memscope' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return sorted(__all__)
