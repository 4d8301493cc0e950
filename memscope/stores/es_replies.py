"""Which turn each message of a batch replies to, for the Elasticsearch messages' `replied_to` field.

Pure: the store searches, per message of a batch, the stored turn just before it and the one just
after it in its conversation (`neighbour_body`, one `_msearch`), and this module combines those with
the batch itself, so consecutive turns in one batch link up and a turn that arrives after the one
following it becomes that one's `replied_to`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from memscope.models import Message, replied_turn_text
from memscope.stores.es_queries import to_us

__all__ = ["ReplyLinks", "anchor_of", "reply_links"]

_Key = tuple[int, str]  # (created_us, id): the order of turns in a conversation
_Conversation = tuple[str, str, str | None]  # (user_id, agent_id, session_id)


def anchor_of(message: Message) -> dict[str, Any]:
    """The fields `neighbour_body` seeks from, for a message not necessarily stored yet."""
    return {
        "id": message.id,
        "user_id": message.user_id,
        "agent_id": message.agent_id,
        "session_id": message.session_id,
        "created_us": to_us(message.created_at),
    }


@dataclass(frozen=True)
class ReplyLinks:
    """`replied_to` of each batch message, and the stored turns whose `replied_to` a batch message becomes."""

    replied_to: dict[str, str]  # batch message id -> replied_turn_text of the turn before it ("" for none)
    followers: dict[str, str]  # stored message id -> id of the batch message now just before it


def _key(message: Message) -> _Key:
    return (to_us(message.created_at), message.id)


def _conversation(message: Message) -> _Conversation:
    return (message.user_id, message.agent_id, message.session_id)


def reply_links(
    batch: Sequence[Message], stored_before: Mapping[str, Message], stored_after: Mapping[str, Message]
) -> ReplyLinks:
    """Combine the batch with each message's stored neighbours (by batch message id; absent: none).

    A turn's predecessor is the later of its stored predecessor and its predecessor within the batch; a
    stored successor not in the batch now follows the latest batch turn before it.
    """
    ids = {m.id for m in batch}
    groups: dict[_Conversation, list[Message]] = {}
    for message in {m.id: m for m in batch}.values():
        groups.setdefault(_conversation(message), []).append(message)
    replied: dict[str, str] = {}
    followers: dict[str, str] = {}
    for turns in groups.values():
        turns.sort(key=_key)
        for n, message in enumerate(turns):
            candidates = [m for m in (stored_before.get(message.id), turns[n - 1] if n else None) if m is not None]
            previous = max(candidates, key=_key, default=None)
            replied[message.id] = replied_turn_text(previous)
            after = stored_after.get(message.id)
            if after is not None and after.id not in ids:
                latest = max((m for m in turns if _key(m) < _key(after)), key=_key)
                followers[after.id] = latest.id
    return ReplyLinks(replied, followers)
