"""Index names, versioned index templates and mappings of the Elasticsearch store.

Each kind of record (messages, memories, events, meta) lives in a concrete index
`{prefix}-{kind}-v{N}` behind the alias `{prefix}-{kind}`, created from the index template
`{prefix}-{kind}-template` whose `_meta.version` is N. The code only ever reads and writes the
aliases, so `migrate` can reindex into `-v{N+1}` and move the alias in one atomic call.

Choices worth knowing:

- Text is analysed by `memscope_text`, chosen when the index is created from what the server has
  (recorded in the index's mapping `_meta.memscope`):
  - server core only (`ANALYSIS_CORE`): the `standard` tokenizer (which splits CJK text into single
    characters) and `lowercase`, so Chinese matches by characters and English by whole words;
  - with the `analysis-common` module (`ANALYSIS_COMMON`): also `cjk_width`, `porter_stem` (as
    SQLite's `porter` tokenizer) and `cjk_bigram` with `output_unigrams: true`, so Chinese matches
    by character pairs and a one-character query still finds something.
- `dynamic: false`: a field the mapping does not name is kept in `_source` but not indexed, so a
  newer model field round-trips without breaking writes.
- The `embedding` (dense_vector) field is NOT in the template: its dims are only known when an
  embedder is first seen, so the store adds it with `put_mapping` (see `vector_mapping`), and
  `migrate` copies it into the new index.
- ES `date` fields keep milliseconds, the model keeps microseconds: filters and sorts use `*_us`
  integer twins (microseconds since the epoch, UTC), so answers match the SQLite store exactly.
"""

from __future__ import annotations

import re
from typing import Any

from memscope.errors import ValidationError

__all__ = [
    "ADDED_FIELDS",
    "ANALYSIS_COMMON",
    "ANALYSIS_CORE",
    "KINDS",
    "PROPERTIES",
    "TEMPLATE_VERSION",
    "alias_name",
    "check_prefix",
    "index_name",
    "index_template",
    "parse_index_version",
    "template_name",
    "vector_mapping",
]

TEMPLATE_VERSION = 1
# Fields added to a kind's mapping after its template version was fixed: `init_indices` maps them on an
# index created before (adding a field is allowed in place), so no reindex is needed for them.
ADDED_FIELDS: dict[str, tuple[str, ...]] = {"messages": ("replied_to",), "memories": ("reflected_at",)}
KINDS = ("messages", "memories", "events", "meta")
TEMPLATE_PRIORITY = 500  # above Elastic's built-in templates (100), so ours always wins
_PREFIX = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,199}$")
_VERSION = re.compile(r"-v(\d+)$")

_KEYWORD = {"type": "keyword"}
_DATE = {"type": "date"}
_US = {"type": "long"}
_BLOB = {"type": "object", "enabled": False}
_TEXT = {"type": "text", "analyzer": "memscope_text"}

ANALYSIS_CORE: dict[str, Any] = {
    "analyzer": {"memscope_text": {"type": "custom", "tokenizer": "standard", "filter": ["lowercase"]}}
}
ANALYSIS_COMMON: dict[str, Any] = {
    "filter": {"memscope_cjk_bigram": {"type": "cjk_bigram", "output_unigrams": True}},
    "analyzer": {
        "memscope_text": {
            "type": "custom",
            "tokenizer": "standard",
            "filter": ["cjk_width", "lowercase", "porter_stem", "memscope_cjk_bigram"],
        }
    },
}

