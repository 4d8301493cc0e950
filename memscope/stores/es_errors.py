"""The Elasticsearch store's error boundary: client exceptions mapped to memscope's StoreError family.

`mapped` wraps each public store method; the client package is imported lazily (`import_es`), so
`import memscope` works without it and the error says how to install it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

from memscope.errors import MemscopeError, StoreError, StoreUnavailable
from memscope.extras import install_hint
from memscope.redact import mask_url, scrub

__all__ = ["INSTALL_HINT", "RETRYABLE", "import_es", "mapped", "translate"]

P = ParamSpec("P")
R = TypeVar("R")

INSTALL_HINT = f"the Elasticsearch store needs the `elasticsearch` client: {install_hint('es')}"
RETRYABLE = frozenset({429, 500, 502, 503, 504})


def import_es() -> Any:
    """The `elasticsearch` module, imported on first use so `import memscope` stays light."""
    try:
        import elasticsearch
    except ImportError as exc:
        raise StoreError(INSTALL_HINT) from exc
    return elasticsearch


def translate(exc: BaseException, url: str) -> MemscopeError | None:
    """The memscope error for an Elasticsearch client error, or None when it is not one (URLs masked)."""
    error = _translate(exc, mask_url(url))
    if error is not None:
        error.args = (mask_url(str(error)),)
    return error


def _translate(exc: BaseException, url: str) -> MemscopeError | None:
    try:
        import elastic_transport
        import elasticsearch
    except ImportError:
        return None
    url, text = mask_url(url), scrub(str(exc))  # servers may echo credentials
    if isinstance(exc, elastic_transport.SerializationError):
        return StoreError(f"Elasticsearch request or answer could not be (de)serialised: {text}")
    if isinstance(exc, elastic_transport.TransportError):
        return StoreUnavailable(
            f"cannot reach Elasticsearch at {url}: {text}. Check that it runs and that the url is right"
            " (store.elasticsearch.url / MEMSCOPE_ES_URL)"
        )
    if isinstance(exc, elasticsearch.UnsupportedProductError):
        return StoreError(f"the server at {url} does not answer as Elasticsearch: {text}")
    if isinstance(exc, elastic_transport.ApiError):
        status = getattr(getattr(exc, "meta", None), "status", None)
        if status in (401, 403):
            return StoreError(
                f"Elasticsearch at {url} refused the credentials ({status}): {text}. Check api_key or"
                " username/password and the role's index privileges"
            )
        if status in RETRYABLE:
            return StoreUnavailable(f"Elasticsearch at {url} is overloaded or failing ({status}): {text}")
        return StoreError(f"Elasticsearch at {url} rejected a request ({status}): {text}")
    return None


def mapped(fn: Callable[P, R]) -> Callable[P, R]:
    """Map Elasticsearch client errors raised by a public method to memscope's StoreError family."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except Exception as exc:
            mapped = translate(exc, getattr(args[0], "url", "?"))
            if mapped is None:
                raise
            raise mapped from exc

    return wrapper
