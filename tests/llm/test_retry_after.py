"""Retries wait at least what the server asks (Retry-After), capped by the call's timeout; odd bodies retry."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import pytest

from memscope.llm.dashscope_backend import DashScopeChat
from memscope.llm.openai_backend import OpenAIChat
from memscope.llm.retry import parse_retry_after
from tests.support.scripted_server import Fault, ScriptedServer

pytestmark = pytest.mark.integration

CHAT_PATH = {"openai": "/chat/completions", "dashscope": "/text-generation/generation"}


def make(server: ScriptedServer, backend: str, **kw: Any) -> Any:
    kw.setdefault("retry_base_delay_s", 0.01)
    kw.setdefault("retry_max_delay_s", 0.02)
    if backend == "openai":
        return OpenAIChat("gpt-4o-mini", "sk-test", base_url=server.openai_base_url, **kw)
    return DashScopeChat("qwen-plus", "sk-test", base_url=server.dashscope_base_url, **kw)


def gaps(server: ScriptedServer, backend: str) -> list[float]:
    times = [r.received_at for r in server.requests_to(CHAT_PATH[backend])]
    return [later - earlier for earlier, later in itertools.pairwise(times)]


@pytest.mark.parametrize("backend", ["openai", "dashscope"])
def test_a_429_is_retried_no_sooner_than_retry_after(model_server: ScriptedServer, backend: str) -> None:
    model_server.script("t", Fault.status(429, retry_after="1"), "done")
    assert make(model_server, backend).chat([{"role": "user", "content": "hi"}], tag="t").text == "done"
    (gap,) = gaps(model_server, backend)
    assert gap >= 1.0  # the backoff alone would be 0.01-0.02 s


@pytest.mark.parametrize("backend", ["openai", "dashscope"])
def test_retry_after_is_capped_by_the_call_timeout(model_server: ScriptedServer, backend: str) -> None:
    model_server.script("t", Fault.status(503, retry_after="3600"), "done")
    assert make(model_server, backend, timeout_s=1.0).chat([{"role": "user", "content": "hi"}], tag="t").text == "done"
    (gap,) = gaps(model_server, backend)
    assert 1.0 <= gap < 30


@pytest.mark.parametrize("backend", ["openai", "dashscope"])
def test_a_200_with_an_html_page_is_a_retried_model_error(model_server: ScriptedServer, backend: str) -> None:
    model_server.script("t", Fault.html(), "done")
    llm = make(model_server, backend)
    assert llm.chat([{"role": "user", "content": "hi"}], tag="t").text == "done"
    assert len(model_server.requests_to(CHAT_PATH[backend])) == 2
    assert llm.meter.total.retries == 1


def test_parse_retry_after_forms() -> None:
    assert parse_retry_after({"Retry-After": "5"}) == 5.0
    assert parse_retry_after({"retry-after-ms": "250", "Retry-After": "9"}) == 0.25
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    assert 25 <= (parse_retry_after({"retry-after": later}) or 0) <= 30
    assert parse_retry_after({"Retry-After": "soon"}) is None
    assert parse_retry_after({"Retry-After": "-3"}) == 0.0
    assert parse_retry_after(None) is None
