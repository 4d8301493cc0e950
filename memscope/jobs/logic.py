"""What a job does, shared by the in-process executor and the Celery tasks (which stay thin)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

from memscope.engine import RunReport
from memscope.jobs.base import CONSOLIDATE, REFLECT
from memscope.models import MemoryType
from memscope.runtime import Runtime
from memscope.stores.base import Fence, MemoryFilter

__all__ = ["queue_pending", "queue_reflections", "run_job", "unreflected_waiting"]

Submit = Callable[[str, str, str | None], object]  # (operation, user_id, agent_id): a dispatcher's submit

log = logging.getLogger("memscope.jobs")
REFRESH_PROFILE = "refresh_profile"
MAX_BATCHES = 1000  # a safety stop: 1000 batches of 50 is a very long backlog


def unreflected_waiting(runtime: Runtime, user_id: str, agent_id: str | None, at_least: int = 1) -> bool:
    """True when at least `at_least` active observations of the user wait for a reflection."""
    wanted = MemoryFilter(agent_id=agent_id, memory_types=[MemoryType.OBSERVATION], reflected=False)
    return len(runtime.store.list_memories(user_id, wanted, limit=at_least)) >= at_least


def queue_pending(runtime: Runtime, submit: Submit, parked: Callable[[str, str | None], bool] | None = None) -> int:
    """The sweep: queue consolidation for every user with pending messages (but `parked` poison work);
    nothing without an LLM, the messages stay pending until one is configured. Returns how many were queued."""
    if not runtime.has_llm:
        return 0
    queued = 0
    for user_id, agent_id in runtime.store.users_with_pending():
        if parked is not None and parked(user_id, agent_id):
            continue  # poison: stays pending until `memscope jobs retry`
        submit(CONSOLIDATE, user_id, agent_id)
        queued += 1
    return queued


def queue_reflections(runtime: Runtime, submit: Submit, users: Iterable[tuple[str, str | None]]) -> int:
    """Queue reflection for each of `users` (recently consolidated) with unreflected observations waiting."""
    queued = 0
    for user_id, agent_id in users:
        if runtime.has_llm and unreflected_waiting(runtime, user_id, agent_id):
            submit(REFLECT, user_id, agent_id)
            queued += 1
    return queued


def run_job(
    runtime: Runtime, operation: str, user_id: str, agent_id: str | None = None, fence: Fence | None = None
) -> list[RunReport]:
    """Run one job under the caller's per-user lease (`fence`, passed to every write): consolidation
    drains the backlog batch by batch, then reflects when enough new observations gathered; other
    operations run once."""
    if operation != CONSOLIDATE:
        return [runtime.run(operation, fence=fence, user_id=user_id, agent_id=agent_id).report]
    reports: list[RunReport] = []
    hot = False  # a segment crossed the heat threshold in some batch
    for _ in range(MAX_BATCHES):
        result = runtime.run(CONSOLIDATE, fence=fence, user_id=user_id, agent_id=agent_id)
        reports.append(result.report)
        hot = hot or bool(result.outputs.get("hot_segments"))  # an override may have no segments step
        if result.report.degraded or not result["consolidated_ids"] or not result["more_pending"]:
            break  # no LLM, or nothing left: messages stay pending until the next job
    if runtime.has_llm and reports and not reports[-1].degraded:
        threshold = runtime.settings.jobs.reflect_min_observations
        if unreflected_waiting(runtime, user_id, agent_id, at_least=threshold):
            reports.append(runtime.run(REFLECT, fence=fence, user_id=user_id, agent_id=agent_id).report)
        elif hot:
            # a segment crossed the heat threshold: update the profile and beliefs now, not at the next reflection
            reports.append(runtime.run(REFRESH_PROFILE, fence=fence, user_id=user_id, agent_id=agent_id).report)
    return reports


def summarize(reports: list[RunReport]) -> dict[str, Any]:
    """A short summary of a job's runs for its record."""
    return {
        "runs": len(reports),
        "operations": [r.operation for r in reports],
        "llm_calls": sum(r.llm_calls for r in reports),
        "prompt_tokens": sum(r.prompt_tokens for r in reports),
        "completion_tokens": sum(r.completion_tokens for r in reports),
        "degraded": any(r.degraded for r in reports),
        "notices": sorted({n for r in reports for n in r.notices}),
    }
