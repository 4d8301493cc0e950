"""What the Elasticsearch store sends, captured from the real `elasticsearch` client.

The client talks HTTP to a tiny fake server on 127.0.0.1 that records every request and answers
with minimal valid Elasticsearch responses (including the `X-Elastic-Product` header the client
checks), so these tests exercise the real client's serialisation end to end.
"""

from __future__ import annotations

import fnmatch
import json
import re
import socket
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import pytest

from memscope.errors import EmbeddingMismatch, StoreError, StoreUnavailable, ValidationError
from memscope.models import EventKind, EventTime, Granularity, MemoryNode, MemoryStatus, MemoryType, Message
from memscope.stores import es_queries as q
from memscope.stores.base import MemoryFilter, MessageFilter, SearchQuery, Store
from memscope.stores.elasticsearch import ElasticsearchStore, _event_id
from memscope.stores.es_admin import upgraded_source
from memscope.stores.es_replies import reply_links
from memscope.stores.es_templates import PROPERTIES, index_template

pytestmark = pytest.mark.unit

T0 = datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)
T0_US = 1714564800123456
HOSTILE_IDS = ['x" OR *', '{"match_all":{}}', "*", 'a\\"}]}, {"match_all": {}}', "_all", "用户 ✓"]


# -- the fake server -------------------------------------------------------------------------------------


@dataclass
class Req:
    """One recorded request: method, decoded path, query parameters and parsed body."""

    method: str
    path: str
    params: dict[str, str]
    body: Any
    accept: str = ""
    authorization: str = ""


Responder = Callable[[Req], "tuple[int, Any] | None"]


class FakeES:
    """Records requests; keeps templates, aliases, mappings and documents just well enough."""

    CORE_MODULES = ("apm", "transport-netty4", "x-pack-core", "x-pack-security")  # Elastic's test zip

    def __init__(self, version: str = "9.5.4", modules: tuple[str, ...] = CORE_MODULES) -> None:
        self.version = version
        self.modules = modules
        self.meta: dict[str, dict[str, Any]] = {}  # index -> mapping _meta
        self.requests: list[Req] = []
        self.templates: dict[str, Any] = {}
        self.aliases: dict[str, str] = {}
        self.indices: dict[str, dict[str, Any]] = {}  # index -> mapping properties
        self.docs: dict[str, dict[str, dict[str, Any]]] = {}  # alias -> id -> source
        self.overrides: list[tuple[str, str, Responder]] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.02,), daemon=True)

    def start(self) -> FakeES:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def on(self, method: str, pattern: str, responder: Responder) -> None:
        """Answer requests matching METHOD and a path regex with `responder` (None: fall through)."""
        self.overrides.insert(0, (method, pattern, responder))

    def ready(self, *, dims: int | None = None) -> None:
        """Pretend `init_indices` already ran for prefix `memscope` (and map vectors of `dims`)."""
        for kind in ("messages", "memories", "events", "meta"):
            mappings = {"properties": dict(PROPERTIES[kind])}
            self.templates[f"memscope-{kind}-template"] = {"_meta": {"version": 1}, "template": {"mappings": mappings}}
            self.aliases[f"memscope-{kind}"] = f"memscope-{kind}-v1"
            props: dict[str, Any] = dict(PROPERTIES[kind])
            if dims is not None and kind in ("messages", "memories"):
                props["embedding"] = {"type": "dense_vector", "dims": dims}
            self.indices[f"memscope-{kind}-v1"] = props

    def sent(self, pattern: str, method: str | None = None) -> list[Req]:
        """Recorded requests whose path matches `pattern` (and method, if given)."""
        return [r for r in self.requests if re.fullmatch(pattern, r.path) and method in (None, r.method)]

    # -- routing -----------------------------------------------------------------------------------

    def answer(self, req: Req) -> tuple[int, Any]:
        for method, pattern, responder in self.overrides:
            if method == req.method and re.fullmatch(pattern, req.path):
                result = responder(req)
                if result is not None:
                    return result
        return self._default(req)

    def _default(self, req: Req) -> tuple[int, Any]:
        m, path = req.method, req.path
        parts = path.strip("/").split("/")
        if path == "/":
            return 405, {"error": "Incorrect HTTP method for uri [/] and method [GET], allowed: [DELETE]"}
        if parts[0] == "_nodes":
            if parts[-1] == "plugins":
                return 200, {"nodes": {"n1": {"modules": [{"name": m} for m in self.modules]}}}
            return 200, {"nodes": {"n1": {"version": self.version}}}
        if path == "/_pit" and m == "DELETE":
            return 200, {"succeeded": True, "num_freed": 1}
        if path == "/_search":  # a point-in-time search: nothing unless a test answers
            return 200, _hits([])
        if parts[0] == "_index_template":
            if m == "DELETE":
                return (200, {"acknowledged": True}) if self.templates.pop(parts[1], None) else (404, {})
            if m == "PUT":
                self.templates[parts[1]] = req.body
                return 200, {"acknowledged": True}
            if parts[1] in self.templates:
                return 200, {"index_templates": [{"name": parts[1], "index_template": self.templates[parts[1]]}]}
            return 404, _error(404, "resource_not_found_exception", f"index template [{parts[1]}] missing")
        if parts[0] == "_alias":
            if parts[1] in self.aliases:
                return 200, {self.aliases[parts[1]]: {"aliases": {parts[1]: {}}}}
            return 404, {} if m == "HEAD" else _error(404, "aliases_not_found_exception", "missing")
        if parts[0] == "_bulk":
            return 200, self._bulk(req.body)
        if parts[0] == "_reindex":
            return 200, {"total": 0, "created": 0, "failures": []}
        if parts[0] == "_aliases":
            return 200, {"acknowledged": True}
        if len(parts) == 1 and m == "PUT":  # a new index takes the properties of the template it matches
            kind = parts[0].split("-")[-2] if parts[0].count("-") >= 2 else ""
            template = self.templates.get(f"memscope-{kind}-template", {}).get("template", {})
            self.indices[parts[0]] = dict(template.get("mappings", {}).get("properties", {}))
            for alias in (req.body or {}).get("aliases", {}):
                self.aliases[alias] = parts[0]
            return 200, {"acknowledged": True, "shards_acknowledged": True, "index": parts[0]}
        if len(parts) == 1 and m == "HEAD":
            return (200 if parts[0] in self.indices else 404), {}
        if len(parts) == 1 and m == "GET":
            return 200, {i: {} for i in self.indices if fnmatch.fnmatchcase(i, parts[0])}
        if len(parts) == 1 and m == "DELETE":
            self.indices.pop(parts[0])
            return 200, {"acknowledged": True}
        index = self.aliases.get(parts[0], parts[0])
        action = parts[1] if len(parts) > 1 else ""
        if action == "_mapping":
            if m == "PUT":
                self.indices.setdefault(index, {}).update(req.body.get("properties", {}))
                if "_meta" in req.body:
                    self.meta[index] = req.body["_meta"]
                return 200, {"acknowledged": True}
            mappings = {"properties": self.indices.get(index, {}), "_meta": self.meta.get(index, {})}
            return 200, {index: {"mappings": mappings}}
        if action == "_pit":
            return 200, {"id": f"pit-of-{parts[0]}"}
        if action == "_count":
            return 200, {"count": 0}
        if action == "_doc" and m == "GET":
            source = self.docs.get(parts[0], {}).get(parts[2])
            if source is None:
                return 404, {"_index": index, "_id": parts[2], "found": False}
            return 200, {"_index": index, "_id": parts[2], "found": True, "_source": source}
        if action == "_doc" and m == "PUT":
            self.docs.setdefault(parts[0], {})[parts[2]] = req.body
            return 201, {"_index": index, "_id": parts[2], "result": "created"}
        if action == "_mget":
            stored = self.docs.get(parts[0], {})
            return 200, {"docs": [_mget_doc(index, i, stored.get(i)) for i in req.body["ids"]]}
        if action == "_search":
            return 200, {**_hits([]), **_empty_aggs((req.body or {}).get("aggs", {}))}
        if action == "_msearch":
            return 200, {"took": 1, "responses": [_hits([]) for _ in req.body[1::2]]}
        if action == "_refresh":
            return 200, {"_shards": {"total": 1, "successful": 1, "failed": 0}}
        if action == "_delete_by_query":
            return 200, {"deleted": 0, "version_conflicts": 0, "failures": []}
        return 400, _error(400, "fake_unknown_request", f"the fake does not know {m} {path}")

    def _bulk(self, lines: list[dict[str, Any]]) -> dict[str, Any]:
        items = []
        i = 0
        while i < len(lines):
            ((op, meta),) = lines[i].items()
            source = lines[i + 1] if op != "delete" else None
            i += 1 if op == "delete" else 2
            stored = self.docs.setdefault(meta["_index"], {})
            if op in ("index", "create"):
                stored[meta["_id"]] = source
            elif op == "update" and meta["_id"] in stored:
                stored[meta["_id"]] = {**stored[meta["_id"]], **(source or {}).get("doc", {})}
            elif op == "delete":
                stored.pop(meta["_id"], None)
            status, result = {"create": (201, "created"), "index": (201, "created"), "delete": (200, "deleted")}.get(
                op, (200, "updated")
            )
            items.append({op: {"_index": meta["_index"], "_id": meta["_id"], "status": status, "result": result}})
        return {"took": 1, "errors": False, "items": items}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length).decode() if length else ""
                url = urlsplit(self.path)
                body: Any = None
                if raw and "ndjson" in (self.headers.get("Content-Type") or ""):
                    body = [json.loads(line) for line in raw.splitlines() if line.strip()]
                elif raw:
                    body = json.loads(raw)
                req = Req(
                    self.command, unquote(url.path), dict(parse_qsl(url.query)), body,
                    self.headers.get("Accept", ""), self.headers.get("Authorization", ""),
                )  # fmt: skip
                fake.requests.append(req)
                status, answer = fake.answer(req)
                data = b"" if self.command == "HEAD" else json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("X-Elastic-Product", "Elasticsearch")
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _serve

            def log_message(self, *args: object) -> None:
                pass

        return Handler


