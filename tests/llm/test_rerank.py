"""DashScope rerank over HTTP against the scripted server, and the no-op reranker."""

from __future__ import annotations

import pytest

from memscope.errors import ModelError
from memscope.llm.base import Reranker
from memscope.llm.dashscope_backend import DashScopeReranker
from memscope.llm.noop import NoopReranker
from tests.support.scripted_server import RERANK_TAG, Fault, ScriptedServer

DOCS = ["the weather in Paris", "my favourite tea is oolong", "tea with milk, no sugar", "a red bicycle"]


@pytest.mark.integration
def test_dashscope_rerank_orders_by_relevance(model_server: ScriptedServer) -> None:
    reranker = DashScopeReranker(api_key="sk-test", base_url=model_server.dashscope_base_url)
    assert isinstance(reranker, Reranker)

    results = reranker.rerank("which oolong tea do I like", DOCS, top_n=2)

    assert [r.index for r in results] == [1, 2]
    assert results[0].score > results[1].score > 0
    (request,) = model_server.requests_to("/text-rerank/text-rerank")
    assert request.json["model"] == "gte-rerank"
    assert request.json["input"] == {"query": "which oolong tea do I like", "documents": DOCS}
    assert request.json["parameters"]["top_n"] == 2


@pytest.mark.integration
def test_dashscope_rerank_without_documents_makes_no_request(model_server: ScriptedServer) -> None:
    assert DashScopeReranker(api_key="sk-test", base_url=model_server.dashscope_base_url).rerank("q", []) == []
    assert model_server.requests == []


@pytest.mark.integration
def test_dashscope_rerank_rejected_key(model_server: ScriptedServer) -> None:
    model_server.script(RERANK_TAG, Fault.status(403, "access denied"))
    reranker = DashScopeReranker(api_key="sk-test", base_url=model_server.dashscope_base_url)
    with pytest.raises(ModelError, match="DASHSCOPE_API_KEY"):
        reranker.rerank("q", DOCS)


@pytest.mark.unit
def test_noop_reranker_keeps_input_order() -> None:
    reranker = NoopReranker()
    assert isinstance(reranker, Reranker)
    results = reranker.rerank("anything", DOCS)
    assert [r.index for r in results] == [0, 1, 2, 3]
    assert sorted(results, key=lambda r: -r.score) == results
    assert [r.index for r in reranker.rerank("q", DOCS, top_n=2)] == [0, 1]
    assert reranker.rerank("q", []) == []
