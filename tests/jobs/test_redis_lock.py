"""The per-user Redis lock against a real Redis (DB 13, keys under this test's own prefix)."""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Iterator

import pytest
import redis

from memscope.jobs.redis_lock import RedisLock, hashed_key
from tests.jobs.conftest import REDIS_URL, redis_client

pytestmark = pytest.mark.integration


@pytest.fixture
def client() -> Iterator[redis.Redis]:
    c = redis_client()
    yield c
    c.close()


def _contend(namespace: str, rounds: int) -> None:
    """Take the lock `rounds` times; inside, count how many holders there are (must always be 1)."""
    client = redis.Redis.from_url(REDIS_URL)
    inside, done, overlaps = f"{namespace}:inside", f"{namespace}:done", f"{namespace}:overlaps"
    for _ in range(rounds):
        lock = RedisLock(client, namespace, "shared-user", ttl_s=10)
        while not lock.acquire():
            time.sleep(0.001)
        if client.incr(inside) != 1:
            client.incr(overlaps)
        time.sleep(0.002)
        client.decr(inside)
        client.incr(done)
        assert lock.release()
    client.close()


def test_mutual_exclusion_across_processes(client: redis.Redis, namespace: str) -> None:
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_contend, args=(namespace, 25)) for _ in range(4)]
    for process in workers:
        process.start()
    try:
        for process in workers:
            process.join(timeout=60)
            assert process.exitcode == 0
    finally:
        for process in workers:
            if process.is_alive():
                process.kill()
    assert int(client.get(f"{namespace}:done") or 0) == 100
    assert int(client.get(f"{namespace}:overlaps") or 0) == 0


def test_a_lock_expires_when_its_holder_dies(client: redis.Redis, namespace: str) -> None:
    first = RedisLock(client, namespace, "alice", ttl_s=0.2)
    assert first.acquire()
    second = RedisLock(client, namespace, "alice", ttl_s=5)
    assert not second.acquire()
    time.sleep(0.3)  # the first holder never released: its TTL frees the lock
    assert second.acquire()
    assert second.owner() == second.token


def test_release_never_frees_someone_elses_lock(client: redis.Redis, namespace: str) -> None:
    stale = RedisLock(client, namespace, "alice", ttl_s=0.1)
    assert stale.acquire()
    time.sleep(0.2)
    fresh = RedisLock(client, namespace, "alice", ttl_s=5)
    assert fresh.acquire()
    assert not stale.release()  # its lock expired; the key now belongs to `fresh`
    assert not stale.extend()
    assert fresh.owner() == fresh.token
    assert fresh.release()
    assert fresh.owner() is None


def test_keep_alive_holds_a_lock_past_its_ttl(client: redis.Redis, namespace: str) -> None:
    lock = RedisLock(client, namespace, "bob", ttl_s=0.3)
    assert lock.acquire()
    with lock.keep_alive(interval_s=0.05) as lost:
        time.sleep(0.8)  # well past the TTL
        assert not RedisLock(client, namespace, "bob", ttl_s=5).acquire()
    assert not lost.is_set()
    assert lock.release()


def test_keep_alive_reports_a_lost_lock(client: redis.Redis, namespace: str) -> None:
    lock = RedisLock(client, namespace, "carol", ttl_s=5)
    assert lock.acquire()
    with lock.keep_alive(interval_s=0.05) as lost:
        client.set(lock.key, "someone-else")  # e.g. it expired during a long pause and was taken
        assert lost.wait(2)
    assert client.get(lock.key) == b"someone-else"


@pytest.mark.parametrize(
    "hostile",
    ["*", "a:b", "lock", "alice\nSET x", "../../etc", "ünïcödé 用户", "x" * 256, "mstest:lock:alice"],
)
def test_hostile_user_ids_stay_inside_the_namespace(client: redis.Redis, namespace: str, hostile: str) -> None:
    lock = RedisLock(client, namespace, hostile, ttl_s=5)
    assert lock.key.startswith(f"{namespace}:lock:") and lock.key.isascii() and " " not in lock.key
    assert lock.key != RedisLock(client, namespace, "alice", ttl_s=5).key
    assert lock.acquire()
    assert RedisLock(client, namespace, "alice", ttl_s=5).acquire()  # another user is not blocked
    assert lock.release()


def test_keys_of_different_parts_never_collide() -> None:
    keys = {
        hashed_key("ns", "queued", "op", "a:b", None),
        hashed_key("ns", "queued", "op", "a", "b"),
        hashed_key("ns", "queued", "op", "a", None),
        hashed_key("ns", "queued", "op", "a", ""),
        hashed_key("ns", "queued", "op", "a\x1fb", None),
        hashed_key("ns", "queued", "op", "a\x1fb"),
        hashed_key("ns", "queued", "op", "a", "\x1fb"),
        hashed_key("ns", "queued", "op", "1:a"),
    }
    assert len(keys) == 8


def test_a_ttl_must_be_positive(client: redis.Redis, namespace: str) -> None:
    with pytest.raises(ValueError, match="positive"):
        RedisLock(client, namespace, "dan", ttl_s=0)