def _error(status: int, kind: str, reason: str) -> dict[str, Any]:
    cause = {"type": kind, "reason": reason}
    return {"error": {"root_cause": [cause], **cause}, "status": status}


def _mget_doc(index: str, doc_id: str, source: dict[str, Any] | None) -> dict[str, Any]:
    if source is None:
        return {"_index": index, "_id": doc_id, "found": False}
    return {"_index": index, "_id": doc_id, "found": True, "_version": 1, "_seq_no": 7, "_primary_term": 1,
            "_source": source}  # fmt: skip


def _empty_aggs(aggs: dict[str, Any]) -> dict[str, Any]:
    if not aggs:
        return {}
    return {"aggregations": {n: {"doc_count": 0} if "filter" in a else {"buckets": []} for n, a in aggs.items()}}


def _hits(hits: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "took": 1,
        "timed_out": False,
        "_shards": {"total": 1, "successful": 1, "skipped": 0, "failed": 0},
        "hits": {"total": {"value": len(hits), "relation": "eq"}, "max_score": None, "hits": hits},
    }


@pytest.fixture
def store(fake: FakeES) -> Iterator[ElasticsearchStore]:
    fake.ready(dims=3)
    es_store = ElasticsearchStore(fake.url)
    yield es_store
    es_store.close()


def _memory(content: str = "likes coffee", **kw: Any) -> MemoryNode:
    base: dict[str, Any] = {
        "id": "m1",
        "user_id": "alice",
        "content": content,
        "embedding": [0.5, 0.25, 1.0],
        "created_at": T0,
        "updated_at": T0,
    }
    return MemoryNode(**(base | kw))


def _after_init(fake: FakeES) -> list[Req]:
    init = ("/_nodes", "/_index_template", "/_alias")
    return [r for r in fake.requests if not (r.path.startswith(init) or (r.method, r.path) in _ADDED_FIELDS_CHECKS)]


_ADDED_FIELDS_CHECKS = {  # init_indices: does the index have replied_to / reflected_at?
    ("GET", "/memscope-messages/_mapping"),
    ("GET", "/memscope-memories/_mapping"),
}


# -- set-up ----------------------------------------------------------------------------------------------


def test_construction_contacts_nothing_and_store_fits_the_protocol(fake: FakeES) -> None:
    es_store = ElasticsearchStore(fake.url, index_prefix="memscope")
    assert isinstance(es_store, Store)
    assert fake.requests == []
    es_store.close()


def test_bad_prefix_is_a_validation_error(fake: FakeES) -> None:
    with pytest.raises(ValidationError, match="index_prefix"):
        ElasticsearchStore(fake.url, index_prefix="Mem*Scope")


