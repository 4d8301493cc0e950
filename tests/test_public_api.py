"""The public surface is complete and written out: `__all__` lists every public name, and the async API
has a typed twin of every sync method (httpx's Client/AsyncClient), not a proxy."""

from __future__ import annotations

import importlib
import inspect
import typing

import pytest

import memscope
from memscope import api
from memscope.api import AsyncMemoryScope, MemoryScope
from memscope.jobs.base import JobRecord

pytestmark = pytest.mark.unit


def public_methods(cls: type) -> dict[str, typing.Any]:
    return {n: f for n, f in vars(cls).items() if callable(f) and not n.startswith("_")}


def hints(func: typing.Any) -> dict[str, typing.Any]:
    names = {n: getattr(memscope, n) for n in memscope.__all__ if n != "__version__"}
    return typing.get_type_hints(func, localns=names)


@pytest.mark.parametrize("module", [memscope, api])
def test_every_name_in_all_is_importable_and_sorted(module):
    for name in module.__all__:
        assert getattr(module, name) is not None, name
    assert list(module.__all__) == sorted(module.__all__)


def test_every_memscope_type_the_api_returns_or_takes_is_exported():
    seen: set[str] = set()
    for cls in (MemoryScope, AsyncMemoryScope):
        for method in public_methods(cls).values():
            for hint in hints(method).values():
                stack = [hint]
                while stack:
                    t = stack.pop()
                    stack.extend(typing.get_args(t))
                    module = getattr(t, "__module__", "")
                    if inspect.isclass(t) and module.startswith("memscope"):
                        seen.add(t.__name__)
    missing = sorted(seen - set(memscope.__all__))
    assert not missing, f"public API types not exported from memscope: {missing}"
    assert {"JobRecord", "MemoryEvent", "MemoryNode", "Message", "RetrievalResult", "Session"} <= seen


def test_every_sync_method_has_a_typed_async_twin():
    sync, twins = public_methods(MemoryScope), public_methods(AsyncMemoryScope)
    assert sorted(sync) == sorted(twins)
    assert "__getattr__" not in vars(AsyncMemoryScope)
    for name, method in sync.items():
        twin = twins[name]
        assert inspect.iscoroutinefunction(twin), name
        ours, theirs = inspect.signature(method), inspect.signature(twin)
        assert [(p.name, p.kind, p.default) for p in ours.parameters.values()] == [
            (p.name, p.kind, p.default) for p in theirs.parameters.values()
        ], name
        assert hints(method).get("return") == hints(twin).get("return"), name
        assert (twin.__doc__ or "").strip(), name


@pytest.mark.parametrize("cls", [MemoryScope, AsyncMemoryScope])
@pytest.mark.parametrize("name", ["consolidate", "reflect"])
def test_waiting_is_typed_to_return_the_job_record(cls, name):
    returns = {}
    for overload in typing.get_overloads(getattr(cls, name)):
        h = hints(overload)
        returns[typing.get_args(h["wait"]) or h["wait"]] = h["return"]
    assert returns == {(True,): JobRecord, (False,): str, bool: str | JobRecord}  # a bool only known at run time


def test_lazy_names_resolve_to_their_modules():
    assert memscope.JobRecord is importlib.import_module("memscope.jobs.base").JobRecord
    assert sorted(dir(memscope)) == sorted(memscope.__all__)
