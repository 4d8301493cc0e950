"""What the Elasticsearch store sends for per-user leases, fencing and its identity, captured from the
real `elasticsearch` client against the recording fake of `test_es_bodies` (meta documents versioned
with `_seq_no`, honouring `op_type=create` and `if_seq_no`/`if_primary_term` as Elasticsearch does)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from memscope.errors import LeaseLost
from memscope.models import MemoryNode
from memscope.stores.base import Fence
from memscope.stores.elasticsearch import ElasticsearchStore
from memscope.stores.es_leases import lease_doc_id
from tests.stores.test_es_bodies import FakeES, Req

pytestmark = pytest.mark.unit

META = r"/memscope-meta/(_doc|_create)/(.+)"


class VersionedMeta:
    """The meta index's documents with sequence numbers and Elasticsearch's conditional-write rules."""

    def __init__(self) -> None:
        self.docs: dict[str, tuple[int, dict[str, Any]]] = {}
        self.seq = 0

    def __call__(self, req: Req) -> tuple[int, Any]:
        doc_id = req.path.rsplit("/", 1)[1]
        stored = self.docs.get(doc_id)
        if req.method == "GET":
            if stored is None:
                return 404, {"_index": "memscope-meta-v1", "_id": doc_id, "found": False}
            return 200, {"_index": "memscope-meta-v1", "_id": doc_id, "found": True, "_seq_no": stored[0],
                         "_primary_term": 1, "_source": stored[1]}
        create = req.params.get("op_type") == "create" or "/_create/" in req.path
        conflict = (create and stored is not None) or (
            "if_seq_no" in req.params and (stored is None or int(req.params["if_seq_no"]) != stored[0])
        )
        if conflict:
            return 409, {"error": {"type": "version_conflict_engine_exception", "reason": "conflict"}, "status": 409}
        self.seq += 1
        self.docs[doc_id] = (self.seq, req.body)
        return 201, {"_index": "memscope-meta-v1", "_id": doc_id, "result": "created", "_seq_no": self.seq,
                     "_primary_term": 1}


@pytest.fixture
def meta(fake: FakeES) -> VersionedMeta:
    versioned = VersionedMeta()
    for method in ("GET", "PUT", "POST"):
        fake.on(method, META, versioned)
    return versioned


@pytest.fixture
def store(fake: FakeES, meta: VersionedMeta) -> Iterator[ElasticsearchStore]:
    fake.ready(dims=3)
    es_store = ElasticsearchStore(fake.url)
    yield es_store
    es_store.close()


def writes(fake: FakeES) -> list[Req]:
    return [r for r in fake.sent(META) if r.method in ("PUT", "POST")]


def test_acquire_creates_the_lease_document_only_if_absent(fake: FakeES, store: ElasticsearchStore) -> None:
    assert store.acquire_lease("ann", "job-a", 30) == 1
    (create,) = writes(fake)
    assert create.path.endswith(lease_doc_id("ann")) and "ann" not in create.path  # hashed id
    assert create.params.get("op_type") == "create" or "/_create/" in create.path
    assert create.params["require_alias"] == "true"
    assert (create.body["user_id"], create.body["holder"], create.body["token"]) == ("ann", "job-a", 1)


def test_a_live_lease_of_another_holder_is_not_taken(fake: FakeES, store: ElasticsearchStore) -> None:
    assert store.acquire_lease("ann", "job-a", 30) == 1
    assert store.acquire_lease("ann", "job-b", 30) is None
    assert len(writes(fake)) == 1  # refused on the read: nothing written


def test_taking_over_an_expired_lease_is_conditional_and_raises_the_token(
    fake: FakeES, store: ElasticsearchStore, meta: VersionedMeta
) -> None:
    assert store.acquire_lease("ann", "job-a", 30) == 1
    store.release_lease("ann", 1)
    release = writes(fake)[-1]
    assert release.body["expires_us"] == 0 and release.params["if_seq_no"] == "1"
    assert store.acquire_lease("ann", "job-b", 30) == 2
    takeover = writes(fake)[-1]
    assert (takeover.params["if_seq_no"], takeover.params["if_primary_term"]) == ("2", "1")
    assert (takeover.body["holder"], takeover.body["token"]) == ("job-b", 2)
    assert not store.renew_lease("ann", 1, 30)  # the old holder's token is gone


def test_losing_the_race_for_a_lease_is_none(fake: FakeES, store: ElasticsearchStore, meta: VersionedMeta) -> None:
    assert store.acquire_lease("ann", "job-a", 30) == 1
    store.release_lease("ann", 1)

    def sneak_in(req: Req) -> tuple[int, Any] | None:  # another process writes between our read and write
        if req.method == "PUT" and "if_seq_no" in req.params:
            meta.seq += 1
            _, source = meta.docs[lease_doc_id("ann")]
            meta.docs[lease_doc_id("ann")] = (meta.seq, {**source, "holder": "job-c", "token": 2})
        return None

    fake.on("PUT", META, sneak_in)
    assert store.acquire_lease("ann", "job-b", 30) is None


def test_fenced_writes_check_the_token_before_any_bulk(fake: FakeES, store: ElasticsearchStore) -> None:
    assert store.acquire_lease("ann", "job-a", 30) == 1
    store.release_lease("ann", 1)
    assert store.acquire_lease("ann", "job-b", 30) == 2
    node = MemoryNode(user_id="ann", content="likes tea")
    with pytest.raises(LeaseLost, match="token 1"):
        store.write_memories([node], fence=Fence("ann", 1))
    with pytest.raises(LeaseLost):
        store.mark_consolidated("ann", ["m1"], datetime(2024, 1, 1, tzinfo=UTC), fence=Fence("ann", 1))
    assert fake.sent("/_bulk") == []
    store.write_memories([node], fence=Fence("ann", 2))
    assert len(fake.sent("/_bulk")) == 2  # events, then memories


def test_store_id_is_created_once(fake: FakeES, store: ElasticsearchStore) -> None:
    first = store.store_id()
    assert first and store.store_id() == first
    (create,) = [r for r in writes(fake) if r.path.endswith("/store_id")]
    assert create.body == {"store_id": first}
    assert ElasticsearchStore(fake.url).store_id() == first  # another process reads the same identity
