"""Pure builders of what the Elasticsearch store sends: documents, filters, search bodies, scripts.

Nothing here talks to a server, so every request shape is unit-tested. A user id (or any other
caller value) is only ever placed as a value inside a `term`/`terms`/`range`/`match` clause: it can
never change a query's structure.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from memscope.models import EventTime, MemoryEvent, MemoryNode, Message
from memscope.stores.base import MemoryFilter, MessageFilter
from memscope.stores.changes import ACCESS_FIELDS

__all__ = [
    "MAX_WINDOW",
    "MESSAGE_TEXT_FIELDS",
    "REPLIED_BOOST",
    "comparable",
    "doc_to_event",
    "doc_to_memory",
    "doc_to_message",
    "event_doc",
    "knn_body",
    "list_body",
    "memory_doc",
    "memory_filter",
    "message_doc",
    "message_filter",
    "neighbour_body",
    "num_candidates",
    "search_kwargs",
    "text_body",
    "to_us",
    "utc_node",
]

MESSAGE_TEXT_FIELDS = ("content", "name.text")  # searched together (BM25F) for messages
# BM25 weight of a message's `replied_to` (the turn it replies to) against its own text, as SQLite's
# messages_fts.context: a question's words find the answer after it, a turn saying them itself ranks first
REPLIED_BOOST = 0.3
MAX_WINDOW = 10_000  # index.max_result_window and the kNN num_candidates ceiling
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)
_NO_VECTOR_SOURCE = {"excludes": ["embedding"]}  # Message has no embedding field; a search may not want it

# -- times ---------------------------------------------------------------------------------------------


def to_us(value: datetime) -> int:
    """Microseconds since the Unix epoch of an aware datetime (exact integer arithmetic)."""
    if value.tzinfo is None:
        raise ValueError(f"datetime {value.isoformat()} must be timezone-aware")
    return (value - _EPOCH) // _US


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat()


# -- documents -----------------------------------------------------------------------------------------


def utc_node(node: MemoryNode) -> MemoryNode:
    """The node with every datetime in UTC (the form stored and returned)."""
    update: dict[str, Any] = {
        "created_at": node.created_at.astimezone(UTC),
        "updated_at": node.updated_at.astimezone(UTC),
    }
    if node.last_accessed_at is not None:
        update["last_accessed_at"] = node.last_accessed_at.astimezone(UTC)
    if node.reflected_at is not None:
        update["reflected_at"] = node.reflected_at.astimezone(UTC)
    if node.event_time is not None:
        update["event_time"] = EventTime(
            start=node.event_time.start.astimezone(UTC),
            end=node.event_time.end.astimezone(UTC),
            granularity=node.event_time.granularity,
        )
    return node.model_copy(update=update)


def comparable(node: MemoryNode) -> dict[str, Any]:
    """What decides whether a write is a real change: all but updated_at and the access counters."""
    return utc_node(node).model_dump(mode="json", exclude=set(ACCESS_FIELDS))


def memory_doc(node: MemoryNode, event_seq: int) -> dict[str, Any]:
    """The stored document of a memory: the node (UTC) plus its precomputed span and sort keys."""
    node = utc_node(node)
    doc = node.model_dump(mode="json")
    if doc.get("embedding") is None:
        doc.pop("embedding", None)
    span = node.time_span()
    doc.update(
        time_start=_iso(span.start),
        time_end=_iso(span.effective_end()),
        time_start_us=to_us(span.start),
        time_end_us=to_us(span.effective_end()),
        created_us=to_us(node.created_at),
        event_seq=event_seq,
    )
    return doc


def doc_to_memory(source: dict[str, Any]) -> MemoryNode:
    """A MemoryNode from a stored document (extra index-only fields dropped)."""
    return MemoryNode.model_validate({k: source[k] for k in MemoryNode.model_fields if k in source})


def message_doc(message: Message, replied_to: str | None = None) -> dict[str, Any]:
    """The stored document of a message: the message (UTC) plus its sort key and `replied_to`, the
    `replied_turn_text` of the turn before it ("" for none; None leaves the field out)."""
    doc = message.model_dump(mode="json")
    doc["created_at"] = _iso(message.created_at)
    if message.consolidated_at is not None:
        doc["consolidated_at"] = _iso(message.consolidated_at)
    doc["created_us"] = to_us(message.created_at)
    if replied_to is not None:
        doc["replied_to"] = replied_to
    return doc


def doc_to_message(source: dict[str, Any]) -> Message:
    """A Message from a stored document (vector and index-only fields dropped)."""
    return Message.model_validate({k: source[k] for k in Message.model_fields if k in source})


def event_doc(event: MemoryEvent, seq: int) -> dict[str, Any]:
    """The stored document of a memory event; `seq` is its 0-based position in the memory's log."""
    doc = event.model_dump(mode="json")
    doc["created_at"] = _iso(event.created_at)
    doc["seq"] = seq
    return doc


