"""Celery workers consolidating against a live Elasticsearch: the distributed mode end to end, and
the store's faults: the server stopped during `add_messages` and during a consolidation."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from memscope.api import MemoryScope
from memscope.errors import StoreUnavailable
from memscope.jobs.base import JobState
from memscope.stores.elasticsearch import ElasticsearchStore
from tests.jobs.conftest import (
    Processes,
    consolidation_problems,
    free_port,
    start_model_server,
    start_worker,
    wait_for,
    write_config,
)
from tests.support.es import EsNode, es_prefix, fresh_prefix

pytestmark = [pytest.mark.integration, pytest.mark.slow]
USERS = [f"es-user-{n}" for n in range(3)]


def es_store_config(url: str, prefix: str) -> dict[str, object]:
    return {"store": {"backend": "elasticsearch", "elasticsearch": {"url": url, "index_prefix": prefix}}}


def add_notes(memory: MemoryScope, user: str, start: int, count: int) -> None:
    notes = [f"{user} note {i}: I keep item {user}-{i} in my shed" for i in range(start, start + count)]
    memory.add_messages(user, notes)


def pending(memory: MemoryScope, users: list[str]) -> int:
    return sum(len(memory.list_messages(u, pending=True)) for u in users)


def problems(memory: MemoryScope, users: list[str], per_user: int) -> list[str]:
    return [p for u in users for p in consolidation_problems(memory.runtime.store, u, per_user)]


@pytest.mark.timeout(240)
def test_a_celery_worker_consolidates_every_message_into_elasticsearch(
    tmp_path: Path, procs: Processes, namespace: str
) -> None:
    with es_prefix("celery") as (url, prefix):
        model = start_model_server(procs, latency=0.01)
        config = write_config(tmp_path, namespace, model.url, **es_store_config(url, prefix))
        start_worker(procs, "w1", config, namespace)
        with MemoryScope(config, background=False) as memory:
            assert isinstance(memory.runtime.store, ElasticsearchStore)
            for start in (0, 6):
                for user in USERS:
                    add_notes(memory, user, start, 6)
            wait_for(lambda: pending(memory, USERS) == 0, 150, "all 36 messages to be consolidated", procs.logs)
            assert problems(memory, USERS, 12) == []
            found = memory.retrieve(USERS[0], f"where is item {USERS[0]}-3?")
            assert any(f"{USERS[0]}-3" in item.content for item in found.items)
            assert all(USERS[1] not in item.content for item in found.items)


# -- faults on a private node ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def node() -> Iterator[EsNode]:
    """A node of this module's own, so stopping it never disturbs the shared server."""
    private = EsNode(free_port()).start()
    try:
        yield private
    finally:
        private.stop(purge=True)


@pytest.mark.timeout(300)
def test_server_stopped_during_add_messages_is_a_clear_error_and_a_retry_works(node: EsNode, tmp_path: Path) -> None:
    node.start()
    secret_url = node.url.replace("http://", "http://elastic:s3cret@")
    prefix = fresh_prefix("fault")
    cfg = {**es_store_config(secret_url, prefix), "llm": {"backend": "none"}}
    with MemoryScope(cfg, background=False) as memory:
        memory.add_messages("pat", "first, while the server runs")
        node.stop()
        with pytest.raises(StoreUnavailable) as info:
            memory.add_messages("pat", ["second", "third"])
        text = str(info.value)
        assert "http://elastic:***@127.0.0.1" in text and "s3cret" not in text
        assert "MEMSCOPE_ES_URL" in text
        node.start()
        first = "first, while the server runs"
        assert [m.content for m in memory.list_messages("pat")] == [first]  # nothing half-written
        memory.add_messages("pat", ["second", "third"])  # the same call, simply retried
        assert [m.content for m in memory.list_messages("pat")] == [first, "second", "third"]
        memory.runtime.store.delete_indices()  # type: ignore[attr-defined]


@pytest.mark.timeout(400)
def test_server_restarted_during_a_celery_consolidation_consolidates_each_message_once(
    node: EsNode, tmp_path: Path, procs: Processes, namespace: str
) -> None:
    node.start()
    prefix = fresh_prefix("fault")
    model = start_model_server(procs, latency=0.3)  # slow model: the job is mid-way when the server stops
    jobs = {"celery": {"max_retries": 40, "lock_ttl_s": 8}, "sweep_interval_s": 60}  # retries outlast a restart
    config = write_config(tmp_path, namespace, model.url, **es_store_config(node.url, prefix), jobs=jobs)
    start_worker(procs, "w1", config, namespace)
    with MemoryScope(config, background=False) as memory:
        add_notes(memory, "quinn", 0, 10)
        wait_for(lambda: any(r.state is JobState.RUNNING for r in memory.jobs.status()), 60, "the job to run",
                 procs.logs)
        node.stop()
        node.start()
        wait_for(lambda: pending(memory, ["quinn"]) == 0, 240, "the retried job to consolidate everything",
                 procs.logs)
        assert problems(memory, ["quinn"], 10) == []
        records = wait_for(lambda: [r for r in memory.jobs.status() if r.state is JobState.SUCCEEDED], 60,
                           "the job record to be final", procs.logs)
        assert records[0].attempts >= 2, records  # it failed while the server was down, then was retried
        memory.runtime.store.delete_indices()  # type: ignore[attr-defined]
