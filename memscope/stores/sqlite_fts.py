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
from typing import Any

__all__ = ["common_terms", "fts_normalize", "fts_query", "message_body", "query_terms"]

MAX_QUERY_TERMS = 64
# In a large index, a query term in more than this share of the rows (and more than COMMON_MIN_ROWS
# rows) is "common": it adds little to BM25 (low IDF) but FTS5 scores every row it matches, so it is
# left out while a rarer term remains (the idea of Elasticsearch's former common-terms query). The
# vector channel still carries its meaning.
COMMON_SHARE = 0.05
COMMON_MIN_ROWS = 5_000
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


def fts_query(text: str | None, terms: list[str] | None = None) -> str | None:
    """An FTS5 MATCH expression OR-ing quoted terms of `text` (CJK as character pairs); None if empty.

    `terms`, when given, replaces the terms taken from `text` (e.g. after pruning very common ones).
    """
    unique = query_terms(text) if terms is None else terms
    if not unique:
        return None
    return " OR ".join(_quoted(term) for term in unique)


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


def common_terms(doc_freq: Mapping[str, int | None], total_rows: int) -> set[str]:
    """The terms to leave out of a BM25 query over `total_rows` rows: those matching more than
    COMMON_SHARE of them (and COMMON_MIN_ROWS), keeping at least the rarest term that matches
    anything. Unknown counts (None: CJK phrases) are never left out."""
    limit = max(COMMON_MIN_ROWS, COMMON_SHARE * total_rows)
    present = {t: n for t, n in doc_freq.items() if n}
    common = {t for t, n in present.items() if n > limit}
    if common and common == set(present):
        common.discard(min(common, key=lambda t: present[t]))
    return common
