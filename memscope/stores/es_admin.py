"""Index administration of the Elasticsearch store: set-up, versioned migration, deletion.

Functions take the client and the index prefix; `ElasticsearchStore.init_indices`, `migrate` and
`delete_indices` call them (under its error boundary). See `es_templates` for the layout.
"""

from __future__ import annotations

import contextlib
from typing import Any

from memscope.errors import StoreError
from memscope.stores.es_errors import import_es
from memscope.stores.es_templates import (
    KINDS,
    TEMPLATE_VERSION,
    alias_name,
    index_name,
    index_template,
    parse_index_version,
    template_name,
)

__all__ = ["delete_indices", "init_indices", "migrate", "server_version", "template_version"]

REINDEX_TIMEOUT_S = 3600.0


def server_version(client: Any) -> tuple[int, int]:
    """(major, minor) of the server; (0, 0) when the number is not plain digits."""
    number = str(client.info()["version"]["number"])
    parts = [*number.split("-")[0].split("."), "0", "0"][:2]
    return (int(parts[0]), int(parts[1])) if all(p.isdigit() for p in parts) else (0, 0)


def template_version(client: Any, prefix: str, kind: str) -> int | None:
    """The `_meta.version` of one kind's index template, or None when it is not there."""
    es = import_es()
    try:
        resp = client.indices.get_index_template(name=template_name(prefix, kind))
    except es.NotFoundError:
        return None
    found = resp.get("index_templates") or [{}]
    return int(found[0].get("index_template", {}).get("_meta", {}).get("version", 0))


def init_indices(client: Any, prefix: str, server: tuple[int, int]) -> None:
    """Idempotent set-up: put outdated index templates, create `-vN` indices and aliases if missing."""
    es = import_es()
    keep_vectors = server >= (9, 2)
    for kind in KINDS:
        current = template_version(client, prefix, kind)
        if current is None or current < TEMPLATE_VERSION:
            client.indices.put_index_template(**index_template(prefix, kind, keep_source_vectors=keep_vectors))
        alias = alias_name(prefix, kind)
        if client.indices.exists_alias(name=alias):
            continue
        index = index_name(prefix, kind, max(current or 0, TEMPLATE_VERSION))
        try:
            client.indices.create(index=index, aliases={alias: {}})
        except es.BadRequestError as exc:
            if "resource_already_exists" not in str(exc):
                raise
            client.indices.put_alias(index=index, name=alias)


def migrate(
    client: Any, prefix: str, server: tuple[int, int], new_version: int, *, delete_old: bool = False
) -> list[tuple[str, str, str]]:
    """Reindex every kind into `-v{new_version}` and move its alias atomically.

    Returns (kind, old index, new index) for each kind moved; kinds already at that version or
    later are skipped, so a re-run after a failure continues where it stopped.
    """
    keep_vectors = server >= (9, 2)
    moved: list[tuple[str, str, str]] = []
    for kind in KINDS:
        alias = alias_name(prefix, kind)
        indices = sorted(client.indices.get_alias(name=alias))
        if len(indices) != 1:
            raise StoreError(f"alias {alias} points to {indices}; it must point to exactly one index")
        old = indices[0]
        if (parse_index_version(old) or 0) >= new_version:
            continue
        client.indices.put_index_template(
            **index_template(prefix, kind, new_version, keep_source_vectors=keep_vectors)
        )
        new = index_name(prefix, kind, new_version)
        properties = client.indices.get_mapping(index=old)[old]["mappings"].get("properties", {})
        extra = {"embedding": properties["embedding"]} if "embedding" in properties else None
        if not client.indices.exists(index=new):
            client.indices.create(index=new, mappings={"properties": extra} if extra else None)
        resp = client.options(request_timeout=REINDEX_TIMEOUT_S).reindex(
            source={"index": old}, dest={"index": new}, wait_for_completion=True, refresh=True
        )
        if resp.get("failures"):
            raise StoreError(f"reindex {old} -> {new} failed: {resp['failures'][:3]}; {alias} unchanged")
        client.indices.update_aliases(
            actions=[{"remove": {"index": old, "alias": alias}}, {"add": {"index": new, "alias": alias}}]
        )
        if delete_old:
            client.indices.delete(index=old)
        moved.append((kind, old, new))
    return moved


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
