"""Unit checks of issue 17's library parts: the heat formula and its decay, the context budget, and
that every new model worker's prompts render in English and Chinese."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest

from memscope.config import HeatSettings
from memscope.context_text import fit_sections
from memscope.engine.llm_worker import load_prompts
from memscope.heat import LAST_ACTIVE, TURNS, heat, segment_heat
from memscope.models import MemoryNode, MemoryType
from memscope.sessions import estimate_tokens

pytestmark = pytest.mark.unit


def test_heat_is_the_weighted_sum_and_fades_with_time() -> None:
    w = HeatSettings(visit_weight=2.0, interaction_weight=0.5, recency_weight=3.0, recency_tau_h=10, half_life_days=1)
    assert heat(visits=3, turns=4, hours_since=0, weights=w) == pytest.approx(2 * 3 + 0.5 * 4 + 3)
    one_day = heat(visits=3, turns=4, hours_since=24, weights=w)
    assert one_day == pytest.approx((2 * 3 + 0.5 * 4) / 2 + 3 * math.exp(-2.4))
    assert heat(3, 4, 24 * 30, w) < 1e-6  # a month later, old heat is gone


def test_segment_heat_counts_visits_turns_and_the_latest_activity() -> None:
    now = datetime(2024, 5, 1, 12, tzinfo=UTC)
    node = MemoryNode(user_id="u", memory_type=MemoryType.SEGMENT, content="s", access_count=2,
                      metadata={TURNS: 5, LAST_ACTIVE: (now - timedelta(days=7)).isoformat()},
                      updated_at=now - timedelta(days=7))
    w = HeatSettings()
    assert segment_heat(node, now, w) == pytest.approx(heat(2, 5, 24 * 7, w))
    visited = node.model_copy(update={"last_accessed_at": now})  # a retrieval is activity too
    assert segment_heat(visited, now, w) == pytest.approx(heat(2, 5, 0, w))


def test_fit_sections_keeps_lines_in_priority_order_within_the_budget() -> None:
    sections = [("First:", ["- a" * 5, "- b" * 5]), ("Empty:", []), ("Last:", ["- c" * 40])]
    full = fit_sections(sections, None)
    assert full.splitlines() == ["First:", "- a" * 5, "- b" * 5, "Last:", "- c" * 40]
    budget = estimate_tokens("First:") + estimate_tokens("- a" * 5) + 2
    assert fit_sections(sections, budget).splitlines() == ["First:", "- a" * 5]
    assert fit_sections(sections, 1) == ""


VALUES = {
    "update_profile": {"today": "2024-05-01", "profile": "- facts: home city = Lisbon", "observations": "[1] x"},
    "derive_beliefs": {"business": "a shop", "memories": "[1] vegetarian", "beliefs": "- none"},
    "extract_assistant_knowledge": {"conversation": "[1] 2024 | assistant: hi", "assistant_indices": "1"},
}


@pytest.mark.parametrize("worker", sorted(VALUES))
@pytest.mark.parametrize("language", ["en", "zh"])
def test_new_prompts_render_in_both_languages(worker: str, language: str) -> None:
    prompts = load_prompts("memscope.workers", worker)[language]
    rendered = "\n".join(prompts[part].format(**VALUES[worker]) for part in ("system", "user"))  # no KeyError
    assert all(value in rendered for value in VALUES[worker].values())  # every value reaches the model
    assert "JSON" in rendered and "{{" not in rendered  # the example answer is literal JSON
