"""Pure helpers: think-stripping, JSON extraction, repair prompts, and the retry loop."""

from __future__ import annotations

import pytest
from pydantic import BaseModel

from memscope.errors import ModelError, ModelOutputError, ModelUnavailable
from memscope.llm.retry import backoff_delay, call_with_retries, retry_unavailable
from memscope.llm.structured import (
    extract_json_text,
    json_schema_format,
    run_structured,
    schema_name,
    strip_think,
    with_schema_prompt,
)

pytestmark = pytest.mark.unit


class Pref(BaseModel):
    """A schema for the tests."""

    topic: str
    likes: bool


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("plain", "plain"),
        ("<think>x</think>answer", "answer"),
        ("<THINK>x</THINK> answer ", "answer"),
        ("x\ny</think>\nanswer", "answer"),
        ("answer<think>never closed", "answer"),
        ("<think>only thinking, cut off", ""),
    ],
)
def test_strip_think(raw: str, clean: str) -> None:
    assert strip_think(raw) == clean


@pytest.mark.parametrize(
    "raw",
    [
        '{"topic": "tea", "likes": true}',
        '```json\n{"topic": "tea", "likes": true}\n```',
        '<think>hmm</think>```\n{"topic": "tea", "likes": true}\n```',
        'Here you go:\n```json\n{"topic": "tea", "likes": true}\n```\nAnything else?',
    ],
)
def test_extract_json_text(raw: str) -> None:
    assert Pref.model_validate_json(extract_json_text(raw)) == Pref(topic="tea", likes=True)


def test_schema_helpers() -> None:
    class Weird_Name(BaseModel):
        x: int

    assert schema_name(Weird_Name) == "Weird_Name"
    assert json_schema_format(Pref)["json_schema"]["schema"]["required"] == ["topic", "likes"]
    msgs = with_schema_prompt([{"role": "user", "content": "hi"}], Pref)
    assert msgs[0]["role"] == "system" and '"likes"' in msgs[0]["content"]
    assert msgs[1] == {"role": "user", "content": "hi"}


def test_run_structured_repairs_once_then_gives_up() -> None:
    sent: list[list[dict[str, str]]] = []
    answers = iter(['{"topic": "tea"}', '{"topic": "tea", "likes": "very much"}'])

    def send(messages: list[dict[str, str]]) -> str:
        sent.append(messages)
        return next(answers)

    with pytest.raises(ModelOutputError, match="Pref") as info:
        run_structured(send, [{"role": "user", "content": "q"}], Pref)
    assert len(sent) == 2
    assert "likes: Field required" in sent[1][-1]["content"]
    assert "likes" in str(info.value) and "very much" in str(info.value)


def test_call_with_retries_retries_only_transient_errors() -> None:
    calls: list[int] = []
    sleeps: list[float] = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise ModelUnavailable("busy")
        return "ok"

    result = call_with_retries(
        flaky,
        attempts=5,
        base_delay_s=1.0,
        max_delay_s=3.0,
        is_transient=lambda e: isinstance(e, ModelUnavailable),
        sleep=sleeps.append,
    )
    assert result == "ok" and len(calls) == 3
    assert 0.5 <= sleeps[0] <= 1.0 and 1.0 <= sleeps[1] <= 2.0

    def broken() -> str:
        calls.append(1)
        raise ModelError("bad request")

    calls.clear()
    with pytest.raises(ModelError, match="bad request"):
        call_with_retries(broken, attempts=5, is_transient=lambda e: isinstance(e, ModelUnavailable))
    assert len(calls) == 1


def test_backoff_is_capped() -> None:
    assert all(2.0 <= backoff_delay(10, 0.5, 4.0) <= 4.0 for _ in range(50))


def test_retry_unavailable_names_the_attempts() -> None:
    def down() -> None:
        raise ModelUnavailable("openai model 'm' answered HTTP 503")

    with pytest.raises(ModelUnavailable, match=r"HTTP 503 \(gave up after 3 attempts\)"):
        retry_unavailable(down, retries=2, base_delay_s=0.0, max_delay_s=0.0)