def test_init_indices_puts_versioned_templates_then_aliased_v1_indices(fake: FakeES) -> None:
    es_store = ElasticsearchStore(fake.url)
    es_store.init_indices()
    puts = fake.sent(r"/_index_template/.+", "PUT")
    assert [r.path for r in puts] == [f"/_index_template/memscope-{k}-template" for k in
                                      ("messages", "memories", "events", "meta")]  # fmt: skip
    memories = puts[1].body
    assert memories["index_patterns"] == ["memscope-memories-v*"]
    assert memories["priority"] == 500
    assert memories["_meta"] == {"version": 1, "managed_by": "memscope", "kind": "memories"}
    settings = memories["template"]["settings"]
    assert settings["analysis"] == {  # server core only: no analysis-common on the test distribution
        "analyzer": {"memscope_text": {"type": "custom", "tokenizer": "standard", "filter": ["lowercase"]}}
    }
    assert settings["index"] == {"mapping": {"exclude_source_vectors": False}}  # a 9.2+ server
    assert memories["template"]["mappings"]["_meta"] == {"memscope": {
        "template_version": 1,
        "analysis": "core",
        "features": {"server": "9.5", "painless": False, "reindex": False, "analysis_common": False},
    }}  # fmt: skip
    props = memories["template"]["mappings"]["properties"]
    assert memories["template"]["mappings"]["dynamic"] is False
    assert props["content"] == {"type": "text", "analyzer": "memscope_text"}
    for name in ("user_id", "agent_id", "memory_type", "status", "key", "id"):
        assert props[name] == {"type": "keyword"}, name
    for name in ("created_at", "updated_at", "time_start", "time_end", "last_accessed_at"):
        assert props[name] == {"type": "date"}, name
    assert props["time_start_us"] == props["time_end_us"] == props["created_us"] == {"type": "long"}
    assert props["metadata"] == props["event_time"] == {"type": "object", "enabled": False}
    assert "embedding" not in props  # added once the embedder's dims are known
    events = puts[2].body["template"]["mappings"]["properties"]
    assert events["before"] == events["after"] == {"type": "object", "enabled": False}
    creates = [r for r in fake.requests if r.method == "PUT" and r.path.count("/") == 1]
    assert [(r.path, r.body) for r in creates] == [
        (f"/memscope-{k}-v1", {"aliases": {f"memscope-{k}": {}}}) for k in ("messages", "memories", "events", "meta")
    ]
    before = len(fake.requests)
    es_store.init_indices()  # idempotent: nothing is put or created again
    assert [r.method for r in fake.requests[before:] if r.method == "PUT"] == []
    es_store.close()


def test_full_distribution_gets_stemming_and_cjk_bigrams_and_records_its_modules() -> None:
    fake = FakeES(modules=(*FakeES.CORE_MODULES, "lang-painless", "reindex", "analysis-common")).start()
    try:
        es_store = ElasticsearchStore(fake.url)
        es_store.init_indices()
        template = fake.sent("/_index_template/memscope-messages-template", "PUT")[0].body["template"]
        assert template["settings"]["analysis"]["analyzer"]["memscope_text"]["filter"] == [
            "cjk_width", "lowercase", "porter_stem", "memscope_cjk_bigram"
        ]  # fmt: skip
        assert template["settings"]["analysis"]["filter"] == {
            "memscope_cjk_bigram": {"type": "cjk_bigram", "output_unigrams": True}
        }
        meta = template["mappings"]["_meta"]["memscope"]
        assert meta["analysis"] == "common"
        assert meta["features"] == {"server": "9.5", "painless": True, "reindex": True, "analysis_common": True}
        es_store.close()
    finally:
        fake.stop()


def test_an_8x_server_is_sent_compatible_with_8_and_a_9x_server_compatible_with_9() -> None:
    for version, major in (("8.19.21", 8), ("9.5.4", 9)):
        fake = FakeES(version=version).start()
        try:
            es_store = ElasticsearchStore(fake.url, api_key="secret-key")
            es_store.list_messages("alice")
            first, *rest = fake.requests
            assert (first.path, first.accept) == ("/_nodes/_local", "application/json")  # asked plainly
            assert first.authorization == "ApiKey secret-key"  # with the client's credentials
            assert rest and all(r.accept.endswith(f"compatible-with={major}") for r in rest), version
            es_store.close()
        finally:
            fake.stop()


def test_elasticsearch_before_9_2_gets_no_exclude_source_vectors_setting(fake: FakeES) -> None:
    fake.version = "8.19.21"
    es_store = ElasticsearchStore(fake.url)
    es_store.init_indices()
    body = fake.sent("/_index_template/memscope-messages-template", "PUT")[0].body
    assert "index" not in body["template"]["settings"]
    es_store.close()


def test_elasticsearch_9_2_keeps_vectors_in_source(fake: FakeES) -> None:
    fake.version = "9.2.1"
    es_store = ElasticsearchStore(fake.url)
    es_store.init_indices()
    body = fake.sent("/_index_template/memscope-messages-template", "PUT")[0].body
    assert body["template"]["settings"]["index"] == {"mapping": {"exclude_source_vectors": False}}
    assert "index" not in index_template("memscope", "messages")["template"]["settings"]
    es_store.close()


def test_first_use_initialises_lazily(fake: FakeES) -> None:
    es_store = ElasticsearchStore(fake.url)
    assert es_store.list_messages("alice") == []
    # the transport's version probe, then the store's feature detection (version and modules)
    assert [r.path for r in fake.requests[:3]] == ["/_nodes/_local", "/_nodes/_local", "/_nodes/plugins"]
    assert fake.sent("/memscope-messages/_search")
    es_store.close()


def test_check_embedding_model_maps_vectors_and_records_the_model(fake: FakeES) -> None:
    fake.ready()
    es_store = ElasticsearchStore(fake.url)
    es_store.check_embedding_model("mini", 3)
    mapping = {"embedding": {"type": "dense_vector", "dims": 3, "index": True, "similarity": "cosine",
                             "index_options": {"type": "hnsw"}}}  # fmt: skip
    assert [(r.path, r.body) for r in fake.sent(r".*/_mapping", "PUT")] == [
        ("/memscope-messages/_mapping", {"properties": mapping}),
        ("/memscope-memories/_mapping", {"properties": mapping}),
    ]
    record = fake.sent("/memscope-meta/_doc/embedding", "PUT")[0]
    assert record.params == {"op_type": "create", "require_alias": "true"}
    assert (record.body["model"], record.body["dim"]) == ("mini", 3)
    es_store.check_embedding_model("mini", 3)  # same model again: fine
    with pytest.raises(EmbeddingMismatch) as info:
        es_store.check_embedding_model("big", 768)
    assert "'mini' (dim 3)" in str(info.value) and "'big' (dim 768)" in str(info.value)
    assert "index_prefix" in str(info.value)
    es_store.close()


# -- searches --------------------------------------------------------------------------------------------


def _src(doc_id: str, user: str = "alice", content: str = "x") -> dict[str, Any]:
    return _memory(content, id=doc_id, user_id=user).model_dump(mode="json")