def doc_to_event(source: dict[str, Any]) -> MemoryEvent:
    """A MemoryEvent from a stored document."""
    return MemoryEvent.model_validate({k: source[k] for k in MemoryEvent.model_fields if k in source})


# -- filters -------------------------------------------------------------------------------------------


def memory_filter(user_id: str, f: MemoryFilter) -> dict[str, Any]:
    """A bool filter selecting one user's memories under `f` (a time range overlaps the span)."""
    clauses: list[dict[str, Any]] = [{"term": {"user_id": user_id}}]
    if f.agent_id is not None:
        clauses.append({"term": {"agent_id": f.agent_id}})
    if f.memory_types is not None:
        clauses.append({"terms": {"memory_type": [str(t) for t in f.memory_types]}})
    clauses.append({"terms": {"status": [str(s) for s in f.statuses]}})
    if f.time_range is not None:
        clauses.append({"range": {"time_start_us": {"lt": to_us(f.time_range.effective_end())}}})
        clauses.append({"range": {"time_end_us": {"gt": to_us(f.time_range.start)}}})
    if f.key is not None:
        clauses.append({"term": {"key": f.key}})
    if f.ids is not None:
        clauses.append({"terms": {"id": list(f.ids)}})
    if f.created_after is not None:
        clauses.append({"range": {"created_us": {"gt": to_us(f.created_after)}}})
    if f.created_before is not None:
        clauses.append({"range": {"created_us": {"lt": to_us(f.created_before)}}})
    if f.reflected is True:
        clauses.append({"exists": {"field": "reflected_at"}})
    elif f.reflected is False:
        return {"bool": {"filter": clauses, "must_not": [{"exists": {"field": "reflected_at"}}]}}
    return {"bool": {"filter": clauses}}


def message_filter(user_id: str, f: MessageFilter) -> dict[str, Any]:
    """A bool filter selecting one user's messages under `f`; pending means no consolidated_at."""
    clauses: list[dict[str, Any]] = [{"term": {"user_id": user_id}}]
    must_not: list[dict[str, Any]] = []
    if f.agent_id is not None:
        clauses.append({"term": {"agent_id": f.agent_id}})
    if f.session_id is not None:
        clauses.append({"term": {"session_id": f.session_id}})
    if f.pending is True:
        must_not.append({"exists": {"field": "consolidated_at"}})
    elif f.pending is False:
        clauses.append({"exists": {"field": "consolidated_at"}})
    if f.time_range is not None:
        bounds = {"gte": to_us(f.time_range.start), "lt": to_us(f.time_range.effective_end())}
        clauses.append({"range": {"created_us": bounds}})
    if f.ids is not None:
        clauses.append({"terms": {"id": list(f.ids)}})
    query: dict[str, Any] = {"filter": clauses}
    if must_not:
        query["must_not"] = must_not
    return {"bool": query}


# -- search bodies -------------------------------------------------------------------------------------


def num_candidates(k: int) -> int:
    """Per-shard HNSW candidates for a kNN of `k`: twice k, at least 100, at most 10,000.

    At 100k memories of one user, k = 50, 100 candidates found every exact neighbour and 50 did not
    (`python -m benchmarks.knn_recall`; the README has the table).
    """
    return min(MAX_WINDOW, max(100, 2 * k))


