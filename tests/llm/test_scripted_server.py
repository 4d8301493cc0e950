"""The scripted model server itself: scripting rules, SDK compatibility, and its standalone process."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import openai
import pytest
from pydantic import BaseModel

from memscope.llm.openai_backend import OpenAIChat
from tests.support.scripted_server import Fault, RemoteScript, ScriptedServer, fake_embedding, minimal_instance

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def post_chat(server_url: str, tag: str) -> tuple[int, dict[str, object]]:
    body = json.dumps({"model": "m", "messages": [{"role": "user", "content": "hi"}]}).encode()
    req = urllib.request.Request(
        f"{server_url}/v1/chat/completions",
        data=body,
        headers={"Content-Type": "application/json", "X-Memscope-Worker": tag},
    )
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def content(answer: dict[str, object]) -> str:
    return answer["choices"][0]["message"]["content"]  # type: ignore[index,no-any-return]


def test_unscripted_tag_is_a_500_naming_the_tag(model_server: ScriptedServer) -> None:
    status, answer = post_chat(model_server.url, "lonely_worker")
    assert status == 500
    assert "no script for tag 'lonely_worker'" in answer["error"]["message"]  # type: ignore[index]


def test_queue_then_tag_default_then_catch_all(model_server: ScriptedServer) -> None:
    model_server.script("a", "first", {"n": 2})
    model_server.default("a", "a-default")
    model_server.default(None, lambda body: "catch-all")
    answers = [content(post_chat(model_server.url, "a")[1]) for _ in range(4)]
    assert answers == ["first", '{"n": 2}', "a-default", "a-default"]
    assert content(post_chat(model_server.url, "b")[1]) == "catch-all"
    assert [r.tag for r in model_server.requests] == ["a"] * 4 + ["b"]
    model_server.reset()
    assert post_chat(model_server.url, "a")[0] == 500


def test_sdk_lists_models_and_decodes_base64_embeddings(model_server: ScriptedServer) -> None:
    client = openai.OpenAI(api_key="sk", base_url=model_server.openai_base_url, max_retries=0)
    assert "gpt-4o-mini" in [m.id for m in client.models.list()]
    resp = client.embeddings.create(model="text-embedding-3-small", input=["hello"])  # SDK asks for base64
    assert model_server.requests[-1].json["encoding_format"] == "base64"
    np.testing.assert_allclose(resp.data[0].embedding, fake_embedding("hello", 64), atol=1e-6)


def test_minimal_instance_satisfies_a_nested_schema() -> None:
    class Item(BaseModel):
        text: str
        kind: str = "note"

    class Answer(BaseModel):
        items: list[Item]
        best: Item | None
        count: int

    value = minimal_instance(Answer.model_json_schema())
    assert Answer.model_validate(value) == Answer(items=[], best=Item(text=""), count=0)


@pytest.fixture
def server_process() -> Iterator[tuple[subprocess.Popen[str], str]]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.support.scripted_server", "--port", "0"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert "listening on" in line, line
        yield proc, line.rsplit(" ", 1)[1].strip()
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_standalone_process_is_scripted_over_http(server_process: tuple[subprocess.Popen[str], str]) -> None:
    _, url = server_process
    remote = RemoteScript(url)
    llm = OpenAIChat("gpt-4o-mini", "sk", base_url=f"{url}/v1", max_retries=1, retry_base_delay_s=0.01)

    class Verdict(BaseModel):
        keep: bool
        reason: str

    remote.script("judge", Fault.status(429), {"keep": True, "reason": "names a preference"})
    assert llm.structured([{"role": "user", "content": "judge"}], Verdict, tag="judge").keep is True

    remote.default(None, mode="schema")  # any tag: the smallest answer valid for the requested schema
    assert llm.structured([{"role": "user", "content": "judge"}], Verdict, tag="other") == Verdict(
        keep=False, reason=""
    )
    remote.default("echoer", mode="echo")
    assert llm.chat([{"role": "user", "content": "repeat me"}], tag="echoer").text == "repeat me"

    tags = [r["tag"] for r in remote.requests()]
    assert tags == ["judge", "judge", "other", "echoer"]
    remote.reset()
    assert remote.requests() == []
