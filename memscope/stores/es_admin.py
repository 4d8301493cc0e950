"""Index administration of the Elasticsearch store: feature detection, set-up, migration, deletion.

Functions take the client and the index prefix; `ElasticsearchStore.init_indices`, `migrate` and
`delete_indices` call them (under its error boundary). See `es_templates` for the layout.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from memscope.errors import StoreError
from memscope.models import LEGACY_REFLECTED_KEY, Message, replied_turn_text
from memscope.stores.es_compat import parse_version
from memscope.stores.es_errors import import_es
from memscope.stores.es_queries import doc_to_message
from memscope.stores.es_templates import (
    ADDED_FIELDS,
    KINDS,
    PROPERTIES,
    TEMPLATE_VERSION,
    alias_name,
    index_name,
    index_template,
    parse_index_version,
    template_name,
)

__all__ = [
    "Features",
    "MigrateProgress",
    "backfill_replied_to",
    "delete_indices",
    "detect_features",
    "init_indices",
    "migrate",
    "server_version",
    "template_version",
]

COPY_PAGE = 1000
PIT_KEEP_ALIVE = "5m"
MigrateProgress = Callable[[str, int, int], None]  # (kind, documents copied so far, total)


@dataclass(frozen=True)
class Features:
    """What the server offers beyond its core: decides the analyzer; recorded in each index's `_meta`."""

    version: tuple[int, int]
    painless: bool = False
    reindex: bool = False
    analysis_common: bool = False

    def as_meta(self) -> dict[str, Any]:
        """The form stored in a mapping's `_meta.memscope.features`."""
        return {
            "server": ".".join(map(str, self.version)),
            "painless": self.painless,
            "reindex": self.reindex,
            "analysis_common": self.analysis_common,
        }


def server_version(client: Any) -> tuple[int, int]:
    """(major, minor) of the server (its lowest node); (0, 0) when it cannot be told."""
    resp = client.nodes.info(node_id="_local", filter_path="nodes.*.version")
    numbers = [str(n["version"]) for n in dict(resp).get("nodes", {}).values()]
    return min((parse_version(n) for n in numbers), default=(0, 0))


def detect_features(client: Any) -> Features:
    """The server's version and which optional modules every node has (painless, reindex, analysis-common)."""
    version = server_version(client)
    resp = client.nodes.info(metric="plugins", filter_path="nodes.*.modules.name,nodes.*.plugins.name")
    per_node = [
        {m["name"] for m in node.get("modules", []) + node.get("plugins", [])}
        for node in dict(resp).get("nodes", {}).values()
    ]
    common = set.intersection(*per_node) if per_node else set()
    return Features(
        version=version,
        painless="lang-painless" in common,
        reindex="reindex" in common,
        analysis_common="analysis-common" in common,
    )


def _template(prefix: str, kind: str, features: Features, version: int = TEMPLATE_VERSION) -> dict[str, Any]:
    return index_template(
        prefix,
        kind,
        version,
        keep_source_vectors=features.version >= (9, 2),
        analysis_common=features.analysis_common,
        features=features.as_meta(),
    )


def template_version(client: Any, prefix: str, kind: str) -> int | None:
    """The `_meta.version` of one kind's index template, or None when it is not there."""
    es = import_es()
    try:
        resp = client.indices.get_index_template(name=template_name(prefix, kind))
    except es.NotFoundError:
        return None
    found = resp.get("index_templates") or [{}]
    return int(found[0].get("index_template", {}).get("_meta", {}).get("version", 0))


def init_indices(client: Any, prefix: str, features: Features) -> None:
    """Idempotent set-up: put outdated index templates, create `-vN` indices and aliases if missing."""
    es = import_es()
    for kind in KINDS:
        current = template_version(client, prefix, kind)
        if current is None or current < TEMPLATE_VERSION or _lacks_added_fields(client, prefix, kind):
            client.indices.put_index_template(**_template(prefix, kind, features))
        alias = alias_name(prefix, kind)
        if client.indices.exists_alias(name=alias):
            add_new_fields(client, alias, kind)
            continue
        index = index_name(prefix, kind, max(current or 0, TEMPLATE_VERSION))
        try:
            client.indices.create(index=index, aliases={alias: {}})
        except es.BadRequestError as exc:
            if "resource_already_exists" not in str(exc):
                raise
            client.indices.put_alias(index=index, name=alias)


def _lacks_added_fields(client: Any, prefix: str, kind: str) -> bool:
    """True when the kind's index template predates a field of ADDED_FIELDS."""
    if kind not in ADDED_FIELDS:
        return False
    found = client.indices.get_index_template(name=template_name(prefix, kind)).get("index_templates") or [{}]
    properties = found[0].get("index_template", {}).get("template", {}).get("mappings", {}).get("properties", {})
    return any(name not in properties for name in ADDED_FIELDS[kind])


