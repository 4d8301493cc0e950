"""update_profile: keep the user's structured profile (preferences, facts, traits, goals) up to date.

The model sees the current profile and the observations not reflected on yet, and answers only the
entries that are new or changed, each citing observation numbers. An entry that cites none is
dropped (every entry rests on memories). A changed value expires the old entry, superseded by the
new one; an empty text expires the slot. Only observations are shown: what the assistant said
about itself (`assistant` memories) never reaches the user's profile.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from memscope.engine import Context, WorkerParams, worker
from memscope.engine.llm_worker import LLMWorker
from memscope.engine.worker import scope, user_zone
from memscope.models import DEFAULT_AGENT, MemoryNode, MemoryStatus, MemoryType
from memscope.observations import format_date, stable_id
from memscope.profile import load_profile_nodes, profile_key
from memscope.reflection import memory_line


class ProfileItem(BaseModel):
    """One new or changed profile entry."""

    section: Literal["preferences", "facts", "traits", "goals"]
    slot: str  # a short name for what the entry is about: "diet", "home city", "patience"
    text: str = ""  # empty: the slot no longer holds
    evidence: list[int] = Field(default_factory=list)


class ProfileAnswer(BaseModel):
    """The entries to add or change (unchanged ones are left out)."""

    entries: list[ProfileItem] = Field(default_factory=list)


@worker("update_profile")
class UpdateProfile(LLMWorker):
    """Add or change profile entries from new observations; a changed entry expires the old one."""

    reads = ("user_id", "unreflected")
    optional_reads = ("agent_id", "timezone")
    writes = ("profile_updates",)

    class Params(WorkerParams):
        max_observations: int = Field(60, ge=1)  # the newest ones shown to the model

    params: Params

    def run(self, ctx: Context) -> None:
        observations: list[MemoryNode] = ctx["unreflected"][-self.params.max_observations :]
        if not observations:
            ctx["profile_updates"] = []
            return
        user_id, agent_id = scope(ctx)
        zone = user_zone(self, ctx)
        now = self.resources.now()
        current = {n.key: n for n in load_profile_nodes(self.resources.store, user_id, agent_id) if n.key}
        shown = "\n".join(f"- {key} = {node.content}" for key, node in sorted(current.items()))
        answer = self.ask(
            ProfileAnswer,
            today=format_date(now, zone),
            profile=shown or self.prompt("none"),
            observations="\n".join(memory_line(str(i), o, zone) for i, o in enumerate(observations, 1)),
        )
        agent = agent_id or DEFAULT_AGENT
        updates: dict[str, MemoryNode] = {}
        for item in answer.entries:
            cited = [observations[i - 1].id for i in dict.fromkeys(item.evidence) if 1 <= i <= len(observations)]
            key = profile_key(item.section, item.slot)
            if not cited or key == f"{item.section}:":
                continue  # every entry cites the memories it rests on
            old = current.get(key)
            for node in self._change(user_id, agent, key, item.text.strip(), cited, old, now):
                updates[node.id] = node
                if node.status is MemoryStatus.ACTIVE:
                    current[key] = node
        ctx["profile_updates"] = list(updates.values())

    def _change(
        self, user_id: str, agent: str, key: str, text: str, cited: list[str], old: MemoryNode | None, now: datetime
    ) -> list[MemoryNode]:
        """The nodes to write for one answered entry: nothing, a source update, or expire-and-replace."""
        if old is not None and text == old.content:
            sources = list(dict.fromkeys([*old.source_memory_ids, *cited]))
            if sources == old.source_memory_ids:
                return []
            return [old.model_copy(update={"source_memory_ids": sources, "updated_at": now})]
        if not text:
            if old is None:
                return []
            return [old.model_copy(update={"status": MemoryStatus.EXPIRED, "updated_at": now})]
        node_id = stable_id(user_id, agent, "profile", key, text)
        earlier = self.resources.store.get_memory(user_id, node_id)
        if earlier is not None and earlier.status is not MemoryStatus.ACTIVE:  # a value that comes back
            node_id = stable_id(user_id, agent, "profile", key, text, now.isoformat())
        new = MemoryNode(
            id=node_id,
            user_id=user_id,
            agent_id=agent,
            memory_type=MemoryType.PROFILE,
            content=text,
            key=key,
            source_memory_ids=cited,
            importance=0.7,
            created_at=now,
            updated_at=now,
        )
        if old is None:
            return [new]
        expired = old.model_copy(update={"status": MemoryStatus.EXPIRED, "superseded_by": new.id, "updated_at": now})
        return [expired, new]