def test_memory_search_sends_knn_and_bm25_with_one_filter_and_fuses(fake: FakeES, store: ElasticsearchStore) -> None:
    def answer(req: Req) -> tuple[int, Any]:
        vector = _hits([{"_id": i, "_score": s, "_source": _src(i)} for i, s in (("a", 0.9), ("b", 0.8))])
        text = _hits([{"_id": i, "_score": s, "_source": _src(i)} for i, s in (("b", 7.0), ("c", 3.0))])
        return 200, {"took": 1, "responses": [vector, text]}

    fake.on("POST", "/memscope-memories/_msearch", answer)
    query = SearchQuery(text="coffee", embedding=[0.1, 0.2, 0.3], top_k=2, candidates=20, rrf_k=60)
    hits = store.search_memories("alice", query, MemoryFilter(agent_id="bot"))
    expected_filter = {"bool": {"filter": [
        {"term": {"user_id": "alice"}},
        {"term": {"agent_id": "bot"}},
        {"terms": {"status": ["active"]}},
    ]}}  # fmt: skip
    assert fake.sent("/memscope-memories/_msearch")[0].body == [
        {},
        {
            "size": 20,
            "knn": {"field": "embedding", "query_vector": [0.1, 0.2, 0.3], "k": 20, "num_candidates": 100,
                    "filter": expected_filter},
            "track_total_hits": False,
        },
        {},
        {
            "size": 20,
            "query": {"bool": {"must": [{"match": {"content": {"query": "coffee"}}}], "filter": [expected_filter]}},
            "track_total_hits": False,
        },
    ]  # fmt: skip
    assert [h.memory.id for h in hits] == ["b", "a"]  # b is in both channels
    assert (hits[0].vector_rank, hits[0].text_rank) == (2, 1)
    assert hits[0].score == pytest.approx(1 / 62 + 1 / 61)
    assert hits[1].vector_similarity == pytest.approx(0.8)  # ES cosine score (1 + cos) / 2 = 0.9
    assert hits[1].text_rank is None


def test_search_with_only_text_sends_only_bm25_and_empty_query_sends_nothing(
    fake: FakeES, store: ElasticsearchStore
) -> None:
    assert store.search_memories("alice", SearchQuery(text="  ")) == []
    assert fake.sent(r".*/_msearch") == []
    store.search_memories("alice", SearchQuery(text="tea", top_k=30, candidates=10))
    body = fake.sent("/memscope-memories/_msearch")[0].body
    assert len(body) == 2 and body[1]["size"] == 30 and "knn" not in body[1]


def test_search_rejects_a_query_vector_of_the_wrong_dimension(store: ElasticsearchStore) -> None:
    with pytest.raises(ValidationError, match="2 dimensions"):
        store.search_memories("alice", SearchQuery(embedding=[0.1, 0.2]))


def test_search_drops_a_hit_of_another_user(fake: FakeES, store: ElasticsearchStore) -> None:
    leaked = _hits([{"_id": "z", "_score": 5.0, "_source": _src("z", user="bob")}])
    fake.on("POST", "/memscope-memories/_msearch", lambda req: (200, {"responses": [leaked]}))
    assert store.search_memories("alice", SearchQuery(text="x")) == []


SPAN = EventTime(start=T0, end=T0 + timedelta(days=1), granularity=Granularity.DAY)


@pytest.mark.parametrize(
    ("flt", "clauses"),
    [
        (MemoryFilter(), [{"terms": {"status": ["active"]}}]),
        (
            MemoryFilter(memory_types=[MemoryType.INSIGHT, MemoryType.OBSERVATION]),
            [{"terms": {"memory_type": ["insight", "observation"]}}, {"terms": {"status": ["active"]}}],
        ),
        (
            MemoryFilter(statuses=[MemoryStatus.ACTIVE, MemoryStatus.EXPIRED]),
            [{"terms": {"status": ["active", "expired"]}}],
        ),
        (MemoryFilter(key="job"), [{"terms": {"status": ["active"]}}, {"term": {"key": "job"}}]),
        (MemoryFilter(ids=["m1", "m2"]), [{"terms": {"status": ["active"]}}, {"terms": {"id": ["m1", "m2"]}}]),
        (
            MemoryFilter(created_after=T0),
            [{"terms": {"status": ["active"]}}, {"range": {"created_us": {"gt": T0_US}}}],
        ),
        (
            MemoryFilter(time_range=SPAN),
            [
                {"terms": {"status": ["active"]}},
                {"range": {"time_start_us": {"lt": T0_US + 86_400_000_000}}},
                {"range": {"time_end_us": {"gt": T0_US}}},
            ],
        ),
        (
            MemoryFilter(time_range=EventTime(start=T0, end=T0)),  # an instant is one microsecond wide
            [
                {"terms": {"status": ["active"]}},
                {"range": {"time_start_us": {"lt": T0_US + 1}}},
                {"range": {"time_end_us": {"gt": T0_US}}},
            ],
        ),
    ],
)
def test_each_memory_filter_kind(
    fake: FakeES, store: ElasticsearchStore, flt: MemoryFilter, clauses: list[dict[str, Any]]
) -> None:
    store.list_memories("alice", flt, limit=10, offset=5)
    assert fake.sent("/memscope-memories/_search")[0].body == {
        "query": {"bool": {"filter": [{"term": {"user_id": "alice"}}, *clauses]}},
        "sort": [{"created_us": "desc"}, {"id": "desc"}],
        "size": 10,
        "from": 5,
        "track_total_hits": False,
    }


@pytest.mark.parametrize(
    ("flt", "query"),
    [
        (
            MessageFilter(pending=True, session_id="s1"),
            {"bool": {"filter": [{"term": {"user_id": "alice"}}, {"term": {"session_id": "s1"}}],
                      "must_not": [{"exists": {"field": "consolidated_at"}}]}},
        ),
        (
            MessageFilter(pending=False, agent_id="bot"),
            {"bool": {"filter": [{"term": {"user_id": "alice"}}, {"term": {"agent_id": "bot"}},
                                 {"exists": {"field": "consolidated_at"}}]}},
        ),
        (
            MessageFilter(time_range=SPAN, ids=["a"]),
            {"bool": {"filter": [{"term": {"user_id": "alice"}},
                                 {"range": {"created_us": {"gte": T0_US, "lt": T0_US + 86_400_000_000}}},
                                 {"terms": {"id": ["a"]}}]}},
        ),
    ],
)  # fmt: skip
def test_message_filters_and_search_with_pending(
    fake: FakeES, store: ElasticsearchStore, flt: MessageFilter, query: dict[str, Any]
) -> None:
    store.search_messages("alice", SearchQuery(text="hello", embedding=[1.0, 0.0, 0.0], candidates=5, top_k=5), flt)
    body = fake.sent("/memscope-messages/_msearch")[0].body
    assert body[1]["knn"]["filter"] == query
    assert body[1]["knn"]["k"] == 5
    text = {"combined_fields": {"query": "hello", "fields": ["content", "name.text"]}}
    replied = {"match": {"replied_to": {"query": "hello", "boost": 0.3}}}
    assert body[3]["query"] == {"bool": {"should": [text, replied], "minimum_should_match": 1, "filter": [query]}}
    assert body[1]["_source"] == body[3]["_source"] == {"excludes": ["embedding"]}


