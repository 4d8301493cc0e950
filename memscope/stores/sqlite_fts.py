"""Full-text search pieces of the SQLite store: what FTS5 indexes, and the MATCH expression of a query.

Chinese/Japanese/Korean text is indexed one character per token (`fts_normalize`) in a
`porter unicode61` FTS5 table; a query searches each adjacent pair of CJK characters as a phrase,
and every other word as a quoted term, all OR'ed: user text never changes the query's structure.
English stop words are dropped from a query (not from the index) unless nothing else is left.
"""

from __future__ import annotations

import itertools
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["TextPlan", "fts_normalize", "fts_query", "message_body", "plan_text_query", "query_terms"]

MAX_QUERY_TERMS = 64
# A query term matching more than UNSELECTIVE_ROWS rows of the index (all users') is "unselective":
# FTS5 computes BM25 for every row a MATCH finds (a few microseconds each: 10 ms for 2,500 rows), and
# among thousands of one-line rows that all contain the term once, BM25 cannot choose 50 anyway. Such
# terms are left out while a selective one remains; several of them alone are required together (AND);
# a lone one is left to the vector channel when there is one (the idea of Elasticsearch's former
# common-terms query and its cutoff_frequency). The bound is absolute because so is the cost.
UNSELECTIVE_ROWS = 1_000
_CJK = re.compile("[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff\U00020000-\U0002ebef]")
_CJK_RUN = re.compile(f"{_CJK.pattern}+")
_WORD = re.compile(r"[^\W_]+")
# Dropped from queries (not from the index) unless nothing else is left: they match nearly every row,
# which makes BM25 slow on a large store and adds almost nothing to the ranking.
STOP_WORDS = frozenset((
    "a", "an", "and", "are", "as", "at", "be", "by", "did", "do", "does", "for", "from", "had", "has",
    "have", "he", "her", "his", "how", "i", "in", "is", "it", "its", "me", "my", "no", "not", "of", "on",
    "or", "our", "she", "so", "that", "the", "their", "them", "they", "this", "to", "was", "we", "were",
    "what", "when", "where", "which", "who", "will", "with", "would", "you", "your",
))  # fmt: skip


def fts_normalize(text: str) -> str:
    """Text as indexed: NFKC-normalised, every CJK character set apart as its own token."""
    return _CJK.sub(lambda m: f" {m.group()} ", unicodedata.normalize("NFKC", text))


def message_body(row: Mapping[str, Any]) -> str:
    """A message as text-indexed: the speaker's name (when given) and the content, so "what did Caroline
    say" matches Caroline's turns."""
    return f"{row['name']}: {row['content']}" if row.get("name") else str(row["content"])


def query_terms(text: str | None) -> list[str]:
    """The distinct search terms of `text` (CJK as space-joined character pairs), stop words dropped
    unless nothing else is left, at most MAX_QUERY_TERMS."""
    if not text or not text.strip():
        return []
    terms: list[str] = []
    for word in _WORD.findall(unicodedata.normalize("NFKC", text).lower()):
        start = 0
        for match in _CJK.finditer(word):
            if match.start() > start:
                terms.append(word[start : match.start()])
            start = match.end()
        if start < len(word):
            terms.append(word[start:])
        terms.extend(_cjk_terms(word))
    unique = [t for t in dict.fromkeys(terms) if t]
    return ([t for t in unique if t not in STOP_WORDS] or unique)[:MAX_QUERY_TERMS]


def fts_query(text: str | None, terms: list[str] | None = None, *, all_required: bool = False) -> str | None:
    """An FTS5 MATCH expression OR-ing (AND-ing with `all_required`) quoted terms of `text` (CJK as
    character pairs); None if empty.

    `terms`, when given, replaces the terms taken from `text` (e.g. after leaving out unselective ones).
    """
    unique = query_terms(text) if terms is None else terms
    if not unique:
        return None
    return (" AND " if all_required else " OR ").join(_quoted(term) for term in unique)


def _quoted(term: str) -> str:
    return '"' + term.replace('"', '""') + '"'


def _cjk_terms(word: str) -> list[str]:
    """Phrases for the CJK runs of one word: adjacent character pairs, or the lone character."""
    terms: list[str] = []
    for run in _CJK_RUN.findall(word):
        if len(run) == 1:
            terms.append(run)
        else:
            terms.extend(f"{a} {b}" for a, b in itertools.pairwise(run))
    return terms


@dataclass(frozen=True)
class TextPlan:
    """The terms a BM25 query keeps, whether all must match, and whether a vector search can stand in."""

    terms: list[str]
    all_required: bool = False
    vector_suffices: bool = False  # only one unselective term: BM25 cannot rank its rows, vectors can


def plan_text_query(
    terms: list[str], doc_freq: Mapping[str, int | None], rows: int, limit: int = UNSELECTIVE_ROWS
) -> TextPlan:
    """Which of `terms` a BM25 query keeps, given each term's row count (None: unknown, a CJK phrase,
    never left out) among `rows` indexed rows (a bound).

    A term in more than half the rows cannot rank: FTS5's BM25 floors its IDF, log((N - n + 0.5) / (n + 0.5)),
    at 1e-6 once it turns negative, so it only makes every row it is in a match that BM25 must score (at
    LoCoMo size, a speaker's name in half the turns). Such terms are left out while a term that can rank
    remains. In a large index (over `limit` rows), so are the unselective terms (over `limit` rows each):
    the selective ones are OR'ed; with none, the unselective ones are AND'ed, or a lone unselective term
    is flagged as one the vector channel can replace."""
    present = [t for t in terms if doc_freq.get(t, 0) != 0]
    ranking = [t for t in present if (n := doc_freq.get(t)) is None or 2 * n <= rows]
    if rows <= limit:
        return TextPlan([t for t in terms if t in ranking or t not in present] if ranking else terms)
    selective = [t for t in ranking if (n := doc_freq.get(t)) is None or n <= limit]
    if selective or not present:
        return TextPlan(selective or terms)
    if len(present) > 1:
        return TextPlan(present, all_required=True)
    return TextPlan(present, vector_suffices=True)