def add_new_fields(client: Any, alias: str, kind: str) -> None:
    """Map the fields of ADDED_FIELDS an index created before them lacks (documents keep what they had)."""
    if kind not in ADDED_FIELDS:
        return
    for body in client.indices.get_mapping(index=alias).values():
        properties = body["mappings"].get("properties", {})
        missing = {name: PROPERTIES[kind][name] for name in ADDED_FIELDS[kind] if name not in properties}
        if missing:
            client.indices.put_mapping(index=alias, properties=missing)


def upgraded_source(kind: str, source: dict[str, Any]) -> dict[str, Any]:
    """A document as this version stores it: a memory's legacy metadata `reflected_at` becomes the field."""
    metadata = source.get("metadata")
    if kind != "memories" or not isinstance(metadata, dict) or LEGACY_REFLECTED_KEY not in metadata:
        return source
    rest = {k: v for k, v in metadata.items() if k != LEGACY_REFLECTED_KEY}
    reflected = source.get("reflected_at") or metadata[LEGACY_REFLECTED_KEY]
    return {**source, "metadata": rest, "reflected_at": reflected}


def migrate(
    client: Any,
    prefix: str,
    features: Features,
    new_version: int,
    *,
    delete_old: bool = False,
    progress: MigrateProgress | None = None,
) -> list[tuple[str, str, str]]:
    """Copy every kind into `-v{new_version}` (point-in-time + bulk) and move its alias atomically.

    Returns (kind, old index, new index) for each kind moved. Resumable: kinds already moved are
    skipped, and a kind whose copy stopped part-way continues after the last id it copied (kept in
    the new index's `_meta`). Stop writers first: writes to the old index during the copy may be missed.
    """
    moved: list[tuple[str, str, str]] = []
    for kind in KINDS:
        alias = alias_name(prefix, kind)
        indices = sorted(client.indices.get_alias(name=alias))
        if len(indices) != 1:
            raise StoreError(f"alias {alias} points to {indices}; it must point to exactly one index")
        old = indices[0]
        if (parse_index_version(old) or 0) >= new_version:
            continue
        client.indices.put_index_template(**_template(prefix, kind, features, new_version))
        new = index_name(prefix, kind, new_version)
        properties = client.indices.get_mapping(index=old)[old]["mappings"].get("properties", {})
        extra = {"embedding": properties["embedding"]} if "embedding" in properties else None
        if not client.indices.exists(index=new):
            client.indices.create(index=new, mappings={"properties": extra} if extra else None)
        _copy(client, kind, old, new, progress)
        client.indices.update_aliases(
            actions=[{"remove": {"index": old, "alias": alias}}, {"add": {"index": new, "alias": alias}}]
        )
        if delete_old:
            client.indices.delete(index=old)
        moved.append((kind, old, new))
    return moved


def _checkpoint(client: Any, index: str) -> tuple[str | None, int]:
    """(last id copied, documents copied) recorded in the new index's `_meta`, or (None, 0)."""
    meta = client.indices.get_mapping(index=index)[index]["mappings"].get("_meta", {}).get("memscope", {})
    return meta.get("copied_after"), int(meta.get("copied", 0))


def _save_checkpoint(client: Any, index: str, after: str, copied: int) -> None:
    meta = client.indices.get_mapping(index=index)[index]["mappings"].get("_meta", {})
    meta["memscope"] = {**meta.get("memscope", {}), "copied_after": after, "copied": copied}
    client.indices.put_mapping(index=index, meta=meta)


def _copy(client: Any, kind: str, old: str, new: str, progress: MigrateProgress | None) -> None:
    """Copy `old` into `new` in `id` order under a point-in-time, checkpointing each page."""
    client.indices.refresh(index=old)  # events are written without refresh: make them visible first
    after, copied = _checkpoint(client, new)
    query: dict[str, Any] = {"match_all": {}} if after is None else {"range": {"id": {"gt": after}}}
    total = copied + int(client.count(index=old, query=query)["count"])
    if progress:
        progress(kind, copied, total)
    pit = client.open_point_in_time(index=old, keep_alive=PIT_KEEP_ALIVE)["id"]
    try:
        search_after: list[Any] | None = None
        while True:
            resp = client.search(
                pit={"id": pit, "keep_alive": PIT_KEEP_ALIVE},
                query=query,
                sort=[{"id": {"order": "asc", "missing": "_first", "unmapped_type": "keyword"}}, {"_shard_doc": "asc"}],
                size=COPY_PAGE,
                search_after=search_after,
                track_total_hits=False,
            )
            pit = resp.get("pit_id", pit)
            hits = resp["hits"]["hits"]
            if not hits:
                break
            operations: list[dict[str, Any]] = []
            for hit in hits:
                operations += [{"index": {"_index": new, "_id": hit["_id"]}}, upgraded_source(kind, hit["_source"])]
            result = client.bulk(operations=operations, refresh=False)
            if result.get("errors"):
                bad = [next(iter(i.values())) for i in result["items"] if next(iter(i.values())).get("error")]
                raise StoreError(f"copy {old} -> {new} failed for {len(bad)} document(s): {bad[:3]}; re-run to resume")
            copied += len(hits)
            last_id = hits[-1]["_source"].get("id")
            if isinstance(last_id, str):
                _save_checkpoint(client, new, last_id, copied)
            if progress:
                progress(kind, copied, total)
            search_after = hits[-1]["sort"]
    finally:
        client.close_point_in_time(id=pit)
    client.indices.refresh(index=new)