def test_message_text_search_covers_the_speaker_name_like_sqlite(fake: FakeES, store: ElasticsearchStore) -> None:
    store.search_messages("alice", SearchQuery(text="what did Caroline say"))
    store.search_memories("alice", SearchQuery(text="what did Caroline say"))
    [messages] = [r.body for r in fake.sent("/memscope-messages/_msearch")]
    [memories] = [r.body for r in fake.sent("/memscope-memories/_msearch")]
    own = messages[1]["query"]["bool"]["should"][0]
    assert own == {"combined_fields": {"query": "what did Caroline say", "fields": ["content", "name.text"]}}
    assert memories[1]["query"]["bool"]["must"] == [{"match": {"content": {"query": "what did Caroline say"}}}]
    mapping = index_template("memscope", "messages")["template"]["mappings"]["properties"]
    assert mapping["name"] == {"type": "keyword", "fields": {"text": {"type": "text", "analyzer": "memscope_text"}}}
    assert mapping["content"] == mapping["name"]["fields"]["text"]  # one analyzer: BM25F needs it
    assert mapping["replied_to"] == mapping["content"]


def test_list_messages_newest_first_sorts_descending(fake: FakeES, store: ElasticsearchStore) -> None:
    store.list_messages("alice", limit=3, newest_first=True)
    store.list_messages("alice", limit=3)
    newest, oldest = (r.body for r in fake.sent("/memscope-messages/_search"))
    assert newest["sort"] == [{"created_us": "desc"}, {"id": "desc"}] and newest["size"] == 3
    assert oldest["sort"] == [{"created_us": "asc"}, {"id": "asc"}]


def test_listing_beyond_the_result_window_pages_with_search_after(fake: FakeES, store: ElasticsearchStore) -> None:
    page = [{"_id": f"m{i}", "_source": Message(id=f"m{i}", user_id="alice", content="hi").model_dump(mode="json"),
             "sort": [i, f"m{i}"]} for i in range(1000)]  # fmt: skip
    answers = iter([_hits(page), _hits(page[:3])])
    fake.on("POST", "/memscope-messages/_search", lambda req: (200, next(answers)))
    assert len(store.list_messages("alice")) == 1003
    first, second = (r.body for r in fake.sent("/memscope-messages/_search"))
    assert "search_after" not in first and first["size"] == 1000
    assert second["search_after"] == [999, "m999"]
    assert first["sort"] == [{"created_us": "asc"}, {"id": "asc"}]


# -- hostile user ids ------------------------------------------------------------------------------------


def _exercise(es_store: ElasticsearchStore, user: str) -> None:
    es_store.list_memories(user, MemoryFilter(key="k"), limit=3)
    es_store.search_memories(user, SearchQuery(text="q", embedding=[1.0, 0.0, 0.0]))
    es_store.list_messages(user, MessageFilter(pending=True))
    es_store.search_messages(user, SearchQuery(text="q"))
    es_store.messages_without_embedding(user)
    es_store.touch_memories(user, ["m1"], T0)
    es_store.mark_consolidated(user, ["m1"], T0)
    es_store.get_memory(user, "m1")
    es_store.stats(user)
    es_store.delete_user(user)


@pytest.mark.parametrize("hostile", HOSTILE_IDS)
def test_hostile_user_id_is_only_ever_a_term_value(fake: FakeES, hostile: str) -> None:
    fake.ready(dims=3)
    with ElasticsearchStore(fake.url) as es_store:
        _exercise(es_store, "warm-up")  # set-up requests (init, mapping look-up) happen once
        fake.requests.clear()
        _exercise(es_store, "alice")
        benign = [(r.method, r.path, r.params, r.body) for r in fake.requests]
        fake.requests.clear()
        _exercise(es_store, hostile)
    hostile_requests = [(r.method, r.path, r.params, r.body) for r in fake.requests]
    # The requests are identical once the id is swapped back: the id never shaped a query.
    assert _swap(hostile_requests, hostile, "alice") == benign
    for _, _, _, body in hostile_requests:
        for path in _paths_of(body, hostile):
            assert path[-1] == "user_id" and (path[-2] == "term" or path[-2] == "params"), path


def _swap(value: Any, old: str, new: str) -> Any:
    if isinstance(value, str):
        return new if value == old else value
    if isinstance(value, dict):
        return {_swap(k, old, new): _swap(v, old, new) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_swap(v, old, new) for v in value)
    return value


