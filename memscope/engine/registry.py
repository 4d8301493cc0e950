"""Explicit worker registration: `@worker("name")`; a duplicate name fails at import."""

from __future__ import annotations

import importlib
import traceback
from collections.abc import Callable, Iterable

from memscope.engine.worker import Worker
from memscope.errors import ConfigError

__all__ = ["get_worker", "load_builtin_workers", "load_worker_modules", "registered_workers", "worker"]

_REGISTRY: dict[str, type[Worker]] = {}
BUILTIN_MODULE = "memscope.workers"


def worker(name: str) -> Callable[[type[Worker]], type[Worker]]:
    """Register a Worker subclass under `name`."""

    def register(cls: type[Worker]) -> type[Worker]:
        if not (isinstance(cls, type) and issubclass(cls, Worker)):
            raise TypeError(f"@worker({name!r}) must decorate a Worker subclass, not {cls!r}")
        existing = _REGISTRY.get(name)
        same = existing is not None and (existing.__module__, existing.__qualname__) == (
            cls.__module__,
            cls.__qualname__,
        )  # a module imported again re-registers its own class: allowed
        if existing is not None and not same:
            raise ValueError(
                f"worker name {name!r} is already registered by {existing.__module__}.{existing.__qualname__};"
                f" choose another name for {cls.__module__}.{cls.__qualname__}"
            )
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return register


def registered_workers() -> dict[str, type[Worker]]:
    """All registered workers by name (built-ins loaded first)."""
    load_builtin_workers()
    return dict(sorted(_REGISTRY.items()))


def get_worker(name: str) -> type[Worker] | None:
    """The worker class registered under `name`, or None."""
    load_builtin_workers()
    return _REGISTRY.get(name)


def load_builtin_workers() -> None:
    """Import the built-in worker package, which registers every built-in worker."""
    importlib.import_module(BUILTIN_MODULE)


def load_worker_modules(modules: Iterable[str]) -> None:
    """Import the user's worker modules named in the config; every failure is one problem, none a traceback."""
    problems: list[str] = []
    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            if exc.name and (module == exc.name or module.startswith(f"{exc.name}.")):
                problems.append(f"workers.modules: cannot import {module!r}: {exc}. Is it on PYTHONPATH?")
            else:
                problems.append(_raised(module, exc))
        except Exception as exc:  # the module's own code failed: say where, as FILE:LINE
            problems.append(_raised(module, exc))
    if problems:
        raise ConfigError(problems)


def _raised(module: str, exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    where = f"{frames[-1].filename}:{frames[-1].lineno}: " if frames else ""
    if isinstance(exc, SyntaxError) and exc.filename:
        where = f"{exc.filename}:{exc.lineno}: "
    return f"{where}workers.modules: importing {module!r} raised {type(exc).__name__}: {exc}"
