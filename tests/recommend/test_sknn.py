"""Session k-nearest neighbours (engine.recommend.sknn): pure, no services."""

from __future__ import annotations

import math

import pytest

from engine.recommend import sknn


def pool(*sessions):
    p = sknn.SessionPool()
    for n, items in enumerate(sessions):
        p.add(f"s{n}", items)
    return p


def test_v_sknn_weighs_the_latest_item_most():
    assert sknn.weights(["a", "b", "c", "d"], decay=True) == {"a": 0.25, "b": 0.5, "c": 0.75, "d": 1.0}
    assert sknn.weights(["a", "b", "a"], decay=False) == {"a": 1.0, "b": 1.0}
    p = pool(["a", "x"], ["d", "y"])
    decayed, _ = sknn.scores(["a", "b", "c", "d"], p.candidates(["a", "b", "c", "d"]), decay=True)
    plain, _ = sknn.scores(["a", "b", "c", "d"], p.candidates(["a", "b", "c", "d"]), decay=False)
    assert decayed["y"] > decayed["x"]  # y's session shares the latest item
    assert plain["y"] == plain["x"]
    assert decayed["y"] == pytest.approx(1.0 / math.sqrt(2))


def test_scores_sum_the_similarity_of_the_neighbours_holding_an_item_and_count_them():
    p = pool(["a", "b", "z"], ["a", "z"], ["q", "r"])
    score, votes = sknn.scores(["a"], p.candidates(["a"]), k=10, decay=False)
    assert votes == {"b": 1, "z": 2}  # the session's own item is not scored, q and r share nothing
    assert score["z"] == pytest.approx(1 / math.sqrt(3) + 1 / math.sqrt(2))


def test_only_the_k_most_similar_vote_and_only_the_most_recent_are_candidates():
    p = pool(["a", "old"], ["a", "b", "mid"], ["a", "new"])
    assert list(p.candidates(["a"], sample=2)) == ["s2", "s1"]
    _, votes = sknn.scores(["a", "b"], p.candidates(["a", "b"]), k=1, decay=False)
    assert votes == {"mid": 1}  # s1 shares both items: the one neighbour
