"""Reciprocal rank fusion."""

from __future__ import annotations

import pytest

from memscope.stores.fusion import FusedHit, fuse_channels, rrf_fuse

pytestmark = pytest.mark.unit


def test_one_ranking_scores_by_rank() -> None:
    assert rrf_fuse([["a", "b", "c"]], k=60) == pytest.approx({"a": 1 / 61, "b": 1 / 62, "c": 1 / 63})
    assert list(rrf_fuse([["a", "b", "c"]])) == ["a", "b", "c"]


def test_agreement_beats_a_single_first_place() -> None:
    fused = rrf_fuse([["a", "b", "c"], ["b", "d", "a"]], k=60)
    assert list(fused) == ["b", "a", "d", "c"]
    assert fused["b"] == pytest.approx(1 / 62 + 1 / 61)
    assert fused["d"] == pytest.approx(1 / 62)


def test_items_in_one_ranking_only_are_kept() -> None:
    assert set(rrf_fuse([["a"], ["z"]])) == {"a", "z"}


def test_k_controls_how_fast_scores_fall() -> None:
    fused = rrf_fuse([["a", "b"]], k=0)
    assert fused == pytest.approx({"a": 1.0, "b": 0.5})


def test_weights_scale_each_ranking() -> None:
    fused = rrf_fuse([["a"], ["b"]], k=60, weights=[1.0, 2.0])
    assert list(fused) == ["b", "a"]
    assert fused["b"] == pytest.approx(2 / 61)


def test_weights_must_match_rankings() -> None:
    with pytest.raises(ValueError):
        rrf_fuse([["a"], ["b"]], weights=[1.0])


def test_empty_inputs() -> None:
    assert rrf_fuse([]) == {}
    assert rrf_fuse([[], []]) == {}


def test_fuse_channels_gives_typed_hits_with_each_channels_rank():
    sims = {"a": 0.9, "b": 0.5}
    hits = fuse_channels(["a", "b"], ["b", "c"], k=60, top_k=2, similarity=sims.get)
    assert hits == [
        FusedHit("b", pytest.approx(1 / 62 + 1 / 61), vector_rank=2, text_rank=1, similarity=0.5),
        FusedHit("a", pytest.approx(1 / 61), vector_rank=1, text_rank=None, similarity=0.9),
    ]
    assert [h.id for h in fuse_channels([], ["c", "d"], k=60, top_k=5)] == ["c", "d"]
    assert fuse_channels([], [], k=60, top_k=5) == []
    tie = fuse_channels(["v"], ["t"], k=60, top_k=2)  # equal scores: the vector channel's hit first
    assert [h.id for h in tie] == ["v", "t"] and tie[1].similarity is None
