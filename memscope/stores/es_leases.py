"""Per-user leases and the store's identity on Elasticsearch, as documents of the `meta` index.

A lease document (`lease-<sha256 of the user id>`) holds the holder, the fencing token and the expiry;
it is created with `op_type=create` and changed only with `if_seq_no`/`if_primary_term`, so two
processes racing for a lease cannot both win. Elasticsearch has no multi-document transaction: a
fenced write checks the token with a realtime GET just before it sends its bulk request.
"""

from __future__ import annotations

import contextlib
import hashlib
import time
import uuid
from typing import Any

from memscope.errors import LeaseLost
from memscope.stores.base import Fence

__all__ = ["STORE_ID_DOC", "acquire", "check_fence", "ensure_store_id", "lease_doc_id", "release", "renew"]

STORE_ID_DOC = "store_id"


def lease_doc_id(user_id: str) -> str:
    """The id of the user's lease document: hashed, so any user id fits and none can collide."""
    return "lease-" + hashlib.sha256(user_id.encode("utf-8", "surrogatepass")).hexdigest()


def _now_us() -> int:
    return int(time.time() * 1_000_000)


def _read(es: Any, mod: Any, index: str, doc_id: str) -> dict[str, Any] | None:
    """The document with its `_seq_no` and `_primary_term`, or None when it does not exist."""
    try:
        resp = es.get(index=index, id=doc_id)
    except mod.NotFoundError as exc:
        if isinstance(exc.body, dict) and exc.body.get("found") is False:
            return None
        raise
    return dict(resp)


def ensure_store_id(es: Any, mod: Any, index: str) -> str:
    """The store id document's value, created once (the first creator wins a race)."""
    doc = _read(es, mod, index, STORE_ID_DOC)
    if doc is not None:
        return str(doc["_source"]["store_id"])
    store_id = uuid.uuid4().hex
    try:
        es.index(index=index, id=STORE_ID_DOC, document={"store_id": store_id}, op_type="create",
                 require_alias=True, refresh=False)
    except mod.ConflictError:
        doc = _read(es, mod, index, STORE_ID_DOC)
        return str(doc["_source"]["store_id"]) if doc else store_id
    return store_id


def acquire(es: Any, mod: Any, index: str, user_id: str, holder: str, ttl_s: float) -> int | None:
    """Take the lease (free, expired or ours) with a conditional write; None while another holds it."""
    doc_id, now = lease_doc_id(user_id), _now_us()
    body = {"kind": "lease", "user_id": user_id, "holder": holder, "expires_us": now + int(ttl_s * 1_000_000)}
    doc = _read(es, mod, index, doc_id)
    try:
        if doc is None:
            es.index(index=index, id=doc_id, document={**body, "token": 1}, op_type="create", require_alias=True)
            return 1
        source = doc["_source"]
        live = int(source["expires_us"]) > now
        if live and source["holder"] != holder:
            return None
        token = int(source["token"]) if live else int(source["token"]) + 1
        es.index(index=index, id=doc_id, document={**body, "token": token}, if_seq_no=doc["_seq_no"],
                 if_primary_term=doc["_primary_term"], require_alias=True)
        return token
    except mod.ConflictError:
        return None  # another process changed the lease between our read and our write


def renew(es: Any, mod: Any, index: str, user_id: str, token: int, ttl_s: float) -> bool:
    """Extend the lease while it has `token`; False once another holder took it."""
    doc = _read(es, mod, index, lease_doc_id(user_id))
    if doc is None or int(doc["_source"]["token"]) != token:
        return False
    source = {**doc["_source"], "expires_us": _now_us() + int(ttl_s * 1_000_000)}
    try:
        es.index(index=index, id=lease_doc_id(user_id), document=source, if_seq_no=doc["_seq_no"],
                 if_primary_term=doc["_primary_term"], require_alias=True)
    except mod.ConflictError:
        return renew(es, mod, index, user_id, token, ttl_s)  # changed meanwhile: look again
    return True


def release(es: Any, mod: Any, index: str, user_id: str, token: int) -> None:
    """Expire the lease now if it still has `token`."""
    doc = _read(es, mod, index, lease_doc_id(user_id))
    if doc is None or int(doc["_source"]["token"]) != token:
        return
    with contextlib.suppress(mod.ConflictError):  # taken over meanwhile: nothing of ours to release
        es.index(index=index, id=lease_doc_id(user_id), document={**doc["_source"], "expires_us": 0},
                 if_seq_no=doc["_seq_no"], if_primary_term=doc["_primary_term"], require_alias=True)


def check_fence(es: Any, mod: Any, index: str, fence: Fence | None) -> None:
    """Raise LeaseLost unless the user's lease still has the fence's token (a realtime read)."""
    if fence is None:
        return
    doc = _read(es, mod, index, lease_doc_id(fence.user_id))
    stored = None if doc is None else int(doc["_source"]["token"])
    if stored != fence.token:
        raise LeaseLost(
            f"the lease of user {fence.user_id!r} was taken over (this job has token {fence.token}, the store has"
            f" {stored}); its write was refused, and the new holder consolidates the user"
        )
