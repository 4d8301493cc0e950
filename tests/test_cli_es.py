"""`memscope es init|migrate` against the live Elasticsearch (fresh index prefix per test)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from memscope.cli import app
from memscope.errors import StoreError
from memscope.stores import es_admin
from memscope.stores import es_queries as q
from memscope.stores.base import MessageFilter, SearchQuery
from memscope.stores.elasticsearch import ElasticsearchStore
from memscope.stores.testing import DIM, T0, basis, memory, message, uid
from tests.support.es import es_prefix

pytestmark = pytest.mark.integration
runner = CliRunner()


@pytest.fixture
def live(tmp_path: Path) -> Iterator[tuple[ElasticsearchStore, Path]]:
    """A store on fresh indices of the live server, and a config file naming the same indices."""
    with es_prefix("cli") as (url, prefix):
        config = tmp_path / "es.yaml"
        es = f"{{url: '{url}', index_prefix: {prefix}}}"
        config.write_text(f"store: {{backend: elasticsearch, elasticsearch: {es}}}\n")
        with ElasticsearchStore(url, index_prefix=prefix, refresh="true") as store:
            yield store, config


def _indices(store: ElasticsearchStore) -> dict[str, str]:
    client = store._es()
    return {kind: next(iter(client.indices.get_alias(name=store.alias(kind)))) for kind in es_admin.KINDS}


def _seed(store: ElasticsearchStore, n: int) -> str:
    user = uid("mig")
    store.check_embedding_model("test-embed", DIM)
    store.add_messages([message(user, f"message {i} about coffee") for i in range(n)])
    store.write_memories([memory(user, f"memory {i} about coffee", embedding=basis(i % DIM)) for i in range(n)])
    return user


def test_es_init_creates_aliased_indices_once_and_records_the_servers_features(live) -> None:  # type: ignore[no-untyped-def]
    store, config = live
    result = runner.invoke(app, ["es", "init", "--config", str(config)])
    assert result.exit_code == 0, result.output
    features = store.features()
    assert f"ready on Elasticsearch {features.version[0]}.{features.version[1]}" in result.output
    assert _indices(store) == {k: f"{store.index_prefix}-{k}-v1" for k in es_admin.KINDS}
    index = f"{store.index_prefix}-memories-v1"
    meta = store._es().indices.get_mapping(index=index)[index]["mappings"]["_meta"]["memscope"]
    assert meta["features"] == features.as_meta()
    assert meta["analysis"] == ("common" if features.analysis_common else "core")
    again = runner.invoke(app, ["es", "init", "--config", str(config)])
    assert again.exit_code == 0 and _indices(store) == {k: f"{store.index_prefix}-{k}-v1" for k in es_admin.KINDS}


def test_es_init_fills_replied_to_on_messages_written_without_it(live) -> None:  # type: ignore[no-untyped-def]
    store, config = live
    user = uid("old")
    turns = [message(user, f"turn {i}", session_id="s", created_at=T0 + timedelta(minutes=i)) for i in range(3)]
    operations: list[dict[str, Any]] = []
    for m in turns:  # as a memscope before replied_to wrote them
        operations += [{"create": {"_index": store.alias("messages"), "_id": m.id}}, q.message_doc(m)]
    assert not store._es().bulk(operations=operations, refresh="true")["errors"]
    result = runner.invoke(app, ["es", "init", "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert "filled replied_to (the turn replied to, for BM25) on 3 message(s)" in result.output
    hits = store.search_messages(user, SearchQuery(text="turn 1"))
    assert [h.message.id for h in hits][:2] == [turns[1].id, turns[2].id]
    again = runner.invoke(app, ["es", "init", "--config", str(config)])
    assert again.exit_code == 0 and "filled" not in again.output


def test_es_migrate_copies_everything_and_moves_every_alias(live) -> None:  # type: ignore[no-untyped-def]
    store, config = live
    user = _seed(store, 30)
    result = runner.invoke(app, ["es", "migrate", "2", "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert f"memories: {store.index_prefix}-memories-v1 -> {store.index_prefix}-memories-v2" in result.output
    assert _indices(store) == {k: f"{store.index_prefix}-{k}-v2" for k in es_admin.KINDS}
    assert len(store.list_messages(user, MessageFilter())) == 30
    assert len(store.list_memories(user)) == 30
    hits = store.search_memories(user, SearchQuery(embedding=basis(0), top_k=3))
    assert len(hits) == 3 and all(h.vector_similarity and h.vector_similarity > 0.99 for h in hits)  # vectors came
    assert all(len(store.history(user, m.id)) == 1 for m in store.list_memories(user))
    store.check_embedding_model("test-embed", DIM)  # the model record came along
    assert store._es().indices.exists(index=f"{store.index_prefix}-memories-v1")  # old kept for rollback
    again = runner.invoke(app, ["es", "migrate", "2", "--config", str(config)])
    assert again.exit_code == 0 and "nothing to do" in again.output


def test_an_interrupted_migration_resumes_after_its_checkpoint(live, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    store, _ = live
    user = _seed(store, 25)
    monkeypatch.setattr(es_admin, "COPY_PAGE", 10)
    seen: list[tuple[str, int, int]] = []

    def crash_after_a_page(kind: str, done: int, total: int) -> None:
        seen.append((kind, done, total))
        if kind == "memories" and done == 10:
            raise StoreError("simulated crash")

    with pytest.raises(StoreError, match="simulated"):
        store.migrate(2, progress=crash_after_a_page)
    assert _indices(store)["memories"].endswith("-v1")  # the alias did not move
    resumed: list[tuple[str, int, int]] = []
    store.migrate(2, progress=lambda kind, done, total: resumed.append((kind, done, total)))
    assert next(r for r in resumed if r[0] == "memories") == ("memories", 10, 25)  # started after the checkpoint
    assert len(store.list_memories(user)) == 25
    assert _indices(store)["memories"].endswith("-v2")
