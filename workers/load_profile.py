"""load_profile: the user's profile (one agent's: the agent given, else the default) as a Profile."""

from __future__ import annotations

from memscope.engine import Context, Worker, WorkerParams, worker
from memscope.engine.worker import scope
from memscope.profile import load_profile_nodes, profile_of


@worker("load_profile")
class LoadProfile(Worker):
    """Load the active profile entries of the user and agent, grouped by section."""

    reads = ("user_id",)
    optional_reads = ("agent_id",)
    writes = ("profile",)

    class Params(WorkerParams):
        pass

    def run(self, ctx: Context) -> None:
        user_id, agent_id = scope(ctx)
        ctx["profile"] = profile_of(user_id, agent_id, load_profile_nodes(self.resources.store, user_id, agent_id))
