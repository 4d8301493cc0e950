"""`memscope bench locomo-qa`: answer LoCoMo questions from retrieved memory and grade them with an LLM judge.

The usual "J" metric: the configured LLM answers each question (categories 1-4) from the context
`retrieve_memory` builds, then the same LLM, as a judge, says CORRECT or WRONG given the question,
the gold answer and the generated one (structured output through the chat backend). Tokens are
counted per question for the answer and the judgement.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from benchmarks._common import emit, progress, summarize
from benchmarks.locomo import CATEGORY_NAMES, SCORED_CATEGORIES, USER, load_conversations, prepare

__all__ = ["ANSWER_PROMPT", "JUDGE_PROMPT", "Verdict", "run_locomo_qa"]

ANSWER_PROMPT = (
    "You answer questions about a long conversation between {speakers} using only the memories below. "
    'Each line is dated; resolve relative times ("last week") against the line\'s date and answer with '
    'absolute dates. Answer in a short phrase, no explanation. If the memories do not say, answer "unknown".'
    "\n\n{context}"
)
JUDGE_PROMPT = (
    "You grade an answer to a question about a conversation. Label it CORRECT if it means the same as "
    "the gold answer (it may be phrased differently, be more or less detailed, or give a date in another "
    "format for the same day, week or month), else WRONG.\n\nQuestion: {question}\nGold answer: {gold}\n"
    "Generated answer: {generated}"
)


class Verdict(BaseModel):
    """The judge's answer."""

    reasoning: str = Field("", description="one short sentence")
    label: Literal["CORRECT", "WRONG"]


def _usage(meter: Any, fn: Any) -> tuple[Any, int, int]:
    meter.start()
    try:
        value = fn()
    finally:
        used = meter.stop()
    return value, used.prompt_tokens, used.completion_tokens


def run_locomo_qa(data: Path, settings: dict[str, Any] | Any, k: int = 10, limit_questions: int | None = None,
                  show_progress: bool = True) -> dict[str, Any]:  # fmt: skip
    """Answer and judge up to `limit_questions` scored questions (in file order) with the configured LLM."""
    from memscope.config import load_settings
    from memscope.errors import NoModelConfigured
    from memscope.llm.factory import make_chat

    loaded = load_settings(settings)
    if make_chat(loaded.llm) is None:
        raise NoModelConfigured(
            "locomo-qa needs an LLM: pass --config with llm.backend set (or set OPENAI_API_KEY / "
            "DASHSCOPE_API_KEY); `memscope bench locomo` measures retrieval without one"
        )
    cfg = loaded.model_dump(mode="json")
    rows: list[dict[str, Any]] = []
    budget = limit_questions
    with tempfile.TemporaryDirectory(prefix="memscope-locomo-qa-") as tmp:
        for conv in load_conversations(data):
            questions = conv.scored_questions()[:budget] if budget is not None else conv.scored_questions()
            if not questions:
                break
            prepared = prepare(conv, Path(tmp), settings=cfg, consolidate=False)
            runtime = prepared.memory.runtime
            llm = make_chat(loaded.llm, meter=runtime.meter)
            try:
                with progress(f"{conv.name}: answering", len(questions), show_progress) as advance:
                    for q in questions:
                        rows.append(_one(prepared, llm, runtime.meter, conv, q, k))
                        advance()
            finally:
                prepared.close()
            if budget is not None:
                budget -= len(questions)
                if budget <= 0:
                    break
    return _summary(rows, k)


def _one(prepared: Any, llm: Any, meter: Any, conv: Any, q: Any, k: int) -> dict[str, Any]:
    t0 = time.perf_counter()
    found = prepared.memory.retrieve(USER, q.question, top_k=k, now=conv.last_date)
    retrieval_ms = (time.perf_counter() - t0) * 1000
    system = ANSWER_PROMPT.format(speakers=" and ".join(conv.speakers), context=found.context or "(none)")
    messages = [{"role": "system", "content": system}, {"role": "user", "content": q.question}]
    answer, a_in, a_out = _usage(meter, lambda: llm.chat(messages, tag="locomo_answer", max_tokens=100).text)
    judge = [{"role": "user", "content": JUDGE_PROMPT.format(question=q.question, gold=q.answer, generated=answer)}]
    verdict, j_in, j_out = _usage(meter, lambda: llm.structured(judge, Verdict, tag="locomo_judge"))
    return {
        "conversation": conv.name, "category": q.category, "question": q.question, "gold": q.answer,
        "answer": answer.strip(), "label": verdict.label, "retrieval_ms": round(retrieval_ms, 2),
        "answer_prompt_tokens": a_in, "answer_completion_tokens": a_out,
        "judge_prompt_tokens": j_in, "judge_completion_tokens": j_out,
    }  # fmt: skip


def _summary(rows: list[dict[str, Any]], k: int) -> dict[str, Any]:
    def score(rs: list[dict[str, Any]]) -> float:
        return round(sum(r["label"] == "CORRECT" for r in rs) / len(rs), 4) if rs else float("nan")

    def mean(key: str) -> float:
        return round(sum(r[key] for r in rows) / len(rows), 1) if rows else float("nan")

    return {
        "k": k,
        "questions": len(rows),
        "j_score": score(rows),
        "per_category": {
            CATEGORY_NAMES[c]: {"j_score": score(rs), "questions": len(rs)}
            for c in SCORED_CATEGORIES
            if (rs := [r for r in rows if r["category"] == c])
        },
        "tokens_per_question": {
            "answer_prompt": mean("answer_prompt_tokens"),
            "answer_completion": mean("answer_completion_tokens"),
            "judge_prompt": mean("judge_prompt_tokens"),
            "judge_completion": mean("judge_completion_tokens"),
        },
        "retrieval_ms": summarize([r["retrieval_ms"] for r in rows]).to_dict(),
        "rows": rows,
    }


def report(summary: dict[str, Any], as_json: bool) -> None:
    """J score overall and per category, tokens per question (rich table) or the JSON summary."""
    rows: list[list[Any]] = [["all (1-4)", summary["questions"], summary["j_score"]]]
    rows += [[name, v["questions"], v["j_score"]] for name, v in summary["per_category"].items()]
    emit(f"LoCoMo answer quality (J, top {summary['k']} retrieved)", ["questions", "count", "J"], rows, summary,
         as_json)  # fmt: skip
    if not as_json:
        from benchmarks._common import console

        t = summary["tokens_per_question"]
        console().print(
            f"tokens per question: answer {t['answer_prompt']} prompt + {t['answer_completion']} completion, "
            f"judge {t['judge_prompt']} prompt + {t['judge_completion']} completion"
        )
