"""A context block under a token budget: sections of lines, filled in priority order."""

from __future__ import annotations

from collections.abc import Sequence

from memscope.sessions import estimate_tokens

__all__ = ["Section", "fit_sections"]

Section = tuple[str, Sequence[str]]  # (heading, lines), most important line first


def fit_sections(sections: Sequence[Section], max_tokens: int | None) -> str:
    """The sections as `heading` then lines, skipping empty ones; with `max_tokens`, lines are added in
    section order until the next would pass the budget (a heading costs its tokens once)."""
    out: list[str] = []
    used = 0
    for heading, lines in sections:
        if not lines:
            continue
        head_cost = estimate_tokens(heading) + 1
        started = False
        for line in lines:
            cost = estimate_tokens(line) + 1 + (0 if started else head_cost)
            if max_tokens is not None and used + cost > max_tokens:
                return "\n".join(out)
            if not started:
                out.append(heading)
                started = True
            out.append(line)
            used += cost
    return "\n".join(out)