def _paths_of(value: Any, needle: str, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    if isinstance(value, str) and value == needle:
        yield path
    elif isinstance(value, dict):
        for k, v in value.items():
            assert k != needle, f"user id used as a key at {path}"
            yield from _paths_of(v, needle, (*path, k))
    elif isinstance(value, list):
        for v in value:
            yield from _paths_of(v, needle, path)


# -- writes ----------------------------------------------------------------------------------------------


def test_add_messages_bulk_creates_and_waits_for_refresh(fake: FakeES, store: ElasticsearchStore) -> None:
    msg = Message(id="msg1", user_id="alice", session_id="s", content="我喜欢咖啡", created_at=T0)
    store.add_messages([msg])
    (bulk,) = fake.sent("/_bulk")
    assert bulk.params == {"refresh": "wait_for", "require_alias": "true"}
    assert bulk.body == [
        {"create": {"_index": "memscope-messages", "_id": "msg1"}},
        {
            "id": "msg1", "user_id": "alice", "agent_id": "default", "session_id": "s", "role": "user",
            "content": "我喜欢咖啡", "name": None, "created_at": "2024-05-01T12:00:00.123456+00:00",
            "metadata": {}, "consolidated_at": None, "created_us": T0_US, "replied_to": "",
        },
    ]  # fmt: skip
    (neighbours,) = fake.sent("/memscope-messages/_msearch")  # the stored turns before and after it
    assert [b["sort"] for b in neighbours.body[1::2]] == [
        [{"created_us": "desc"}, {"id": "desc"}], [{"created_us": "asc"}, {"id": "asc"}]
    ]
    store.add_messages([])  # nothing to send
    assert len(fake.sent("/_bulk")) == 1


def test_reply_links_combine_the_batch_with_the_stored_neighbours() -> None:
    def turn(i: int, session: str | None = "s") -> Message:
        at = T0.replace(minute=i)
        return Message(id=f"t{i}", user_id="u", session_id=session, content=f"turn {i}", created_at=at)

    stored_first, late, new, stored_last, elsewhere = turn(1), turn(2), turn(4), turn(6), turn(5, None)
    links = reply_links(
        [new, late, elsewhere],  # `late` and `new` sit between two stored turns; `elsewhere` has no session
        stored_before={late.id: stored_first, new.id: stored_first},
        stored_after={late.id: stored_last, new.id: stored_last},
    )
    assert links.replied_to == {late.id: "user: turn 1", new.id: "user: turn 2", elsewhere.id: ""}
    assert links.followers == {stored_last.id: new.id}  # the stored turn after them now replies to `new`


def test_add_messages_with_another_users_id_is_refused(fake: FakeES, store: ElasticsearchStore) -> None:
    fake.docs["memscope-messages"] = {"msg1": {"user_id": "bob"}}

    def conflict(req: Req) -> tuple[int, Any]:
        error = {"type": "version_conflict_engine_exception", "reason": "document already exists"}
        item = {"_index": "memscope-messages-v1", "_id": "msg1", "status": 409, "error": error}
        return 200, {"errors": True, "items": [{"create": item}]}

    fake.on("PUT", "/_bulk", conflict)
    with pytest.raises(ValidationError, match="msg1"):
        store.add_messages([Message(id="msg1", user_id="alice", content="hi")])
    store.add_messages([Message(id="msg1", user_id="bob", content="hi")])  # the owner: idempotent


def test_write_memories_appends_events_then_memories(fake: FakeES, store: ElasticsearchStore) -> None:
    node = _memory(event_time=SPAN, metadata={"src": "chat"})
    events = store.write_memories([node], operation="consolidate_memory", run_id="r1")
    assert [e.kind for e in events] == [EventKind.ADD]
    assert events[0].id == _event_id("m1", 0)
    (mget,) = fake.sent("/memscope-memories/_mget")
    assert mget.body == {"ids": ["m1"]}
    event_bulk, memory_bulk = fake.sent("/_bulk")
    assert event_bulk.params == {"require_alias": "true"}  # events: no refresh
    assert event_bulk.body[0] == {"index": {"_index": "memscope-events", "_id": _event_id("m1", 0)}}
    assert event_bulk.body[1]["seq"] == 0 and event_bulk.body[1]["before"] is None
    assert event_bulk.body[1]["after"]["content"] == "likes coffee"
    assert (event_bulk.body[1]["operation"], event_bulk.body[1]["run_id"]) == ("consolidate_memory", "r1")
    assert memory_bulk.params == {"refresh": "wait_for", "require_alias": "true"}
    action, doc = memory_bulk.body
    assert action == {"create": {"_index": "memscope-memories", "_id": "m1"}}  # new: create, never overwrite
    assert doc == node.model_dump(mode="json") | {
        "time_start": "2024-05-01T12:00:00.123456+00:00",
        "time_end": "2024-05-02T12:00:00.123456+00:00",
        "time_start_us": T0_US,
        "time_end_us": T0_US + 86_400_000_000,
        "created_us": T0_US,
        "event_seq": 1,
    }


def test_rewrite_identical_records_nothing_and_changes_record_the_right_kind(
    fake: FakeES, store: ElasticsearchStore
) -> None:
    store.write_memories([_memory()])
    sent = len(fake.sent("/_bulk"))
    assert store.write_memories([_memory(updated_at=T0 + timedelta(hours=1))]) == []
    assert len(fake.sent("/_bulk")) == sent  # nothing written
    (update,) = store.write_memories([_memory("likes tea")])
    assert update.kind == EventKind.UPDATE and update.before["content"] == "likes coffee"
    assert update.id == _event_id("m1", 1)
    (expire,) = store.write_memories([_memory("likes tea", status=MemoryStatus.EXPIRED)])
    assert expire.kind == EventKind.EXPIRE
    history = store.history("alice", "m1")
    assert [e.kind for e in history] == [EventKind.ADD, EventKind.UPDATE, EventKind.EXPIRE]
    assert store.history("bob", "m1") == []
    assert fake.sent("/memscope-events/_mget")[-1].body == {"ids": [_event_id("m1", s) for s in range(3)]}


def test_write_memory_of_another_user_is_refused_before_any_write(fake: FakeES, store: ElasticsearchStore) -> None:
    fake.docs["memscope-memories"] = {"m1": _src("m1", user="bob")}
    with pytest.raises(ValidationError, match="another user"):
        store.write_memories([_memory()])
    assert fake.sent("/_bulk") == []
    assert store.get_memory("alice", "m1") is None
    assert store.get_memory("bob", "m1") is not None


def test_write_memories_rejects_vectors_of_another_dimension(fake: FakeES, store: ElasticsearchStore) -> None:
    with pytest.raises(ValidationError, match="dimension"):
        store.write_memories([_memory(embedding=[1.0, 2.0])])
    assert fake.sent("/_bulk") == []


def test_partial_bulk_failure_retries_429_and_raises_on_400(fake: FakeES, store: ElasticsearchStore) -> None:
    store.bulk_backoff_s = 0.0
    calls: list[list[dict[str, Any]]] = []

    def flaky(req: Req) -> tuple[int, Any]:
        calls.append(req.body)
        ids = [line["create"]["_id"] for line in req.body[::2]]
        if len(calls) == 1:
            items = [
                {"create": {"_id": ids[0], "status": 429,
                            "error": {"type": "es_rejected_execution_exception", "reason": "queue full"}}},
                {"create": {"_id": ids[1], "status": 400,
                            "error": {"type": "mapper_parsing_exception", "reason": "bad field"}}},
                {"create": {"_id": ids[2], "status": 201, "result": "created"}},
            ]  # fmt: skip
        else:
            items = [{"create": {"_id": i, "status": 201, "result": "created"}} for i in ids]
        return 200, {"errors": len(calls) == 1, "items": items}

    fake.on("PUT", "/_bulk", flaky)
    batch = [Message(id=f"msg{i}", user_id="alice", content="hi") for i in range(3)]
    with pytest.raises(StoreError) as info:
        store.add_messages(batch)
    assert not isinstance(info.value, StoreUnavailable)
    assert "msg1: 400 mapper_parsing_exception bad field" in str(info.value)
    assert "msg0" not in str(info.value)
    assert len(calls) == 2 and [line for line in calls[1][::2]] == [
        {"create": {"_index": "memscope-messages", "_id": "msg0"}}
    ]


def test_bulk_items_still_rejected_after_retries_raise_store_unavailable(
    fake: FakeES, store: ElasticsearchStore
) -> None:
    store.bulk_backoff_s = 0.0
    rejected = {"status": 429, "error": {"type": "es_rejected_execution_exception", "reason": "queue full"}}
    fake.on("PUT", "/_bulk", lambda req: (200, {"errors": True, "items": [
        {"update": {"_id": line["update"]["_id"], **rejected}} for line in req.body[::2]]}))  # fmt: skip
    fake.docs["memscope-memories"] = {"m1": _src("m1")}
    with pytest.raises(StoreUnavailable, match="m1: 429"):
        store.touch_memories("alice", ["m1"], T0)
    assert len(fake.sent("/_bulk")) == 3  # first try and two retries


def test_updates_are_partial_documents_guarded_by_seq_no(fake: FakeES, store: ElasticsearchStore) -> None:
    fake.docs["memscope-messages"] = {
        "a": {"user_id": "alice"},
        "b": {"user_id": "alice", "consolidated_at": "2024-01-01T00:00:00+00:00"},  # already: left alone
        "c": {"user_id": "bob"},  # another user's: left alone
    }
    assert store.mark_consolidated("alice", ["a", "b", "a", "c", "missing"], T0) == 1
    (mget,) = fake.sent("/memscope-messages/_mget")
    assert mget.body == {"ids": ["a", "b", "c", "missing"]}
    assert mget.params == {"_source_includes": "user_id,consolidated_at"}
    (bulk,) = fake.sent("/_bulk")
    assert bulk.params["refresh"] == "wait_for"
    assert bulk.body == [
        {"update": {"_index": "memscope-messages", "_id": "a", "if_seq_no": 7, "if_primary_term": 1}},
        {"doc": {"consolidated_at": "2024-05-01T12:00:00.123456+00:00"}},
    ]
    assert not any("script" in str(r.body) for r in fake.requests)
    with pytest.raises(ValidationError, match="timezone-aware"):
        store.mark_consolidated("alice", ["a"], datetime(2024, 1, 1))


def test_a_seq_no_conflict_rereads_and_retries(fake: FakeES, store: ElasticsearchStore) -> None:
    fake.docs["memscope-memories"] = {"m1": {**_src("m1"), "access_count": 2}}
    conflicted = {"status": 409, "error": {"type": "version_conflict_engine_exception", "reason": "seqNo moved"}}
    answers = iter([{"errors": True, "items": [{"update": {"_id": "m1", **conflicted}}]}])
    fake.on("PUT", "/_bulk", lambda req: (200, next(answers)) if len(fake.sent("/_bulk")) == 1 else None)
    store.touch_memories("alice", ["m1"], T0)
    first, second = fake.sent("/_bulk")
    assert first.body[1] == second.body[1] == {"doc": {"access_count": 3, "last_accessed_at": T0.isoformat()}}
    assert len(fake.sent("/memscope-memories/_mget")) == 2  # read again before the second try
    assert fake.docs["memscope-memories"]["m1"]["access_count"] == 3


def test_set_message_embeddings_updates_with_vectors_and_waits(fake: FakeES, store: ElasticsearchStore) -> None:
    fake.docs["memscope-messages"] = {"msg1": {"user_id": "alice"}, "msg2": {"user_id": "bob"}}
    store.set_message_embeddings("alice", {"msg1": [1, 0, 0], "msg2": [0, 1, 0]})
    (bulk,) = fake.sent("/_bulk")
    assert bulk.params["refresh"] == "wait_for"
    assert bulk.body == [
        {"update": {"_index": "memscope-messages", "_id": "msg1", "if_seq_no": 7, "if_primary_term": 1}},
        {"doc": {"embedding": [1.0, 0.0, 0.0]}},
    ]
    with pytest.raises(ValidationError, match="dimension"):
        store.set_message_embeddings("alice", {"msg1": [1.0]})


def test_messages_without_embedding_query(fake: FakeES, store: ElasticsearchStore) -> None:
    store.messages_without_embedding("alice", limit=7)
    assert fake.sent("/memscope-messages/_search")[0].body == {
        "query": {"bool": {"filter": [{"term": {"user_id": "alice"}}],
                           "must_not": [{"exists": {"field": "embedding"}}]}},
        "sort": [{"created_us": "asc"}, {"id": "asc"}],
        "size": 7,
        "track_total_hits": False,
        "_source": {"excludes": ["embedding"]},
    }  # fmt: skip


# -- users -----------------------------------------------------------------------------------------------


def test_delete_user_walks_a_point_in_time_and_deletes_in_bulk(fake: FakeES, store: ElasticsearchStore) -> None:
    indices = "memscope-messages,memscope-memories,memscope-events"
    page = [{"_index": "memscope-messages-v1", "_id": "msg1", "sort": [1]},
            {"_index": "memscope-memories-v1", "_id": "m1", "sort": [2]}]  # fmt: skip
    pages = iter([page, []])
    fake.on("POST", "/_search", lambda req: (200, {**_hits(next(pages)), "pit_id": "pit-2"}))
    assert store.delete_user("alice") == 2
    user = {"bool": {"filter": [{"term": {"user_id": "alice"}}]}}
    assert [(r.method, r.path) for r in _after_init(fake)] == [
        ("POST", f"/{indices}/_refresh"), ("POST", f"/{indices}/_pit"), ("POST", "/_search"), ("PUT", "/_bulk"),
        ("POST", "/_search"), ("DELETE", "/_pit"), ("POST", f"/{indices}/_refresh"), ("POST", f"/{indices}/_count"),
    ]  # fmt: skip
    first, second = fake.sent("/_search")
    assert first.body == {"pit": {"id": f"pit-of-{indices}", "keep_alive": "1m"}, "query": user,
                          "sort": [{"_shard_doc": "asc"}], "size": 1000, "_source": False,
                          "track_total_hits": False}  # fmt: skip
    assert second.body["search_after"] == [2] and second.body["pit"]["id"] == "pit-2"
    (bulk,) = fake.sent("/_bulk")
    assert bulk.body == [{"delete": {"_index": "memscope-messages-v1", "_id": "msg1"}},
                         {"delete": {"_index": "memscope-memories-v1", "_id": "m1"}}]  # fmt: skip
    assert bulk.params == {"require_alias": "false"}  # hits name concrete indices
    assert fake.sent("/_pit", "DELETE")[0].body == {"id": "pit-2"}
    assert fake.sent(f"/{indices}/_count")[0].body == {"query": user}


def test_users_with_pending_and_stats(fake: FakeES, store: ElasticsearchStore) -> None:
    def pending(req: Req) -> tuple[int, Any]:
        if "pairs" in req.body.get("aggs", {}):
            buckets = [{"key": {"user_id": "alice", "agent_id": "default"}, "doc_count": 2}]
            return 200, {**_hits([]), "aggregations": {"pairs": {"buckets": buckets}}}
        return 200, {**_hits([]), "hits": {"total": {"value": 9, "relation": "eq"}, "hits": []},
                     "aggregations": {"pending": {"doc_count": 2}}}  # fmt: skip

    fake.on("POST", "/memscope-messages/_search", pending)
    insight = {"key": "active", "doc_count": 3, "type": {"buckets": [{"key": "insight", "doc_count": 3}]}}
    by_status = {**_hits([]), "aggregations": {"status": {"buckets": [insight]}}}
    fake.on("POST", "/memscope-memories/_search", lambda req: (200, by_status))
    assert store.users_with_pending(limit=10) == [("alice", "default")]
    assert fake.sent("/memscope-messages/_search")[0].body == {
        "size": 0,
        "query": {"bool": {"must_not": [{"exists": {"field": "consolidated_at"}}]}},
        "aggs": {"pairs": {"composite": {"size": 10, "sources": [
            {"user_id": {"terms": {"field": "user_id"}}}, {"agent_id": {"terms": {"field": "agent_id"}}}]}}},
    }  # fmt: skip
    stats = store.stats("alice")
    assert (stats.total_messages, stats.pending_messages) == (9, 2)
    assert stats.memories == {"active": {"insight": 3}}


def test_migrate_copies_under_a_point_in_time_and_moves_the_alias_atomically(
    fake: FakeES, store: ElasticsearchStore
) -> None:
    pages = {"memscope-memories": iter([[{"_id": "m1", "_source": _src("m1"), "sort": ["m1", 4]}], []])}

    def page(req: Req) -> tuple[int, Any]:
        kind = req.body["pit"]["id"].removeprefix("pit-of-").removesuffix("-v1")
        return 200, _hits(next(pages[kind], []) if kind in pages else [])

    fake.on("POST", "/_search", page)
    seen: list[tuple[str, int, int]] = []
    moved = store.migrate(2, progress=lambda kind, done, total: seen.append((kind, done, total)))
    assert moved[1] == ("memories", "memscope-memories-v1", "memscope-memories-v2")
    assert len(moved) == 4
    template = fake.sent("/_index_template/memscope-memories-template", "PUT")[0].body
    assert template["_meta"]["version"] == 2
    create = next(r for r in fake.requests if r.method == "PUT" and r.path == "/memscope-memories-v2")
    assert create.body == {"mappings": {"properties": {"embedding": {"type": "dense_vector", "dims": 3}}}}
    assert fake.sent("/_reindex") == []
    search = next(r for r in fake.sent("/_search") if r.body["pit"]["id"] == "pit-of-memscope-memories-v1")
    assert search.body["sort"] == [
        {"id": {"order": "asc", "missing": "_first", "unmapped_type": "keyword"}}, {"_shard_doc": "asc"}
    ]  # fmt: skip
    assert search.body["query"] == {"match_all": {}}
    copy = next(r for r in fake.sent("/_bulk") if r.body[0]["index"]["_index"] == "memscope-memories-v2")
    assert copy.body == [{"index": {"_index": "memscope-memories-v2", "_id": "m1"}}, _src("m1")]
    assert fake.meta["memscope-memories-v2"]["memscope"] == {"copied_after": "m1", "copied": 1}  # checkpoint
    assert ("memories", 1, 0) in seen  # the count answered 0: the fake's
    assert fake.sent("/_aliases")[1].body == {"actions": [
        {"remove": {"index": "memscope-memories-v1", "alias": "memscope-memories"}},
        {"add": {"index": "memscope-memories-v2", "alias": "memscope-memories"}},
    ]}  # fmt: skip
    assert fake.sent(r"/memscope-.*-v1", "DELETE") == []  # the old index is kept


def test_migrate_resumes_after_the_checkpointed_id(fake: FakeES, store: ElasticsearchStore) -> None:
    fake.indices["memscope-memories-v2"] = {}
    fake.meta["memscope-memories-v2"] = {"memscope": {"copied_after": "m5", "copied": 5}}
    store.migrate(2)
    search = next(r for r in fake.sent("/_search") if r.body["pit"]["id"] == "pit-of-memscope-memories-v1")
    assert search.body["query"] == {"range": {"id": {"gt": "m5"}}}
    assert fake.sent("/memscope-memories-v1/_count")[0].body == {"query": {"range": {"id": {"gt": "m5"}}}}


def test_delete_indices_names_each_index(fake: FakeES, store: ElasticsearchStore) -> None:
    fake.indices["memscope-memories-v2"] = {}
    fake.indices["memscope-other-v1"] = {}
    assert store.delete_indices() == [
        "memscope-messages-v1", "memscope-memories-v1", "memscope-memories-v2", "memscope-events-v1", "memscope-meta-v1"
    ]  # fmt: skip
    assert [r.path for r in fake.requests if r.method == "DELETE" and "*" in r.path] == []
    assert list(fake.indices) == ["memscope-other-v1"] and fake.templates == {}


# -- errors ----------------------------------------------------------------------------------------------


def test_connection_refused_is_store_unavailable() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    es_store = ElasticsearchStore(f"http://127.0.0.1:{port}", request_timeout_s=2.0)
    with pytest.raises(StoreUnavailable, match=f"127.0.0.1:{port}") as info:
        es_store.list_messages("alice")
    import elasticsearch

    assert isinstance(info.value.__cause__, elasticsearch.ConnectionError)
    es_store.close()


@pytest.mark.parametrize(
    ("status", "error", "match"),
    [
        (400, StoreError, "rejected a request \\(400\\)"),
        (401, StoreError, "api_key or username/password"),
        (503, StoreUnavailable, "overloaded or failing \\(503\\)"),
    ],
)
def test_api_errors_map_at_the_boundary(
    fake: FakeES, store: ElasticsearchStore, status: int, error: type[Exception], match: str
) -> None:
    fake.on("POST", "/memscope-memories/_search", lambda req: (status, _error(status, "some_exception", "no")))
    with pytest.raises(error, match=match) as info:
        store.list_memories("alice")
    if error is StoreError:
        assert not isinstance(info.value, StoreUnavailable)
    assert info.value.__cause__ is not None


def test_missing_client_package_gives_the_install_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "elasticsearch", None)
    with pytest.raises(StoreError, match="pip install"):
        ElasticsearchStore("http://127.0.0.1:9200")


