"""memscope's exceptions; a dependency's errors are mapped to these at one boundary.

    MemscopeError
    ├── ConfigError            a config file or value is wrong (carries file:line:key)
    ├── ValidationError        a caller passed bad input (user id, message, parameter)
    ├── OperationLoadError     an operation YAML is invalid (carries file:line:col, step, worker)
    ├── OperationRunError      a step failed at run time (names operation, step, worker)
    ├── StoreError             the store failed
    │   ├── StoreUnavailable   the backend cannot be reached (transient)
    │   ├── EmbeddingMismatch  the store was filled by another embedding model
    │   └── LeaseLost          a fenced write came from a job that lost its user's lease
    ├── ModelError             a model backend failed
    │   ├── ModelUnavailable   timeout, 429, 5xx, connection error (transient)
    │   ├── ModelOutputError   the answer stayed invalid after one repair attempt
    │   └── NoModelConfigured  an LLM step ran with no LLM configured
    └── JobError               a background job could not be queued or run
"""

from __future__ import annotations

from memscope.redact import scrub

__all__ = [
    "ConfigError",
    "EmbeddingMismatch",
    "JobError",
    "LeaseLost",
    "MemscopeError",
    "ModelError",
    "ModelOutputError",
    "ModelUnavailable",
    "NoModelConfigured",
    "OperationLoadError",
    "OperationRunError",
    "StoreError",
    "StoreUnavailable",
    "ValidationError",
]


class MemscopeError(Exception):
    """Base of every error memscope raises on purpose."""


class ConfigError(MemscopeError):
    """A config file or value is invalid; `problems` lists each as 'file:line: key: message'."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


class ValidationError(MemscopeError, ValueError):
    """A caller passed input memscope cannot accept; the message says what to fix."""


class OperationLoadError(MemscopeError):
    """An operation file is invalid; `problems` lists each as 'FILE:LINE:COL: message'."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


class OperationRunError(MemscopeError):
    """A step of an operation failed; the cause is chained."""

    def __init__(self, operation: str, step: int, worker: str, cause: BaseException) -> None:
        self.operation, self.step, self.worker = operation, step, worker
        super().__init__(
            f"operation {operation!r} failed at step {step} (worker {worker!r}): "
            + scrub(f"{type(cause).__name__}: {cause}")
        )


class StoreError(MemscopeError):
    """The memory store failed."""


class StoreUnavailable(StoreError):
    """The store backend cannot be reached; retrying later may work."""


class EmbeddingMismatch(StoreError):
    """The store holds vectors of another embedding model than the one configured."""


class LeaseLost(StoreError):
    """A job's per-user lease was taken over (it was paused or too slow); its write was refused."""


class ModelError(MemscopeError):
    """A model backend failed."""


class ModelUnavailable(ModelError):
    """A model call timed out, was rate-limited or hit a server error; retrying later may work."""

    retry_after_s: float | None = None  # how long the server asked us to wait (Retry-After), if it said


class ModelOutputError(ModelError):
    """A model's answer did not match the required schema, even after one repair attempt."""


class NoModelConfigured(ModelError):
    """An LLM-dependent step ran while no LLM is configured."""


class JobError(MemscopeError):
    """A background job could not be queued or run."""
