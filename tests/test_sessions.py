"""Sessions: building, masking, search, persistence, and each provider's documented message shape."""

from __future__ import annotations

import itertools
import json
import warnings
from pathlib import Path

import pytest
from openai.types.chat import ChatCompletion

from memscope.errors import ValidationError
from memscope.sessions import Session, SessionSizeWarning, estimate_tokens
from tests.support.scripted_server import Fault

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


def test_title_and_times_follow_changes():
    s = Session(title="Trip")
    created, before = s.created_at, s.modified_at
    s.add_prompt("hi")
    assert s.modified_at > before and s.created_at == created
    touched = s.modified_at
    s.title = "Trip to Paris"  # a plain pydantic assignment still moves modified_at
    assert s.modified_at > touched and s.title == "Trip to Paris"


def test_get_remove_and_clear_by_index_or_id():
    s = conversation()
    third = s.turns[2]
    assert s.get(2) is third and s.get(third.id) is third and s.get(-1) is s.turns[4]
    assert s.remove(third.id) is third and third not in s.turns
    assert s.remove(0).role.value == "system" and len(s.turns) == 3
    with pytest.raises(ValidationError, match="no turn at index 7: session 's1' has 3 turns"):
        s.get(7)
    with pytest.raises(ValidationError, match="no turn with id 'x'"):
        s.remove("x")
    with pytest.raises(ValidationError, match="index or id"):
        s.get(1.5)  # type: ignore[arg-type]
    title = s.title
    s.clear()
    assert s.turns == [] and s.title == title


def test_several_responses_per_prompt_render_the_selected_one():
    s = Session()
    ask = s.add_prompt("Name a colour")
    first = s.add_response("Red")
    s.add_prompt("And a number?")
    s.add_response("Seven")
    blue = s.add_response("Blue", reply_to=ask.id, selected=False, score=0.9)
    assert first.reply_to == ask.id and s.turns.index(blue) == 2  # kept beside the other answer
    assert s.responses(ask.id) == [first, blue] and s.responses(0) == [first, blue]
    assert "Blue" not in s.render("text") and s.search("blue") == []
    s.select_response(blue.id)
    assert (first.selected, blue.selected) == (False, True)
    assert [m["content"] for m in s.render("openai")] == ["Name a colour", "Blue", "And a number?", "Seven"]
    with pytest.raises(ValidationError, match="not a response"):
        s.select_response(ask.id)


def test_size_in_bytes_and_the_warning_threshold():
    s = Session(size_warning_bytes=2_000)
    s.add_prompt("small")
    assert s.size_bytes() == len(s.model_dump_json().encode())
    with pytest.warns(SessionSizeWarning, match="over its size_warning_bytes of 2,000"):
        s.add_prompt("é" * 1_000)  # 2,000 bytes of UTF-8
    assert s.size_bytes() == len(s.model_dump_json().encode())  # the cached size stayed exact
    s.remove(1)
    assert s.size_bytes() < 2_000
    quiet = Session(size_warning_bytes=None)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        quiet.add_prompt("x" * 5_000_000)


def test_clone_keeps_ids_unless_asked_to_regenerate():
    s = conversation()
    alt = s.add_response("Rainy", reply_to=s.turns[1].id, selected=False)
    same = s.clone()
    assert same == s and same is not s and same.turns[0] is not s.turns[0]
    fresh = s.clone(regenerate_ids=True)
    assert fresh.id != s.id and not {t.id for t in fresh.turns} & {t.id for t in s.turns}
    moved = next(t for t in fresh.turns if t.content == alt.content)
    assert moved.reply_to == fresh.turns[1].id  # replies follow their prompt's new id
    assert fresh.render("openai") == s.render("openai")


@pytest.mark.integration
def test_record_a_real_dashscope_response(model_server):
    import dashscope

    model_server.script("", "你好")
    s = Session()
    s.add_prompt("Say hello")
    answer = dashscope.Generation.call(
        model="qwen-plus", api_key="test", messages=s.render("openai"), result_format="message",
        base_address=model_server.dashscope_base_url,
    )
    r = s.record_dashscope(answer, model="qwen-plus", latency_ms=9.0, temperature=0.1)
    assert (r.content, r.model, r.temperature, r.latency_ms) == ("你好", "qwen-plus", 0.1, 9.0)
    assert r.prompt_tokens and r.completion_tokens and r.metadata["finish_reason"] == "stop"
    model_server.script("", Fault.status(400, "bad input"))
    failed = dashscope.Generation.call(
        model="qwen-plus", api_key="test", messages=s.render("openai"), base_address=model_server.dashscope_base_url
    )
    with pytest.raises(ValidationError, match="DashScope call failed \\(status 400"):
        s.record_dashscope(failed, model="qwen-plus")
    assert len(s.turns) == 2
