"""What a job does, shared by the in-process executor and the Celery tasks (which stay thin)."""

from __future__ import annotations

import logging
from typing import Any

from memscope.engine import RunReport
from memscope.jobs.base import CONSOLIDATE, REFLECT
from memscope.models import MemoryType
from memscope.runtime import Runtime
from memscope.stores.base import Fence, MemoryFilter, MessageFilter

__all__ = ["run_job", "unreflected_count"]

log = logging.getLogger("memscope.jobs")
REFRESH_PROFILE = "refresh_profile"
MAX_BATCHES = 1000  # a safety stop: 1000 batches of 50 is a very long backlog


def unreflected_count(runtime: Runtime, user_id: str, agent_id: str | None, limit: int = 1000) -> int:
    """How many active observations of the user have not been reflected on yet."""
    nodes = runtime.store.list_memories(
        user_id, MemoryFilter(agent_id=agent_id, memory_types=[MemoryType.OBSERVATION]), limit=limit
    )
    from memscope.reflection import is_reflected  # the rule lives with the worker

    return sum(1 for n in nodes if not is_reflected(n))


def run_job(
    runtime: Runtime, operation: str, user_id: str, agent_id: str | None = None, fence: Fence | None = None
) -> list[RunReport]:
    """Run one job under the caller's per-user lease (`fence`, passed to every write): consolidation
    drains the backlog batch by batch, then reflects when enough new observations gathered; other
    operations run once."""
    if operation != CONSOLIDATE:
        return [runtime.run(operation, fence=fence, user_id=user_id, agent_id=agent_id).report]
    reports: list[RunReport] = []
    pending_filter = MessageFilter(agent_id=agent_id, pending=True)
    for _ in range(MAX_BATCHES):
        report = runtime.run(CONSOLIDATE, fence=fence, user_id=user_id, agent_id=agent_id).report
        reports.append(report)
        if report.degraded or not _consolidated_any(report):
            break  # no LLM, or nothing left: messages stay pending until the next job
        if not runtime.store.list_messages(user_id, pending_filter, limit=1):
            break
    if runtime.has_llm and reports and not reports[-1].degraded:
        threshold = runtime.settings.jobs.reflect_min_observations
        if unreflected_count(runtime, user_id, agent_id) >= threshold:
            reports.append(runtime.run(REFLECT, fence=fence, user_id=user_id, agent_id=agent_id).report)
        elif any(step.written.get("hot_segments", 0) for r in reports for step in r.steps):
            # a segment crossed the heat threshold: update the profile and beliefs now, not at the next reflection
            reports.append(runtime.run(REFRESH_PROFILE, fence=fence, user_id=user_id, agent_id=agent_id).report)
    return reports


def _consolidated_any(report: RunReport) -> bool:
    return any(step.written.get("consolidated_ids", 0) for step in report.steps)


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