def test_invalid_user_id_is_a_validation_error(fake: FakeES, store: ElasticsearchStore) -> None:
    with pytest.raises(ValidationError):
        store.list_memories("")
    with pytest.raises(ValidationError):
        store.get_memory("a\x00b", "m1")
    assert fake.requests == []


def test_an_index_made_before_reflected_at_gets_the_field_mapped_in_place(fake: FakeES) -> None:
    fake.ready()
    del fake.indices["memscope-memories-v1"]["reflected_at"]  # as an index created by an older memscope
    fake.templates["memscope-memories-template"]["template"]["mappings"]["properties"].pop("reflected_at")
    es_store = ElasticsearchStore(fake.url)
    es_store.init_indices()
    assert [(r.path, r.body) for r in fake.sent(r".*/_mapping", "PUT")] == [
        ("/memscope-memories/_mapping", {"properties": {"reflected_at": {"type": "date"}}})
    ]
    assert [r.path for r in fake.sent(r"/_index_template/.+", "PUT")] == ["/_index_template/memscope-memories-template"]
    es_store.close()


def test_migrate_moves_a_legacy_reflected_at_out_of_metadata() -> None:
    legacy = {"id": "m1", "metadata": {"src": "chat", "reflected_at": "2024-03-01T08:00:00+00:00"}}
    assert upgraded_source("memories", legacy) == {
        "id": "m1", "metadata": {"src": "chat"}, "reflected_at": "2024-03-01T08:00:00+00:00"
    }
    assert upgraded_source("messages", {"metadata": {"reflected_at": "x"}}) == {"metadata": {"reflected_at": "x"}}
    doc = q.memory_doc(_memory(), 0) | {"metadata": {"reflected_at": "2024-03-01T08:00:00+00:00"}}
    node = q.doc_to_memory(doc)
    assert node.reflected_at == datetime(2024, 3, 1, 8, tzinfo=UTC) and node.metadata == {}


def test_reflected_filter_is_an_exists_clause() -> None:
    reflected = q.memory_filter("u", MemoryFilter(reflected=True))["bool"]
    assert reflected["filter"][-1] == {"exists": {"field": "reflected_at"}}
    unreflected = q.memory_filter("u", MemoryFilter(reflected=False))["bool"]
    assert unreflected["must_not"] == [{"exists": {"field": "reflected_at"}}]
