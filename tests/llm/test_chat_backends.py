"""OpenAI and DashScope chat backends, real SDK clients over HTTP against the scripted server."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel

from memscope.errors import ModelError, ModelOutputError, ModelUnavailable
from memscope.llm.base import ChatModel, UsageMeter
from memscope.llm.dashscope_backend import DashScopeChat
from memscope.llm.openai_backend import OpenAIChat
from tests.support.scripted_server import Fault, RecordedRequest, ScriptedServer, chat_messages

pytestmark = pytest.mark.integration

BACKENDS = ["openai", "dashscope"]
CHAT_PATH = {"openai": "/chat/completions", "dashscope": "/text-generation/generation"}


class Fact(BaseModel):
    """A schema the tests ask for."""

    subject: str
    score: int


def make(server: ScriptedServer, backend: str, **kw: Any) -> OpenAIChat | DashScopeChat:
    kw.setdefault("retry_base_delay_s", 0.01)
    kw.setdefault("retry_max_delay_s", 0.05)
    if backend == "openai":
        return OpenAIChat("gpt-4o-mini", "sk-test", base_url=server.openai_base_url, **kw)
    return DashScopeChat("qwen-plus", "sk-test", base_url=server.dashscope_base_url, **kw)


def chat_requests(server: ScriptedServer, backend: str) -> list[RecordedRequest]:
    return server.requests_to(CHAT_PATH[backend])


@pytest.mark.parametrize("backend", BACKENDS)
def test_chat_answers_counts_tokens_and_sends_the_tag(model_server: ScriptedServer, backend: str) -> None:
    meter = UsageMeter()
    llm = make(model_server, backend, meter=meter)
    assert isinstance(llm, ChatModel)
    model_server.script("filter_informative", "three words here")

    result = llm.chat(
        [{"role": "system", "content": "be brief"}, {"role": "user", "content": "say three words"}],
        tag="filter_informative",
    )

    assert result.text == "three words here"
    assert (result.usage.calls, result.usage.prompt_tokens, result.usage.completion_tokens) == (1, 5, 3)
    assert (meter.total.calls, meter.total.prompt_tokens, meter.total.completion_tokens) == (1, 5, 3)
    (request,) = chat_requests(model_server, backend)
    assert request.header("X-Memscope-Worker") == "filter_informative"
    assert request.header("Authorization") == "Bearer sk-test"
    assert chat_messages(request.json)[-1] == {"role": "user", "content": "say three words"}


@pytest.mark.parametrize("backend", BACKENDS)
def test_meter_counts_per_thread_section(model_server: ScriptedServer, backend: str) -> None:
    llm = make(model_server, backend)
    model_server.default(None, "one two")
    llm.chat([{"role": "user", "content": "a"}], tag="x")
    section = llm.meter.start()
    llm.chat([{"role": "user", "content": "a b c"}], tag="x")
    assert llm.meter.stop() is section
    assert (section.calls, section.prompt_tokens, section.completion_tokens) == (1, 3, 2)
    assert llm.meter.total.calls == 2


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ("<think>the user wants a greeting</think>\nHello!", "Hello!"),
        ("reasoning whose opening tag was in the template</think>Hello!", "Hello!"),
        ("<think>a</think>Hel<think>b</think>lo!", "Hello!"),
        ("Hello!<think>cut off before closing", "Hello!"),
    ],
)
def test_think_sections_are_stripped(model_server: ScriptedServer, backend: str, answer: str, expected: str) -> None:
    model_server.script("w", answer)
    assert make(model_server, backend).chat([{"role": "user", "content": "hi"}], tag="w").text == expected


@pytest.mark.parametrize("backend", BACKENDS)
def test_callable_and_delayed_responses(model_server: ScriptedServer, backend: str) -> None:
    llm = make(model_server, backend)
    model_server.script(
        "w",
        lambda body: f"echo: {chat_messages(body)[-1]['content']}",
        Fault.delay(0.05, then="late but fine"),
    )
    assert llm.chat([{"role": "user", "content": "ping"}], tag="w").text == "echo: ping"
    assert llm.chat([{"role": "user", "content": "ping"}], tag="w").text == "late but fine"


def test_openai_structured_uses_json_schema(model_server: ScriptedServer) -> None:
    llm = make(model_server, "openai")
    model_server.script("extract", {"subject": "tea", "score": 2})

    fact = llm.structured([{"role": "user", "content": "extract"}], Fact, tag="extract")

    assert fact == Fact(subject="tea", score=2)
    (request,) = chat_requests(model_server, "openai")
    fmt = request.json["response_format"]
    assert fmt["type"] == "json_schema"
    assert fmt["json_schema"]["name"] == "Fact"
    assert fmt["json_schema"]["strict"] is False
    assert fmt["json_schema"]["schema"]["required"] == ["subject", "score"]


@pytest.mark.parametrize("backend", ["openai-json-mode", "dashscope"])
def test_json_mode_puts_the_schema_in_the_system_prompt(model_server: ScriptedServer, backend: str) -> None:
    llm = (
        make(model_server, "openai", json_schema=False)
        if backend == "openai-json-mode"
        else make(model_server, "dashscope")
    )
    model_server.script("extract", '```json\n{"subject": "tea", "score": 1}\n```')

    fact = llm.structured(
        [{"role": "system", "content": "You extract facts."}, {"role": "user", "content": "go"}], Fact, tag="extract"
    )

    assert fact == Fact(subject="tea", score=1)
    (request,) = model_server.requests
    body = request.json
    fmt = body.get("response_format") or body["parameters"]["response_format"]
    assert fmt == {"type": "json_object"}
    system = chat_messages(body)[0]
    assert system["role"] == "system"
    assert system["content"].startswith("You extract facts.")
    assert '"score"' in system["content"] and "JSON" in system["content"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_invalid_json_is_repaired_once(model_server: ScriptedServer, backend: str) -> None:
    llm = make(model_server, backend)
    model_server.script("extract", Fault.invalid_json(), {"subject": "tea", "score": 3})

    fact = llm.structured([{"role": "user", "content": "extract"}], Fact, tag="extract")

    assert fact.score == 3
    first, repair = chat_requests(model_server, backend)
    repair_msgs = chat_messages(repair.json)
    assert repair_msgs[: len(chat_messages(first.json))] == chat_messages(first.json)
    assert repair_msgs[-2]["role"] == "assistant" and "this is not json" in repair_msgs[-2]["content"]
    assert repair_msgs[-1]["role"] == "user" and "Fact" in repair_msgs[-1]["content"]
    assert repair.header("X-Memscope-Worker") == "extract"
    assert llm.meter.total.calls == 2


@pytest.mark.parametrize("backend", BACKENDS)
def test_invalid_twice_raises_model_output_error_and_counts_both(model_server: ScriptedServer, backend: str) -> None:
    llm = make(model_server, backend)
    model_server.script("extract", {"subject": "tea"}, {"subject": "tea", "score": "high"})

    with pytest.raises(ModelOutputError) as info:
        llm.structured([{"role": "user", "content": "extract"}], Fact, tag="extract")

    message = str(info.value)
    assert "Fact" in message and "score" in message
    assert '{"subject": "tea", "score": "high"}' in message  # the start of the bad answer
    assert len(chat_requests(model_server, backend)) == 2
    assert llm.meter.total.calls == 2
    assert llm.meter.total.completion_tokens > 0


@pytest.mark.parametrize("backend", BACKENDS)
def test_rate_limit_is_retried(model_server: ScriptedServer, backend: str) -> None:
    llm = make(model_server, backend, max_retries=3)
    model_server.script("w", Fault.status(429), Fault.status(503), "finally")

    assert llm.chat([{"role": "user", "content": "hi"}], tag="w").text == "finally"
    assert len(chat_requests(model_server, backend)) == 3
    assert llm.meter.total.calls == 1


@pytest.mark.parametrize("backend", BACKENDS)
def test_server_errors_exhaust_retries(model_server: ScriptedServer, backend: str) -> None:
    llm = make(model_server, backend, max_retries=2)
    model_server.script("w", *[Fault.status(500)] * 3, "never reached")

    with pytest.raises(ModelUnavailable) as info:
        llm.chat([{"role": "user", "content": "hi"}], tag="w")

    message = str(info.value)
    assert backend in message and llm.model in message and "500" in message and "3 attempts" in message
    assert len(chat_requests(model_server, backend)) == 3
    assert model_server.pending("w") == 1
    assert llm.meter.total.calls == 0


@pytest.mark.parametrize("backend", BACKENDS)
def test_hang_times_out_as_model_unavailable(model_server: ScriptedServer, backend: str) -> None:
    llm = make(model_server, backend, timeout_s=0.5, max_retries=1)
    model_server.script("w", Fault.hang(), Fault.hang())

    with pytest.raises(ModelUnavailable, match="timed out"):
        llm.chat([{"role": "user", "content": "hi"}], tag="w")
    assert len(chat_requests(model_server, backend)) == 2


@pytest.mark.parametrize("backend", BACKENDS)
def test_rejected_key_is_a_model_error_naming_the_variable(model_server: ScriptedServer, backend: str) -> None:
    llm = make(model_server, backend, max_retries=3)
    model_server.script("w", Fault.status(401), "not reached")

    with pytest.raises(ModelError) as info:
        llm.chat([{"role": "user", "content": "hi"}], tag="w")

    assert not isinstance(info.value, ModelUnavailable)
    assert ("OPENAI_API_KEY" if backend == "openai" else "DASHSCOPE_API_KEY") in str(info.value)
    assert "401" in str(info.value)
    assert len(chat_requests(model_server, backend)) == 1


@pytest.mark.parametrize("backend", BACKENDS)
def test_bad_request_is_not_retried(model_server: ScriptedServer, backend: str) -> None:
    llm = make(model_server, backend)
    model_server.script("w", Fault.status(400, "messages must not be empty"))
    with pytest.raises(ModelError, match="messages must not be empty"):
        llm.chat([{"role": "user", "content": "hi"}], tag="w")
    assert len(model_server.requests) == 1


@pytest.mark.parametrize("backend", BACKENDS)
def test_unscripted_tag_fails_loudly(model_server: ScriptedServer, backend: str) -> None:
    llm = make(model_server, backend, max_retries=0)
    with pytest.raises(ModelUnavailable, match="no script for tag 'forgotten_worker'"):
        llm.chat([{"role": "user", "content": "hi"}], tag="forgotten_worker")


def test_unreachable_server_is_model_unavailable(model_server: ScriptedServer) -> None:
    closed = ScriptedServer().start()
    url = closed.openai_base_url
    closed.stop()
    llm = OpenAIChat("gpt-4o-mini", "sk-test", base_url=url, max_retries=1, retry_base_delay_s=0.01)
    with pytest.raises(ModelUnavailable, match="cannot connect"):
        llm.chat([{"role": "user", "content": "hi"}], tag="w")


@pytest.mark.parametrize("cls", [OpenAIChat, DashScopeChat])
def test_missing_api_key_is_a_clear_error(cls: type) -> None:
    with pytest.raises(ModelError, match="API_KEY"):
        cls("some-model", None)
