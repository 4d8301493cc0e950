"""Cheap signals about raw turns for ranking, with no model: questions about the present, and earlier
turns a later turn of the same speaker overrides ("I work at Meta" ... "I left Meta and joined Apple").

Before consolidation no LLM has compared the turns, so a question about now ("Where do I work now?")
would rank the older statement as high as the newer one. `overridden_turns` finds the earlier turns
that a later turn of the same speaker revisits with a change word ("left", "no longer", "moved",
"switched", 不再...) and a name the two share (a capitalised word or a CJK word): retrieval ranks those
below the turn that changed them. A heuristic: it errs towards keeping a turn (no shared name, no
change word: nothing is overridden).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from memscope.retrieval import RetrievedItem

__all__ = ["asks_now", "overridden_turns"]

_NOW_EN = re.compile(
    r"\b(?:now|currently|current|these\s+days|nowadays|at\s+the\s+moment|at\s+present|still|anymore|today)\b",
    re.IGNORECASE,
)
_NOW_ZH = re.compile(r"现在|目前|当前|如今|眼下|还在|仍然")
_CHANGE = re.compile(
    r"\b(?:left|leaving|quit|quitting|resigned|no\s+longer|not\s+anymore|anymore|moved|moving|switched|"
    r"changed|used\s+to|formerly|former|stopped|gave\s+up|broke\s+up|sold|replaced|instead|joined|"
    r"new\s+(?:job|role|place|home|position))\b|不再|离开|辞职|换了|搬到|搬家|加入了|不干了",
    re.IGNORECASE,
)
_NAME = re.compile(r"(?<![.!?]\s)(?<!^)\b[A-Z][\w&'-]*[A-Za-z0-9]|[\u4e00-\u9fff]{2,}")


def asks_now(query: str) -> bool:
    """True for a question about the present state ("Where do I work now?", "我现在住哪里")."""
    return bool(_NOW_EN.search(query) or _NOW_ZH.search(query))


def _names(text: str) -> set[str]:
    return {n for n in _NAME.findall(text) if n not in ("I", "I'm", "I've", "I'll", "I'd")}


def overridden_turns(items: Sequence[RetrievedItem]) -> dict[str, str]:
    """{earlier turn id: the later turn id that overrides it} among the raw-turn candidates."""
    turns = sorted((i for i in items if i.kind == "message"), key=lambda i: (i.time, i.id))
    changes = [(t, _names(t.content)) for t in turns if _CHANGE.search(t.content)]
    out: dict[str, str] = {}
    if not changes:
        return out
    for earlier in turns:
        names = _names(earlier.content)
        if not names:
            continue
        for later, later_names in changes:
            same_speaker = (later.role, later.name) == (earlier.role, earlier.name)
            if later.time > earlier.time and same_speaker and names & later_names:
                out[earlier.id] = later.id
                break
    return out