def backfill_replied_to(client: Any, alias: str, progress: Callable[[int], None] | None = None) -> int:
    """Give messages stored before `replied_to` existed the turn each replies to; returns how many changed.

    Finds the conversations holding such messages (a composite aggregation), walks each in turn order
    (`search_after` pages) and bulk-updates the messages that lack the field. Every message written
    since has it ("" for a first turn), so a second run finds nothing to do. Idempotent and resumable.
    """
    client.indices.refresh(index=alias)
    lacking = {"bool": {"must_not": [{"exists": {"field": "replied_to"}}]}}
    sources = [{f: {"terms": {"field": f, "missing_bucket": True}}} for f in ("user_id", "agent_id", "session_id")]
    changed, after_key = 0, None
    while True:
        composite: dict[str, Any] = {"size": 100, "sources": sources}
        if after_key is not None:
            composite["after"] = after_key
        resp = client.search(index=alias, query=lacking, size=0, aggs={"c": {"composite": composite}})
        agg = resp["aggregations"]["c"]
        for bucket in agg["buckets"]:
            changed += _backfill_conversation(client, alias, bucket["key"])
            if progress:
                progress(changed)
        after_key = agg.get("after_key")
        if not agg["buckets"] or after_key is None:
            break
    client.indices.refresh(index=alias)
    return changed


def _backfill_conversation(client: Any, alias: str, key: dict[str, Any]) -> int:
    """Fill `replied_to` where missing along one conversation (user, agent, session), in turn order."""
    clauses: list[dict[str, Any]] = [{"term": {"user_id": key["user_id"]}}, {"term": {"agent_id": key["agent_id"]}}]
    query: dict[str, Any] = {"filter": clauses}
    if key.get("session_id") is None:
        query["must_not"] = [{"exists": {"field": "session_id"}}]
    else:
        clauses.append({"term": {"session_id": key["session_id"]}})
    previous: Message | None = None
    changed, search_after = 0, None
    while True:
        resp = client.search(
            index=alias,
            query={"bool": query},
            sort=[{"created_us": "asc"}, {"id": "asc"}],
            size=COPY_PAGE,
            search_after=search_after,
            source={"excludes": ["embedding"]},
            track_total_hits=False,
        )
        hits = resp["hits"]["hits"]
        operations: list[dict[str, Any]] = []
        for hit in hits:
            if "replied_to" not in hit["_source"]:
                operations += [{"update": {"_index": alias, "_id": hit["_id"]}},
                               {"doc": {"replied_to": replied_turn_text(previous)}}]  # fmt: skip
            previous = doc_to_message(hit["_source"])
        if operations:
            result = client.bulk(operations=operations, refresh=False)
            if result.get("errors"):
                bad = [next(iter(i.values())) for i in result["items"] if next(iter(i.values())).get("error")]
                raise StoreError(f"replied_to backfill failed for {len(bad)} message(s): {bad[:3]}; run it again")
            changed += len(operations) // 2
        if len(hits) < COPY_PAGE:
            return changed
        search_after = hits[-1]["sort"]


def delete_indices(client: Any, prefix: str) -> list[str]:
    """Delete every index and template of this prefix (irreversible); returns the indices deleted.

    Names are listed first and deleted one by one, so it works with
    `action.destructive_requires_name` (the default since Elasticsearch 8).
    """
    mod = import_es()
    deleted: list[str] = []
    for kind in KINDS:
        try:
            indices = sorted(client.indices.get(index=f"{prefix}-{kind}-v*"))
        except mod.NotFoundError:
            indices = []
        for index in indices:
            client.indices.delete(index=index)
            deleted.append(index)
        with contextlib.suppress(mod.NotFoundError):
            client.indices.delete_index_template(name=template_name(prefix, kind))
    return deleted
