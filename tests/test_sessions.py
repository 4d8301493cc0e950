"""Sessions: building, masking, search, persistence, and each provider's documented message shape."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest
from openai.types.chat import ChatCompletion

from memscope.errors import ValidationError
from memscope.sessions import Session, estimate_tokens

pytestmark = pytest.mark.unit

TOOL_COMPLETION = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "created": 1700000000,
    "model": "gpt-4o-mini",
    "choices": [
        {
            "index": 0,
            "finish_reason": "tool_calls",
            "message": {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                    }
                ],
            },
        }
    ],
    "usage": {"prompt_tokens": 20, "completion_tokens": 7, "total_tokens": 27},
}


def conversation() -> Session:
    s = Session(id="s1")
    s.add_prompt("You are helpful.", role="system")
    s.add_prompt("What's the weather in Paris?")
    s.record_openai(ChatCompletion.model_validate(TOOL_COMPLETION), latency_ms=120.0, temperature=0.2)
    s.add_prompt("18C and sunny", role="tool", tool_call_id="call_1")
    s.add_response("It is 18C and sunny in Paris.", model="gpt-4o-mini")
    return s


def test_record_real_openai_completion_with_tool_calls():
    s = conversation()
    r = s.turns[2]
    assert (r.model, r.prompt_tokens, r.completion_tokens, r.latency_ms, r.temperature) == (
        "gpt-4o-mini",
        20,
        7,
        120.0,
        0.2,
    )
    assert r.tool_calls[0]["function"]["name"] == "get_weather"
    assert r.metadata["finish_reason"] == "tool_calls"


def test_openai_render_matches_chat_completions_shape():
    msgs = conversation().render("openai")
    assert [m["role"] for m in msgs] == ["system", "user", "assistant", "tool", "assistant"]
    assert msgs[2]["content"] is None and msgs[2]["tool_calls"][0]["id"] == "call_1"
    assert msgs[3] == {"role": "tool", "content": "18C and sunny", "tool_call_id": "call_1"}


def test_anthropic_render_system_apart_alternating_user_first():
    out = conversation().render("anthropic")
    assert out["system"] == "You are helpful."
    roles = [m["role"] for m in out["messages"]]
    assert roles[0] == "user" and all(a != b for a, b in itertools.pairwise(roles))
    tool_use = out["messages"][1]["content"][0]
    assert tool_use == {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Paris"}}
    assert out["messages"][2]["content"][0] == {
        "type": "tool_result",
        "tool_use_id": "call_1",
        "content": "18C and sunny",
    }
    assert all(isinstance(m["content"], list) for m in out["messages"])


def test_gemini_render_model_role_and_parts():
    out = conversation().render("gemini")
    assert out["system_instruction"] == {"parts": [{"text": "You are helpful."}]}
    assert [c["role"] for c in out["contents"]] == ["user", "model", "user", "model"]
    assert out["contents"][1]["parts"][0] == {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}}
    assert out["contents"][0]["parts"] == [{"text": "What's the weather in Paris?"}]


def test_consecutive_same_role_turns_merge_and_assistant_first_gets_a_user_turn():
    s = Session()
    s.add_response("Hello again!")
    s.add_prompt("hi")
    s.add_prompt("are you there?")
    msgs = s.render("anthropic")["messages"]
    assert [m["role"] for m in msgs] == ["user", "assistant", "user"]
    assert [b["text"] for b in msgs[2]["content"]] == ["hi", "are you there?"]


def test_masking_search_tokens_and_text_render():
    s = conversation()
    assert s.mask(1) == 1
    assert "Paris?" not in s.render("text")
    assert [t.content for t in s.search("paris")] == ["It is 18C and sunny in Paris."]
    assert len(s.search(r"\d+C", regex=True)) == 2
    with pytest.raises(ValidationError, match="invalid regular expression"):
        s.search("(", regex=True)
    assert s.unmask(1) == 1 and s.estimate_tokens() > 0
    assert estimate_tokens("你好世界") == 4 and estimate_tokens("abcdefgh") == 2


def test_save_and_load_round_trip(tmp_path: Path):
    s = conversation()
    s.mask(0)
    path = tmp_path / "s.json"
    s.save(path)
    again = Session.load(path)
    assert again == s
    assert json.loads(path.read_text())["id"] == "s1"


def test_unknown_format_and_assistant_prompt_rejected():
    with pytest.raises(ValidationError, match="choose one of"):
        Session().render("xml")  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="add_response"):
        Session().add_prompt("x", role="assistant")