def knn_body(
    filter_query: dict[str, Any], vector: Sequence[float], k: int, *, messages: bool, with_vectors: bool = True
) -> dict[str, Any]:
    """A top-level `knn` search of `k` nearest vectors among the documents `filter_query` selects."""
    body: dict[str, Any] = {
        "size": k,
        "knn": {
            "field": "embedding",
            "query_vector": [float(x) for x in vector],
            "k": k,
            "num_candidates": num_candidates(k),
            "filter": filter_query,
        },
        "track_total_hits": False,
    }
    if messages or not with_vectors:
        body["_source"] = _NO_VECTOR_SOURCE
    return body


def text_body(
    filter_query: dict[str, Any], text: str, size: int, *, messages: bool, with_vectors: bool = True
) -> dict[str, Any]:
    """A BM25 search of `text` (its words OR'ed) among the documents `filter_query` selects.

    Memories match on `content`; messages on `content` and the speaker's `name` as one field
    (`combined_fields`, BM25F), as the SQLite store indexes `name: content`, so "what did Caroline
    say" finds Caroline's turns, or on `replied_to` (the turn replied to) at REPLIED_BOOST.
    """
    if messages:
        own = {"combined_fields": {"query": text, "fields": list(MESSAGE_TEXT_FIELDS)}}
        replied = {"match": {"replied_to": {"query": text, "boost": REPLIED_BOOST}}}
        should: dict[str, Any] = {"should": [own, replied], "minimum_should_match": 1}
        query: dict[str, Any] = {"bool": {**should, "filter": [filter_query]}}
    else:
        query = {"bool": {"must": [{"match": {"content": {"query": text}}}], "filter": [filter_query]}}
    body: dict[str, Any] = {"size": size, "query": query, "track_total_hits": False}
    if messages or not with_vectors:
        body["_source"] = _NO_VECTOR_SOURCE
    return body


def ids_body(
    filter_query: dict[str, Any], ids: Sequence[str], *, messages: bool, with_vectors: bool = True
) -> dict[str, Any]:
    """The documents with these ids among those `filter_query` selects (a text ranking run ahead)."""
    body: dict[str, Any] = {
        "size": len(ids),
        "query": {"bool": {"filter": [filter_query, {"ids": {"values": list(ids)}}]}},
        "track_total_hits": False,
    }
    if messages or not with_vectors:
        body["_source"] = _NO_VECTOR_SOURCE
    return body


def list_body(
    filter_query: dict[str, Any],
    sort: list[dict[str, str]],
    size: int,
    *,
    offset: int = 0,
    search_after: list[Any] | None = None,
    messages: bool = False,
) -> dict[str, Any]:
    """A sorted listing page: `from`/`size` within the first 10,000 hits, else `search_after`."""
    body: dict[str, Any] = {"query": filter_query, "sort": sort, "size": size, "track_total_hits": False}
    if offset:
        body["from"] = offset
    if search_after is not None:
        body["search_after"] = search_after
    if messages:
        body["_source"] = _NO_VECTOR_SOURCE
    return body


def neighbour_body(anchor: dict[str, Any], size: int, *, later: bool) -> dict[str, Any]:
    """The `size` messages just before (or after, `later`) `anchor` in its conversation: the same user,
    agent and session (none: the messages without one), in (created_us, id) order, via `search_after`."""
    clauses: list[dict[str, Any]] = [{"term": {"user_id": anchor["user_id"]}},
                                     {"term": {"agent_id": anchor["agent_id"]}}]  # fmt: skip
    query: dict[str, Any] = {"filter": clauses}
    if anchor.get("session_id") is None:
        query["must_not"] = [{"exists": {"field": "session_id"}}]
    else:
        clauses.append({"term": {"session_id": anchor["session_id"]}})
    order = "asc" if later else "desc"
    return {
        "query": {"bool": query},
        "sort": [{"created_us": order}, {"id": order}],
        "search_after": [anchor["created_us"], anchor["id"]],
        "size": size,
        "track_total_hits": False,
        "_source": _NO_VECTOR_SOURCE,
    }


def search_kwargs(body: dict[str, Any]) -> dict[str, Any]:
    """A wire-format body as keyword arguments of the Python client's `search` (8.x and 9.x)."""
    renamed = {"_source": "source", "from": "from_"}
    return {renamed.get(key, key): value for key, value in body.items()}
