"""The distributed store: Elasticsearch (8.x or 9.x server and Python client).

Layout, mappings and the analyzer are described in `es_templates`; request bodies are built in
`es_queries`. Choices worth knowing:

- Nothing contacts the server at construction. The first call runs `init_indices()` (idempotent:
  put the versioned templates, create `{prefix}-{kind}-v1` behind the alias `{prefix}-{kind}`).
- The `embedding` dense_vector field (cosine, HNSW) is added to messages and memories on the first
  `check_embedding_model` (or the first write carrying vectors), when the dims are known.
- Hybrid search sends one `_msearch` with a kNN search and a BM25 `match` search under the same
  filter, and fuses the rankings in Python (`fuse_channels`), so it works on every licence. Every query
  carries a `term` on `user_id`; returned documents are checked against the user once more.
- A message document carries `replied_to`, the turn it replies to (searched at boost 0.3):
  `add_messages` looks up each new turn's stored neighbours in one `_msearch` first, and
  `backfill_replied_to` (run by `memscope es init`) fills it on messages stored before the field.
- Refresh: `add_messages`, `mark_consolidated`, `set_message_embeddings` and the memory documents of
  `write_memories` use `refresh="wait_for"` (read-your-writes for searches and pending lists;
  up to `index.refresh_interval`, 1 s, per call), or `refresh="true"` when constructed so (an
  immediate refresh: millisecond writes, more small segments; the tests use it);
  events and `touch_memories` use none (history reads events by id, which is realtime).
- `write_memories` writes the events first, then the memories: each memory carries `event_seq`, the
  length of its committed log, and event ids derive from (memory id, position), so a retry after a
  crash rewrites the same events instead of duplicating them, and `history` reads them by id.
- Bulk items failing with 429/5xx are retried twice with backoff; anything still failing raises
  StoreError (StoreUnavailable when every failure is transient) naming each id and reason.
- Elasticsearch `date` fields keep milliseconds; filters and sorts use microsecond integer twins
  (`created_us`, `time_start_us`, `time_end_us`), so results match the SQLite store exactly.
- Server core only: no painless, no `_update_by_query`/`_delete_by_query`/`_reindex`, so the same
  requests work on Elastic's minimal test distribution and on the full one. `init_indices` detects
  the server's version and modules (`es_admin.Features`) and records them in each index's mapping
  `_meta.memscope`; only the text analyzer depends on them (see `es_templates`).
- Updates are partial documents in `_bulk`, guarded by `if_seq_no`/`if_primary_term` of the version
  just read (compare-and-set): a conflict re-reads and retries, so `mark_consolidated` counts each
  message once and `touch_memories` loses no access, and `write_memories` retries a memory whose
  stored version moved under it (e.g. touched by a search) with the stored counters kept.
- `delete_user` refreshes the three indices (needs the `maintenance` index privilege), then walks
  the user's documents under a point-in-time with `search_after` and deletes them in bulk, repeated
  until a fresh count finds none (writes racing the delete).
- `migrate(N)` copies each kind into `-vN` under a point-in-time with bulk writes, checkpointing
  the last id copied (resumable), then moves the alias in one atomic `_aliases` call; the old index
  is kept (a rollback is one alias swap) unless `delete_old=True`. Stop writers first.
- Printed URLs are masked (`user:***@host`).

- Times come back in UTC; `write_memories` ignores updated_at and the access counters when deciding
  whether a node changed, and keeps the stored counters when larger (as the SQLite store does).
- One client (elasticsearch-py 9) for 8.19+ and 9.x servers: `es_compat.CompatTransport` detects
  the server's major once and rewrites `compatible-with=9` for an 8.x server.

No async variant yet: `AsyncElasticsearchStore` would mirror this class over `AsyncElasticsearch`.
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from memscope.errors import EmbeddingMismatch, StoreError, StoreUnavailable, ValidationError
from memscope.models import MemoryEvent, MemoryNode, Message, check_user_id, replied_turn_text, utcnow
from memscope.redact import mask_url, scrub
from memscope.stores import es_admin, es_leases
from memscope.stores import es_queries as q
from memscope.stores.base import (
    ConsolidationMark,
    Fence,
    MemoryFilter,
    MessageFilter,
    ScoredMemory,
    ScoredMessage,
    SearchQuery,
    StoreStats,
    check_neighbour_window,
)
from memscope.stores.changes import change_kind, kept_access
from memscope.stores.es_admin import Features, MigrateProgress
from memscope.stores.es_errors import RETRYABLE, import_es, mapped
from memscope.stores.es_replies import anchor_of, reply_links
from memscope.stores.es_templates import (
    alias_name,
    check_prefix,
    vector_mapping,
)
from memscope.stores.fusion import FusedHit, fuse_channels

__all__ = ["ElasticsearchStore"]


_EVENT_NS = uuid.UUID("6f1c0d8e-3b7a-5c1e-9a52-6d656d73636f")
_PAGE = 1000
_MAX_ID_BYTES = 512
_META_ID = "embedding"
_MSG_SORT = [{"created_us": "asc"}, {"id": "asc"}]
_MSG_SORT_NEWEST = [{"created_us": "desc"}, {"id": "desc"}]
_MEM_SORT = [{"created_us": "desc"}, {"id": "desc"}]
_NEIGHBOUR_BATCH = 250  # messages whose stored neighbours one `_msearch` of add_messages looks up
_CAS_ATTEMPTS = 10  # compare-and-set rounds before a write gives up as StoreUnavailable
_Action = tuple[dict[str, Any], ...]  # a bulk action line, and its body unless it is a delete
_Versioned = dict[str, tuple[dict[str, Any], int, int]]  # id -> (source, _seq_no, _primary_term)


def _event_id(memory_id: str, seq: int) -> str:
    """The id of a memory's seq-th event: deterministic, so a retried write reuses it."""
    return str(uuid.uuid5(_EVENT_NS, f"{memory_id}\x00{seq}"))


