"""extract_assistant_knowledge: what the assistant stated about itself, promised, or taught.

The user's observations never record the assistant's side; this worker does, as memories of type
`assistant`, scoped by the agent that spoke, so a persona keeps its word ("I'll remind you on
Friday") and its facts. They are retrievable, and never shown to update_profile (not about the user).
A batch with no assistant turn costs no model call.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from memscope.engine import Context, WorkerParams, worker
from memscope.engine.llm_worker import LLMWorker
from memscope.engine.worker import user_zone
from memscope.models import MemoryNode, MemoryType, Message, Role
from memscope.observations import format_messages, stable_id


class Statement(BaseModel):
    """One thing the assistant said that it should remember."""

    content: str
    kind: Literal["self", "promise", "domain"] = "self"
    sources: list[int] = Field(default_factory=list)


class AssistantAnswer(BaseModel):
    """What the assistant stated, promised or taught in this conversation."""

    statements: list[Statement] = Field(default_factory=list)


@worker("extract_assistant_knowledge")
class ExtractAssistantKnowledge(LLMWorker):
    """Record the assistant's statements about itself, its promises and the domain facts it gave."""

    reads = ("user_id", "messages")
    optional_reads = ("agent_id", "timezone")
    writes = ("assistant_knowledge",)

    class Params(WorkerParams):
        max_statements: int = 20

    params: Params

    def run(self, ctx: Context) -> None:
        shown: list[Message] = [m for m in ctx["messages"] if m.role in (Role.USER, Role.ASSISTANT)]
        spoken = [n for n, m in enumerate(shown, 1) if m.role is Role.ASSISTANT]
        if not spoken:
            ctx["assistant_knowledge"] = []
            return
        answer = self.ask(
            AssistantAnswer,
            conversation=format_messages(shown, user_zone(self, ctx)),
            assistant_indices=", ".join(str(n) for n in spoken),
        )
        user_id = ctx["user_id"]
        nodes: dict[str, MemoryNode] = {}
        for item in answer.statements[: self.params.max_statements]:
            sources = [shown[n - 1] for n in dict.fromkeys(item.sources) if n in spoken]
            text = item.content.strip()
            if not sources or not text:
                continue  # only the assistant's own turns may be sources
            agent = sources[0].agent_id
            node_id = stable_id(user_id, agent, "assistant", *sorted(m.id for m in sources), text)
            nodes[node_id] = MemoryNode(
                id=node_id, user_id=user_id, agent_id=agent, memory_type=MemoryType.ASSISTANT, content=text,
                source_message_ids=[m.id for m in sources], metadata={"kind": item.kind},
                created_at=sources[-1].created_at, updated_at=sources[-1].created_at,
            )
        ctx["assistant_knowledge"] = list(nodes.values())