PROPERTIES: dict[str, dict[str, Any]] = {
    "messages": {
        "id": _KEYWORD,
        "user_id": _KEYWORD,
        "agent_id": _KEYWORD,
        "session_id": _KEYWORD,
        "role": _KEYWORD,
        "name": {"type": "keyword", "fields": {"text": _TEXT}},  # name.text: searched with content
        "content": _TEXT,
        "replied_to": _TEXT,  # the turn it replies to, searched at a lower boost (see ADDED_FIELDS)
        "created_at": _DATE,
        "created_us": _US,
        "consolidated_at": _DATE,
        "metadata": _BLOB,
    },
    "memories": {
        "id": _KEYWORD,
        "user_id": _KEYWORD,
        "agent_id": _KEYWORD,
        "memory_type": _KEYWORD,
        "status": _KEYWORD,
        "key": _KEYWORD,
        "content": _TEXT,
        "event_time": _BLOB,
        "time_start": _DATE,
        "time_end": _DATE,
        "time_start_us": _US,
        "time_end_us": _US,
        "created_at": _DATE,
        "created_us": _US,
        "updated_at": _DATE,
        "source_message_ids": _KEYWORD,
        "source_memory_ids": _KEYWORD,
        "superseded_by": _KEYWORD,
        "importance": {"type": "float"},
        "access_count": {"type": "integer"},
        "last_accessed_at": _DATE,
        "reflected_at": _DATE,  # see ADDED_FIELDS
        "event_seq": {"type": "integer"},
        "metadata": _BLOB,
    },
    "events": {
        "id": _KEYWORD,
        "user_id": _KEYWORD,
        "agent_id": _KEYWORD,
        "memory_id": _KEYWORD,
        "seq": {"type": "integer"},
        "kind": _KEYWORD,
        "operation": _KEYWORD,
        "run_id": _KEYWORD,
        "created_at": _DATE,
        "before": _BLOB,
        "after": _BLOB,
    },
    "meta": {"model": _KEYWORD, "dim": {"type": "integer"}, "recorded_at": _DATE},
}


def check_prefix(prefix: str) -> str:
    """Validate an index prefix: lowercase letters, digits, '-', '_', '.', not starting with a symbol."""
    if not isinstance(prefix, str) or not _PREFIX.match(prefix):
        raise ValidationError(
            f"index_prefix {prefix!r} is not a valid Elasticsearch index name prefix; use lowercase"
            " letters, digits, '-', '_' or '.', starting with a letter or digit (e.g. 'memscope')"
        )
    return prefix


def alias_name(prefix: str, kind: str) -> str:
    """The alias every read and write goes through, e.g. `memscope-memories`."""
    return f"{prefix}-{kind}"


def index_name(prefix: str, kind: str, version: int) -> str:
    """The concrete index of one template version, e.g. `memscope-memories-v1`."""
    return f"{prefix}-{kind}-v{version}"


def template_name(prefix: str, kind: str) -> str:
    """The index template's name, e.g. `memscope-memories-template`."""
    return f"{prefix}-{kind}-template"


def parse_index_version(index: str) -> int | None:
    """The N of a concrete index `...-vN`, or None when the name has no version suffix."""
    match = _VERSION.search(index)
    return int(match.group(1)) if match else None


def index_template(
    prefix: str,
    kind: str,
    version: int = TEMPLATE_VERSION,
    *,
    keep_source_vectors: bool = False,
    analysis_common: bool = False,
    features: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Keyword arguments for `indices.put_index_template` of one kind at one version.

    `keep_source_vectors` adds `index.mapping.exclude_source_vectors: false` (Elasticsearch 9.2+
    leaves vectors out of `_source` by default; older servers reject the setting).
    `analysis_common` picks the richer analyzer; `features` (what the server had) is recorded in
    the mapping's `_meta.memscope`, with the analyzer chosen.
    """
    settings: dict[str, Any] = {}
    meta: dict[str, Any] = {"template_version": version, "analysis": "common" if analysis_common else "core"}
    meta["features"] = dict(features or {})
    if kind in ("messages", "memories"):
        settings["analysis"] = ANALYSIS_COMMON if analysis_common else ANALYSIS_CORE
        if keep_source_vectors:
            settings["index"] = {"mapping": {"exclude_source_vectors": False}}
    return {
        "name": template_name(prefix, kind),
        "index_patterns": [f"{prefix}-{kind}-v*"],
        "priority": TEMPLATE_PRIORITY,
        "meta": {"version": version, "managed_by": "memscope", "kind": kind},
        "template": {
            "settings": settings,
            "mappings": {"dynamic": False, "_meta": {"memscope": meta}, "properties": PROPERTIES[kind]},
        },
    }


def vector_mapping(dim: int) -> dict[str, Any]:
    """The `embedding` field added to messages and memories once the embedder's dims are known."""
    return {
        "embedding": {
            "type": "dense_vector",
            "dims": dim,
            "index": True,
            "similarity": "cosine",
            "index_options": {"type": "hnsw"},
        }
    }