def _storable(doc_id: str) -> bool:
    return isinstance(doc_id, str) and 0 < len(doc_id.encode()) <= _MAX_ID_BYTES


def _check_id(doc_id: str, what: str) -> None:
    check_user_id(doc_id, what)
    if not _storable(doc_id):
        raise ValidationError(f"{what} {doc_id[:40]!r}... is longer than {_MAX_ID_BYTES} bytes in UTF-8")


def _cas_pause(attempt: int) -> None:
    """Jittered exponential pause between compare-and-set rounds, so racing writers spread out."""
    if attempt:
        time.sleep(random.uniform(0.0, min(0.5, 0.005 * 2**attempt)))


def _aware(value: datetime, what: str) -> str:
    if value.tzinfo is None:
        raise ValidationError(f"{what} {value.isoformat()} must be timezone-aware (e.g. datetime.now(UTC))")
    return value.astimezone(UTC).isoformat()


class ElasticsearchStore:
    """The Store protocol on Elasticsearch: one aliased, versioned index per kind of record."""

    in_process = False  # its calls wait on the network, outside the GIL (see Worker.overlaps)

    bulk_retries = 2
    bulk_backoff_s = 0.2

    def __init__(
        self,
        url: str,
        *,
        index_prefix: str = "memscope",
        api_key: str | tuple[str, str] | None = None,
        username: str | None = None,
        password: str | None = None,
        verify_certs: bool = True,
        request_timeout_s: float = 10.0,
        refresh: str = "wait_for",
        client: Any = None,
    ) -> None:
        self.url = mask_url(url)  # for messages; the client gets the real one
        self.index_prefix = check_prefix(index_prefix)
        if refresh not in ("wait_for", "true"):
            raise ValidationError(f"refresh must be 'wait_for' or 'true', got {refresh!r}")
        self.refresh = refresh
        self._owns_client = client is None
        self._client = (
            client
            if client is not None
            else self._make_client(url, api_key, username, password, verify_certs, request_timeout_s)
        )
        self._lock = threading.Lock()
        self._ready = False
        self._dims: int | None = None
        self._store_id: str | None = None
        self._features: Features | None = None

    @staticmethod
    def _make_client(
        url: str,
        api_key: str | tuple[str, str] | None,
        username: str | None,
        password: str | None,
        verify_certs: bool,
        timeout: float,
    ) -> Any:
        es = import_es()
        from memscope.stores.es_compat import CompatTransport

        options: dict[str, Any] = {
            "request_timeout": timeout,
            "max_retries": 2,
            "retry_on_timeout": True,
            "transport_class": CompatTransport,
        }
        if api_key is not None:
            options["api_key"] = api_key
        if username is not None:
            options["basic_auth"] = (username, password or "")
        if url.lower().startswith("https"):
            options["verify_certs"] = verify_certs
        try:
            return es.Elasticsearch(url, **options)
        except ValueError as exc:
            raise ValidationError(f"invalid Elasticsearch url {mask_url(url)!r}: {scrub(str(exc))}") from exc

    def __repr__(self) -> str:
        return f"ElasticsearchStore({mask_url(self.url)!r}, index_prefix={self.index_prefix!r})"

    def __enter__(self) -> ElasticsearchStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Release connections (only those of a client this store created)."""
        if self._owns_client:
            self._client.close()

    # -- set-up --------------------------------------------------------------------------------------

    def alias(self, kind: str) -> str:
        """The alias reads and writes of one kind go through, e.g. `memscope-memories`."""
        return alias_name(self.index_prefix, kind)

    def _es(self) -> Any:
        """The client, after the indices exist (created on first use)."""
        if not self._ready:
            with self._lock:
                if not self._ready:
                    self._init_indices()
        return self._client

    @mapped
    def features(self) -> Features:
        """The server's version and optional modules, detected once (see `es_admin.detect_features`)."""
        if self._features is None:
            self._features = es_admin.detect_features(self._client)
        return self._features

    @mapped
    def init_indices(self) -> None:
        """Idempotent set-up: put the index templates, create `-v1` indices and aliases if missing."""
        with self._lock:
            self._init_indices()

    def _init_indices(self) -> None:
        es_admin.init_indices(self._client, self.index_prefix, self.features())
        self._ready = True

    @mapped
    def migrate(
        self, new_version: int, *, delete_old: bool = False, progress: MigrateProgress | None = None
    ) -> list[tuple[str, str, str]]:
        """Copy every kind into `-v{new_version}` and move its alias atomically (see `es_admin.migrate`)."""
        moved = es_admin.migrate(
            self._es(), self.index_prefix, self.features(), new_version, delete_old=delete_old, progress=progress
        )
        self._dims = None
        return moved

    @mapped
    def backfill_replied_to(self, progress: Callable[[int], None] | None = None) -> int:
        """Fill `replied_to` on messages stored before the field existed (see `es_admin.backfill_replied_to`)."""
        return es_admin.backfill_replied_to(self._es(), self.alias("messages"), progress)

    @mapped
    def delete_indices(self) -> list[str]:
        """Delete every index and template of this prefix (irreversible); returns the indices deleted."""
        deleted = es_admin.delete_indices(self._client, self.index_prefix)
        self._ready, self._dims = False, None
        return deleted

    # -- vectors -------------------------------------------------------------------------------------

    def _vector_dims(self) -> int | None:
        """The dims of the mapped `embedding` field of memories, or None while unmapped."""
        if self._dims is None:
            alias = self.alias("memories")
            for body in self._es().indices.get_mapping(index=alias).values():
                dims = body["mappings"].get("properties", {}).get("embedding", {}).get("dims")
                if dims is not None:
                    self._dims = int(dims)
        return self._dims

    def _ensure_vectors(self, dim: int) -> None:
        if self._dims == dim:
            return
        for kind in ("messages", "memories"):
            self._es().indices.put_mapping(index=self.alias(kind), properties=vector_mapping(dim))
        self._dims = dim

    def _prepare_vectors(self, dims: set[int]) -> None:
        """Map the vector field on first use; reject vectors of another dimension than stored."""
        if not dims:
            return
        current = self._vector_dims()
        wrong = sorted(dims - {current}) if current is not None else []
        if wrong or len(dims) > 1:
            raise ValidationError(
                f"embedding dimension(s) {wrong or sorted(dims)} do not match the store's dimension"
                f" {current if current is not None else 'of the batch'}; embed with the store's model"
                " or configure a new index_prefix for the new one"
            )
        if current is None:
            self._ensure_vectors(dims.pop())

    @mapped
    def check_embedding_model(self, model: str, dim: int) -> None:
        """Record the embedder on first use; raise EmbeddingMismatch if the store holds another's."""
        if not isinstance(dim, int) or dim <= 0:
            raise ValidationError(f"embedding dim must be a positive integer, got {dim!r}")
        es, mod = self._es(), import_es()
        meta = self._get(self.alias("meta"), _META_ID)
        if meta is None:
            mapped = self._vector_dims()
            if mapped is not None and mapped != dim:
                self._mismatch("an unrecorded model", mapped, model, dim)
            self._ensure_vectors(dim)
            record: dict[str, Any] = {"model": model, "dim": dim, "recorded_at": utcnow().isoformat()}
            try:
                es.index(index=self.alias("meta"), id=_META_ID, document=record, op_type="create", require_alias=True)
                return
            except mod.ConflictError:
                meta = self._get(self.alias("meta"), _META_ID) or dict(record)
        if meta["model"] != model or int(meta["dim"]) != dim:
            self._mismatch(repr(meta["model"]), int(meta["dim"]), model, dim)
        self._ensure_vectors(dim)

    def _mismatch(self, stored: str, stored_dim: int, model: str, dim: int) -> None:
        raise EmbeddingMismatch(
            f"the Elasticsearch store {mask_url(self.url)} (indices {self.index_prefix}-*) holds vectors of embedding"
            f" model {stored} (dim {stored_dim}), but the configured embedder is {model!r} (dim {dim})."
            " The mapping fixes the vector dimension: configure a new store.elasticsearch.index_prefix for"
            " the new model and add the history again, or go back to the old model."
        )

    # -- low-level helpers ---------------------------------------------------------------------------

    def _get(self, index: str, doc_id: str) -> dict[str, Any] | None:
        """One document's source by id (realtime), or None when it does not exist."""
        es = import_es()
        try:
            resp = self._es().get(index=index, id=doc_id)
        except es.NotFoundError as exc:
            if isinstance(exc.body, dict) and exc.body.get("found") is False:
                return None
            raise
        return dict(resp["_source"])

    def _mget(self, index: str, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """Sources of the documents among `ids` that exist (realtime)."""
        found: dict[str, dict[str, Any]] = {}
        wanted = [i for i in dict.fromkeys(ids) if _storable(i)]
        for start in range(0, len(wanted), _PAGE):
            resp = self._es().mget(index=index, ids=wanted[start : start + _PAGE])
            found.update({d["_id"]: d["_source"] for d in resp["docs"] if d.get("found")})
        return found

    def _mget_versioned(self, index: str, ids: Sequence[str], fields: Sequence[str] | None = None) -> _Versioned:
        """(source, _seq_no, _primary_term) of the documents among `ids` that exist (realtime)."""
        found: _Versioned = {}
        wanted = [i for i in dict.fromkeys(ids) if _storable(i)]
        extra: dict[str, Any] = {} if fields is None else {"source_includes": list(fields)}
        for start in range(0, len(wanted), _PAGE):
            resp = self._es().mget(index=index, ids=wanted[start : start + _PAGE], **extra)
            for d in resp["docs"]:
                if d.get("found"):
                    found[d["_id"]] = (d["_source"], int(d["_seq_no"]), int(d["_primary_term"]))
        return found

    def _bulk(self, actions: Sequence[_Action], refresh: str | None, *, require_alias: bool = True) -> list[dict]:
        """Send (action[, body]) tuples; retry items that failed with 429/5xx; each one's final result."""
        results: list[dict[str, Any]] = [{} for _ in actions]
        todo = list(range(len(actions)))
        for attempt in range(self.bulk_retries + 1):
            operations = [part for i in todo for part in actions[i]]
            resp = self._es().bulk(operations=operations, refresh=refresh, require_alias=require_alias)
            items = resp.get("items", [])
            if len(items) != len(todo):
                raise StoreError(f"Elasticsearch answered {len(items)} bulk items for {len(todo)} sent")
            retry = []
            for i, item in zip(todo, items, strict=True):
                results[i] = next(iter(item.values()))
                if results[i].get("status") in RETRYABLE:
                    retry.append(i)
            if not retry or attempt == self.bulk_retries:
                break
            todo = retry
            time.sleep(self.bulk_backoff_s * 2**attempt)
        return results

    @staticmethod
    def _raise_failed(what: str, results: list[dict[str, Any]], ok: frozenset[int] = frozenset()) -> None:
        failed = [r for r in results if r.get("status", 0) >= 300 and r.get("status") not in ok]
        if not failed:
            return
        reasons = "; ".join(
            f"{r.get('_id')}: {r.get('status')} {r.get('error', {}).get('type', '')}"
            f" {r.get('error', {}).get('reason', '')}".rstrip()
            for r in failed[:10]
        )
        more = f" (and {len(failed) - 10} more)" if len(failed) > 10 else ""
        cls = StoreUnavailable if all(r.get("status") in RETRYABLE for r in failed) else StoreError
        raise cls(f"Elasticsearch {what} failed for {len(failed)} item(s): {reasons}{more}")

    def _search(self, index: str, body: dict[str, Any]) -> dict[str, Any]:
        return self._es().search(index=index, **q.search_kwargs(body))

    def _collect(
        self, kind: str, query: dict[str, Any], sort: list[dict[str, str]], limit: int | None, offset: int
    ) -> list[dict[str, Any]]:
        """Sorted hits: one `from`/`size` page when it fits in 10,000, else `search_after` pages."""
        index, messages = self.alias(kind), kind == "messages"
        if limit is not None and limit <= 0:
            return []
        if limit is not None and offset + limit <= q.MAX_WINDOW:
            body = q.list_body(query, sort, limit, offset=offset, messages=messages)
            return list(self._search(index, body)["hits"]["hits"])
        hits: list[dict[str, Any]] = []
        after: list[Any] | None = None
        skip = offset
        while True:
            body = q.list_body(query, sort, _PAGE, search_after=after, messages=messages)
            page = self._search(index, body)["hits"]["hits"]
            for hit in page:
                if skip:
                    skip -= 1
                    continue
                hits.append(hit)
                if limit is not None and len(hits) >= limit:
                    return hits
            if len(page) < _PAGE:
                return hits
            after = page[-1]["sort"]

    def _update_each(
        self,
        kind: str,
        ids: Sequence[str],
        fields: Sequence[str],
        change: Callable[[str, dict[str, Any]], dict[str, Any] | None],
        refresh: str | None,
    ) -> int:
        """Compare-and-set partial updates: `change(id, source)` gives the fields to set (None: none).

        Reads `fields` with each document's seq_no, sends `update` actions carrying `if_seq_no` and
        `if_primary_term`, and re-reads and retries those that another writer changed meanwhile.
        Missing ids are skipped. Returns how many documents changed.
        """
        alias, changed = self.alias(kind), 0
        todo: list[str] = [i for i in dict.fromkeys(ids) if _storable(i)]
        for attempt in range(_CAS_ATTEMPTS):
            _cas_pause(attempt)
            actions: list[_Action] = []
            for doc_id, (source, seq_no, term) in self._mget_versioned(alias, todo, fields).items():
                doc = change(doc_id, source)
                if doc is not None:
                    meta = {"_index": alias, "_id": doc_id, "if_seq_no": seq_no, "if_primary_term": term}
                    actions.append(({"update": meta}, {"doc": doc}))
            if not actions:
                return changed
            results = self._bulk(actions, refresh)
            self._raise_failed(f"update of {kind}", results, ok=frozenset({404, 409}))
            changed += sum(1 for r in results if r.get("result") == "updated")
            todo = [str(r.get("_id")) for r in results if r.get("status") == 409]
            if not todo:
                return changed
        raise StoreUnavailable(
            f"update of {len(todo)} {kind} kept conflicting with concurrent writes ({todo[:3]}); retry"
        )

    # -- messages ------------------------------------------------------------------------------------

    @mapped
    def add_messages(self, messages: Sequence[Message]) -> None:
        """Store messages durably (idempotent by id); searchable by text before this returns."""
        batch = list(messages)
        if not batch:
            return
        for message in batch:
            _check_id(message.id, "message id")
        alias = self.alias("messages")
        links = reply_links(batch, *self._stored_neighbours(batch))
        actions = [
            ({"create": {"_index": alias, "_id": m.id}}, q.message_doc(m, links.replied_to.get(m.id, "")))
            for m in batch
        ]
        results = self._bulk(actions, self.refresh)
        self._raise_failed("add_messages", results, ok=frozenset({409}))
        existing = [m for m, r in zip(batch, results, strict=True) if r.get("status") == 409]
        if existing:
            owners = self._mget(alias, [m.id for m in existing])
            clashes = [m.id for m in existing if owners.get(m.id, {}).get("user_id", m.user_id) != m.user_id]
            if clashes:
                raise ValidationError(f"message id(s) {clashes[:5]} already belong to another user; give new ids")
        created = {m.id: m for m, r in zip(batch, results, strict=True) if r.get("status") in (200, 201)}
        relinked = [
            ({"update": {"_index": alias, "_id": follower}}, {"doc": {"replied_to": replied_turn_text(created[mid])}})
            for follower, mid in links.followers.items()
            if mid in created
        ]
        if relinked:  # turns stored before a batch turn that precedes them: they now reply to it
            self._raise_failed("add_messages (replied_to)", self._bulk(relinked, self.refresh), ok=frozenset({404}))

    def _stored_neighbours(self, batch: Sequence[Message]) -> tuple[dict[str, Message], dict[str, Message]]:
        """The stored turns just before and just after each message of a batch: one `_msearch` per
        _NEIGHBOUR_BATCH messages (two searches each)."""
        before: dict[str, Message] = {}
        after: dict[str, Message] = {}
        unique = list({m.id: m for m in batch}.values())
        for first in range(0, len(unique), _NEIGHBOUR_BATCH):
            chunk = unique[first : first + _NEIGHBOUR_BATCH]
            searches: list[dict[str, Any]] = []
            for m in chunk:
                anchor = anchor_of(m)
                searches += [{}, q.neighbour_body(anchor, 1, later=False), {}, q.neighbour_body(anchor, 1, later=True)]
            resp = self._es().msearch(index=self.alias("messages"), searches=searches)
            answers = resp["responses"]
            for n, m in enumerate(chunk):
                for side, answer in ((before, answers[2 * n]), (after, answers[2 * n + 1])):
                    if "error" in answer:
                        cls = StoreUnavailable if answer.get("status") in RETRYABLE else StoreError
                        raise cls(f"Elasticsearch neighbour search of messages failed: {answer['error']}")
                    found = self._messages(m.user_id, answer["hits"]["hits"])
                    if found:
                        side[m.id] = found[0]
        return before, after

    @mapped
    def list_messages(
        self,
        user_id: str,
        filter: MessageFilter | None = None,
        limit: int | None = None,
        newest_first: bool = False,
    ) -> list[Message]:
        """Messages of one user, oldest first (newest first if asked)."""
        check_user_id(user_id)
        query = q.message_filter(user_id, filter or MessageFilter())
        sort = _MSG_SORT_NEWEST if newest_first else _MSG_SORT
        return self._messages(user_id, self._collect("messages", query, sort, limit, 0))

    @staticmethod
    def _messages(user_id: str, hits: list[dict[str, Any]]) -> list[Message]:
        return [q.doc_to_message(h["_source"]) for h in hits if h["_source"].get("user_id") == user_id]

    @mapped
    def mark_consolidated(
        self, user_id: str, message_ids: Sequence[str], at: datetime, *, fence: Fence | None = None
    ) -> int:
        """Set consolidated_at on these pending messages of this user; returns how many changed."""
        check_user_id(user_id)
        self._check_fence(fence)
        stamp = _aware(at, "consolidated_at")

        def consolidate(_: str, source: dict[str, Any]) -> dict[str, Any] | None:
            pending = source.get("user_id") == user_id and source.get("consolidated_at") is None
            return {"consolidated_at": stamp} if pending else None

        return self._update_each("messages", message_ids, ("user_id", "consolidated_at"), consolidate, self.refresh)

    @mapped
    def set_message_embeddings(self, user_id: str, embeddings: dict[str, Sequence[float]]) -> None:
        """Attach vectors to messages of this user (ids not of this user are ignored)."""
        check_user_id(user_id)
        vectors = {mid: [float(x) for x in vec] for mid, vec in embeddings.items()}
        if not vectors:
            return
        if any(not vec for vec in vectors.values()):
            raise ValidationError("an embedding must not be empty")
        self._prepare_vectors({len(vec) for vec in vectors.values()})

        def attach(mid: str, source: dict[str, Any]) -> dict[str, Any] | None:
            return {"embedding": vectors[mid]} if source.get("user_id") == user_id else None

        self._update_each("messages", list(vectors), ("user_id",), attach, self.refresh)

    @mapped
    def messages_without_embedding(self, user_id: str, limit: int = 256) -> list[Message]:
        """Messages of this user that have no vector yet, oldest first."""
        check_user_id(user_id)
        query = q.message_filter(user_id, MessageFilter())
        query["bool"]["must_not"] = [{"exists": {"field": "embedding"}}]
        return self._messages(user_id, self._collect("messages", query, _MSG_SORT, limit, 0))

    @mapped
    def search_messages(
        self, user_id: str, query: SearchQuery, filter: MessageFilter | None = None
    ) -> list[ScoredMessage]:
        """Hybrid search over one user's messages; no text and no vector finds nothing."""
        check_user_id(user_id)
        filter_query = q.message_filter(user_id, filter or MessageFilter())
        hits, sources = self._hybrid("messages", user_id, filter_query, query)
        return [ScoredMessage.of(q.doc_to_message(sources[h.id]), h) for h in hits]

    @mapped
    def message_text_ranking(
        self, user_id: str, query: SearchQuery, filter: MessageFilter | None = None
    ) -> list[str] | None:
        """None: the search runs BM25 beside kNN in one `_msearch`; a ranking fetched ahead would cost a round
        trip more than it saves (10k memories: retrieval p50 49 -> 54 ms)."""
        check_user_id(user_id)
        return None

    @mapped
    def message_neighbours(
        self, user_id: str, message_ids: Sequence[str], before: int = 1, after: int = 1
    ) -> dict[str, list[Message]]:
        """The turns just before and after each message in its conversation (agent, session), oldest first.

        One realtime `mget` of the anchors, then one `_msearch` with a `search_after` page per side.
        """
        check_user_id(user_id)
        check_neighbour_window(before, after)
        fields = ("id", "user_id", "agent_id", "session_id", "created_us")
        found = self._mget_versioned(self.alias("messages"), list(message_ids), fields)
        anchors = [src for src, _, _ in found.values() if src.get("user_id") == user_id]
        sides = [(a, n, later) for a in anchors for n, later in ((before, False), (after, True)) if n]
        out: dict[str, list[Message]] = {a["id"]: [] for a in anchors}
        if not sides:
            return out
        searches: list[dict[str, Any]] = []
        for a, n, later in sides:
            searches += [{}, q.neighbour_body(a, n, later=later)]
        resp = self._es().msearch(index=self.alias("messages"), searches=searches)
        for (a, _, later), answer in zip(sides, resp["responses"], strict=True):
            if "error" in answer:
                cls = StoreUnavailable if answer.get("status") in RETRYABLE else StoreError
                raise cls(f"Elasticsearch neighbour search of messages failed: {answer['error']}")
            found_side = self._messages(user_id, answer["hits"]["hits"])
            out[a["id"]] += found_side if later else found_side[::-1]
        return out

    @mapped
    def users_with_pending(self, limit: int = 1000) -> list[tuple[str, str]]:
        """(user_id, agent_id) pairs that have pending messages: the sweep's source of truth."""
        pairs: list[tuple[str, str]] = []
        after: dict[str, Any] | None = None
        while len(pairs) < limit:
            composite: dict[str, Any] = {
                "size": min(_PAGE, limit - len(pairs)),
                "sources": [
                    {"user_id": {"terms": {"field": "user_id"}}},
                    {"agent_id": {"terms": {"field": "agent_id"}}},
                ],
            }
            if after is not None:
                composite["after"] = after
            resp = self._es().search(
                index=self.alias("messages"),
                size=0,
                query={"bool": {"must_not": [{"exists": {"field": "consolidated_at"}}]}},
                aggs={"pairs": {"composite": composite}},
            )
            agg = resp["aggregations"]["pairs"]
            pairs += [(b["key"]["user_id"], b["key"]["agent_id"]) for b in agg["buckets"]]
            after = agg.get("after_key")
            if after is None or len(agg["buckets"]) < composite["size"]:
                break
        return pairs[:limit]

    # -- identity and per-user leases (documents of the meta index: `es_leases`) -------------------

    @mapped
    def store_id(self) -> str:
        """This store's identity, a document of the meta index created with the indices."""
        if self._store_id is None:
            self._store_id = es_leases.ensure_store_id(self._es(), import_es(), self.alias("meta"))
        return self._store_id

    @mapped
    def acquire_lease(self, user_id: str, holder: str, ttl_s: float) -> int | None:
        """Take the user's lease if free, expired or `holder`'s; its fencing token, or None while busy."""
        check_user_id(user_id)
        return es_leases.acquire(self._es(), import_es(), self.alias("meta"), user_id, holder, ttl_s)

    @mapped
    def renew_lease(self, user_id: str, token: int, ttl_s: float) -> bool:
        """Extend the lease while it has `token`; False once another holder took it."""
        return es_leases.renew(self._es(), import_es(), self.alias("meta"), user_id, token, ttl_s)

    @mapped
    def release_lease(self, user_id: str, token: int) -> None:
        """Expire the lease now if it still has `token`."""
        es_leases.release(self._es(), import_es(), self.alias("meta"), user_id, token)

    def _check_fence(self, fence: Fence | None) -> None:
        if fence is not None:
            es_leases.check_fence(self._es(), import_es(), self.alias("meta"), fence)

    # -- memories ------------------------------------------------------------------------------------

    @mapped
    def write_memories(
        self,
        memories: Sequence[MemoryNode],
        *,
        operation: str | None = None,
        run_id: str | None = None,
        fence: Fence | None = None,
        consolidates: ConsolidationMark | None = None,
    ) -> list[MemoryEvent]:
        """Upsert by id and append one event per real change (add/update/expire/delete).

        Idempotent: a node equal to the stored one, ignoring updated_at and the access counters,
        records nothing and is not written. Stored access counters are kept when larger. With
        `fence`, the lease token is checked just before the first bulk request (LeaseLost).
        `consolidates` marks its messages right after the memories are written (no transaction).
        """
        events = self._write_memories(list(memories), operation, run_id, fence)
        if consolidates is not None:
            self.mark_consolidated(consolidates.user_id, consolidates.message_ids, consolidates.at, fence=fence)
        return events

    def _write_memories(
        self, nodes: list[MemoryNode], operation: str | None, run_id: str | None, fence: Fence | None
    ) -> list[MemoryEvent]:
        """The events first, then the memories (see the module docstring)."""
        if not nodes:
            return []
        for node in nodes:
            _check_id(node.id, "memory id")
            if node.embedding is not None and not node.embedding:
                raise ValidationError(f"memory {node.id} has an empty embedding; give a vector or None")
        self._prepare_vectors({len(n.embedding) for n in nodes if n.embedding})
        written: list[MemoryEvent] = []
        todo = nodes
        for attempt in range(_CAS_ATTEMPTS):
            _cas_pause(attempt)
            events, conflicts = self._write_once(todo, operation, run_id, fence)
            written += events
            if not conflicts:
                return written
            todo = [n for n in todo if n.id in conflicts]
        raise StoreUnavailable(
            f"memories {sorted({n.id for n in todo})[:3]} kept changing under concurrent writes; retry"
        )

    def _write_once(
        self, nodes: list[MemoryNode], operation: str | None, run_id: str | None, fence: Fence | None
    ) -> tuple[list[MemoryEvent], set[str]]:
        """One compare-and-set round of `write_memories`: (events of memories written, conflicted ids)."""
        alias = self.alias("memories")
        current = self._mget_versioned(alias, [n.id for n in nodes])
        clashes = [n.id for n in nodes if current.get(n.id, ({},))[0].get("user_id", n.user_id) != n.user_id]
        if clashes:
            raise ValidationError(f"memory id(s) {clashes[:5]} already belong to another user; give new ids")
        state = {i: (q.doc_to_memory(src), int(src.get("event_seq", 0))) for i, (src, _, _) in current.items()}
        events: list[MemoryEvent] = []
        event_actions: list[_Action] = []
        changed: dict[str, None] = {}
        for node in nodes:
            event, new = self._change(node, state.get(node.id), operation, run_id)
            if event is None:
                continue
            seq = state[node.id][1] if node.id in state else 0
            events.append(event)
            event_actions.append(
                ({"index": {"_index": self.alias("events"), "_id": event.id}}, q.event_doc(event, seq))
            )
            state[node.id] = (new, seq + 1)
            changed[node.id] = None
        if not events:
            return [], set()
        self._check_fence(fence)
        self._raise_failed("write of memory events", self._bulk(event_actions, None))
        memory_actions: list[_Action] = []
        for i in changed:
            if i in current:
                _, seq_no, term = current[i]
                meta = {"index": {"_index": alias, "_id": i, "if_seq_no": seq_no, "if_primary_term": term}}
            else:
                meta = {"create": {"_index": alias, "_id": i}}
            memory_actions.append((meta, q.memory_doc(*state[i])))
        results = self._bulk(memory_actions, self.refresh)
        self._raise_failed("write_memories", results, ok=frozenset({409}))
        conflicts = {str(r.get("_id")) for r in results if r.get("status") == 409}
        return [e for e in events if e.memory_id not in conflicts], conflicts

    @staticmethod
    def _change(
        node: MemoryNode, stored: tuple[MemoryNode, int] | None, operation: str | None, run_id: str | None
    ) -> tuple[MemoryEvent | None, MemoryNode]:
        """The event a write of `node` over `stored` records (None: no change) and the node to store."""
        new = q.utc_node(node)
        seq = 0 if stored is None else stored[1]
        old = None if stored is None else stored[0]
        kind = change_kind(None if old is None else q.comparable(old), q.comparable(new))
        if kind is None:
            return None, old if old is not None else new
        before = None
        if old is not None:
            before = old.public_dict()
            count, last = kept_access(new.access_count, new.last_accessed_at, old.access_count, old.last_accessed_at)
            new = new.model_copy(update={"access_count": count, "last_accessed_at": last})
        event = MemoryEvent(
            id=_event_id(node.id, seq),
            user_id=new.user_id,
            agent_id=new.agent_id,
            memory_id=new.id,
            kind=kind,
            before=before,
            after=new.public_dict(),
            operation=operation,
            run_id=run_id,
            created_at=utcnow(),
        )
        return event, new

    @mapped
    def get_memory(self, user_id: str, memory_id: str) -> MemoryNode | None:
        """One memory of this user, or None (also when it belongs to another user)."""
        check_user_id(user_id)
        if not _storable(memory_id):
            return None
        source = self._get(self.alias("memories"), memory_id)
        if source is None or source.get("user_id") != user_id:
            return None
        return q.doc_to_memory(source)

    @mapped
    def list_memories(
        self,
        user_id: str,
        filter: MemoryFilter | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[MemoryNode]:
        """Memories of one user, newest first."""
        check_user_id(user_id)
        if offset < 0:
            raise ValidationError(f"offset must be >= 0, got {offset}")
        query = q.memory_filter(user_id, filter or MemoryFilter())
        hits = self._collect("memories", query, _MEM_SORT, limit, offset)
        return [q.doc_to_memory(h["_source"]) for h in hits if h["_source"].get("user_id") == user_id]

    @mapped
    def search_memories(
        self, user_id: str, query: SearchQuery, filter: MemoryFilter | None = None
    ) -> list[ScoredMemory]:
        """Hybrid search over one user's memories, best first; no text and no vector finds nothing."""
        check_user_id(user_id)
        filter_query = q.memory_filter(user_id, filter or MemoryFilter())
        hits, sources = self._hybrid("memories", user_id, filter_query, query)
        return [ScoredMemory.of(q.doc_to_memory(sources[h.id]), h) for h in hits]

    @mapped
    def memory_text_ranking(
        self, user_id: str, query: SearchQuery, filter: MemoryFilter | None = None
    ) -> list[str] | None:
        """None: as `message_text_ranking`, the search's own `_msearch` is cheaper than a ranking ahead."""
        check_user_id(user_id)
        return None

    @mapped
    def touch_memories(self, user_id: str, memory_ids: Sequence[str], at: datetime) -> None:
        """Count an access (access_count + 1, last_accessed_at) without writing an event."""
        check_user_id(user_id)
        stamp = _aware(at, "last_accessed_at")

        def touch(_: str, source: dict[str, Any]) -> dict[str, Any] | None:
            if source.get("user_id") != user_id:
                return None
            return {"access_count": int(source.get("access_count") or 0) + 1, "last_accessed_at": stamp}

        self._update_each("memories", memory_ids, ("user_id", "access_count"), touch, None)

    @mapped
    def history(self, user_id: str, memory_id: str) -> list[MemoryEvent]:
        """Every event of one memory, oldest first (read by id: realtime, no refresh needed)."""
        check_user_id(user_id)
        if not _storable(memory_id):
            return []
        source = self._get(self.alias("memories"), memory_id)
        if source is None or source.get("user_id") != user_id:
            return []
        ids = [_event_id(memory_id, seq) for seq in range(int(source.get("event_seq", 0)))]
        found = self._mget(self.alias("events"), ids)
        docs = sorted((d for d in found.values() if d.get("user_id") == user_id), key=lambda d: d["seq"])
        return [q.doc_to_event(d) for d in docs]

    # -- hybrid search -------------------------------------------------------------------------------

    def _hybrid(
        self, kind: str, user_id: str, filter_query: dict[str, Any], query: SearchQuery
    ) -> tuple[list[FusedHit], dict[str, dict[str, Any]]]:
        """kNN and BM25 in one `_msearch`, fused by reciprocal rank: the hits, best first, and their sources."""
        if query.top_k <= 0:
            return [], {}
        k = min(q.MAX_WINDOW, max(query.candidates, query.top_k))
        messages = kind == "messages"
        searches: list[dict[str, Any]] = []
        channels: list[str] = []
        if query.embedding is not None and len(query.embedding) > 0:
            dims = self._vector_dims()
            if dims is not None and len(query.embedding) != dims:
                raise ValidationError(
                    f"query embedding has {len(query.embedding)} dimensions; this store's vectors have {dims}"
                )
            if dims is not None:
                searches += [{}, q.knn_body(
                    filter_query, query.embedding, k, messages=messages, with_vectors=query.with_vectors
                )]
                channels.append("vector")
        ahead = None if query.text_ranking is None else list(query.text_ranking)[:k]
        if ahead:  # the text channel ran ahead (SearchQuery.text_ranking): fetch those documents only
            searches += [{}, q.ids_body(filter_query, ahead, messages=messages, with_vectors=query.with_vectors)]
            channels.append("text")
        elif ahead is None and query.text is not None and query.text.strip():
            searches += [{}, q.text_body(
                filter_query, query.text, k, messages=messages, with_vectors=query.with_vectors
            )]
            channels.append("text")
        if not channels:
            return [], {}
        hits = self._msearch(kind, user_id, searches, channels)
        if ahead:
            order = {doc_id: n for n, doc_id in enumerate(ahead)}
            hits["text"].sort(key=lambda h: order.get(h["_id"], len(order)))
        sources = {h["_id"]: h["_source"] for ch in reversed(channels) for h in hits[ch]}
        similarity = {h["_id"]: 2.0 * float(h["_score"]) - 1.0 for h in hits.get("vector", [])}
        ranked = {ch: [h["_id"] for h in hits.get(ch, [])] for ch in ("vector", "text")}
        fused = fuse_channels(
            ranked["vector"], ranked["text"], k=query.rrf_k, top_k=query.top_k, similarity=similarity.get
        )
        return fused, sources

    def _msearch(
        self, kind: str, user_id: str, searches: list[dict[str, Any]], channels: list[str]
    ) -> dict[str, list[dict[str, Any]]]:
        """Run one `_msearch` of (header, body) pairs: each channel's hits of this user, in ES's order."""
        resp = self._es().msearch(index=self.alias(kind), searches=searches)
        hits: dict[str, list[dict[str, Any]]] = {}
        for channel, answer in zip(channels, resp["responses"], strict=True):
            if "error" in answer:
                cls = StoreUnavailable if answer.get("status") in RETRYABLE else StoreError
                raise cls(f"Elasticsearch {channel} search of {kind} failed: {answer['error']}")
            hits[channel] = [h for h in answer["hits"]["hits"] if h["_source"].get("user_id") == user_id]
        return hits

    # -- users ---------------------------------------------------------------------------------------

    @mapped
    def delete_user(self, user_id: str) -> int:
        """Delete the user's messages, memories and events; returns how many documents went."""
        check_user_id(user_id)
        es = self._es()
        indices = [self.alias(kind) for kind in ("messages", "memories", "events")]
        query = {"bool": {"filter": [{"term": {"user_id": user_id}}]}}
        deleted = 0
        for _ in range(3):
            es.indices.refresh(index=indices)
            deleted += self._delete_matching(indices, query)
            es.indices.refresh(index=indices)
            if not es.count(index=indices, query=query)["count"]:
                return deleted
        raise StoreUnavailable(
            f"deleting user {user_id!r} kept finding new documents (concurrent writes); retry delete_user"
        )

    def _delete_matching(self, indices: list[str], query: dict[str, Any]) -> int:
        """Bulk-delete every document `query` selects, walked under a point-in-time with search_after."""
        es, deleted = self._es(), 0
        pit = es.open_point_in_time(index=indices, keep_alive="1m")["id"]
        try:
            after: list[Any] | None = None
            while True:
                resp = es.search(
                    pit={"id": pit, "keep_alive": "1m"},
                    query=query,
                    sort=[{"_shard_doc": "asc"}],
                    size=_PAGE,
                    search_after=after,
                    source=False,
                    track_total_hits=False,
                )
                pit = resp.get("pit_id", pit)
                hits = resp["hits"]["hits"]
                if not hits:
                    return deleted
                actions: list[_Action] = [({"delete": {"_index": h["_index"], "_id": h["_id"]}},) for h in hits]
                results = self._bulk(actions, None, require_alias=False)
                self._raise_failed("delete_user", results, ok=frozenset({404}))
                deleted += sum(1 for r in results if r.get("result") == "deleted")
                after = hits[-1]["sort"]
        finally:
            es.close_point_in_time(id=pit)

    @mapped
    def stats(self, user_id: str) -> StoreStats:
        """Counts of messages and memories for one user."""
        check_user_id(user_id)
        es = self._es()
        user = {"bool": {"filter": [{"term": {"user_id": user_id}}]}}
        msgs = es.search(
            index=self.alias("messages"),
            size=0,
            track_total_hits=True,
            query=user,
            aggs={"pending": {"filter": {"bool": {"must_not": [{"exists": {"field": "consolidated_at"}}]}}}},
        )
        mems = es.search(
            index=self.alias("memories"),
            size=0,
            query=user,
            aggs={
                "status": {
                    "terms": {"field": "status", "size": 16},
                    "aggs": {"type": {"terms": {"field": "memory_type", "size": 64}}},
                }
            },
        )
        counts = {
            s["key"]: {t["key"]: int(t["doc_count"]) for t in s["type"]["buckets"]}
            for s in mems["aggregations"]["status"]["buckets"]
        }
        return StoreStats(
            pending_messages=int(msgs["aggregations"]["pending"]["doc_count"]),
            total_messages=int(msgs["hits"]["total"]["value"]),
            memories=counts,
        )
