"""The evidence rule for a session (engine.recommend.session_rule): pure, no services."""

from __future__ import annotations

import math

import pytest

from engine.recommend import session_rule, sknn


def test_the_weight_grows_with_the_last_items_sessions():
    assert session_rule.weight(0, 8.0, 1) == 0.0  # a last item never seen: the session-kNN alone
    assert session_rule.weight(8, 8.0, 1) == 0.5
    assert session_rule.weight(792, 8.0, 1) == pytest.approx(0.99)
    assert session_rule.weight(5, 0.0, 1) == 1.0  # tau 0: the last item's co-occurrence
    assert session_rule.weight(5, math.inf, 1) == 0.0
    with pytest.raises(ValueError):
        session_rule.weight(1, -1.0)


def test_the_hard_form_switches_at_the_threshold():
    assert [session_rule.weight(n, 0.0, 4) for n in (0, 1, 3, 4, 400)] == [0.0, 0.0, 0.0, 1.0, 1.0]


def test_a_well_seen_last_item_keeps_its_counts_order_and_a_thin_one_follows_the_neighbours():
    pairs = {"x": 3.0, "y": 2.0}
    knn = {"y": 1.0, "x": 0.1}
    for tau, threshold in ((8.0, 1), (0.0, 4)):  # the blend and the hard form
        well = session_rule.rank(pairs, 400, knn, tau, threshold)
        thin = session_rule.rank(pairs, 2, knn, tau, threshold)
        assert [b for b, _ in well] == ["x", "y"]
        assert [b for b, _ in thin] == ["y", "x"]
    assert [b for b, _ in session_rule.rank(pairs, 2, knn, 0.0, 1)] == ["x", "y"]  # tau 0, T 1: counts only


def test_ties_go_to_the_more_popular_item_and_the_session_is_excluded():
    ranked = session_rule.rank({"a": 1.0, "b": 1.0, "c": 1.0}, 1, {}, 0.0, 1, exclude={"c"}, popularity={"b": 9})
    assert [b for b, _ in ranked] == ["b", "a"]


def test_for_session_counts_the_last_items_pairs_in_the_stored_sessions_and_says_which_hold_each_item():
    candidates = {"s1": ["a", "b", "x"], "s2": ["b", "x", "y"], "s3": ["q", "z"], "s4": ["a", "w"]}
    found = session_rule.for_session(["a", "b"], candidates, tau=8.0, threshold=1, k=10)
    # b (the last item) is in s1 and s2: w = 2 / 10; x is in both, y in one; s4 shares a, s3 nothing
    assert found.weight == pytest.approx(0.2)
    assert [b for b, _ in found.ranked][:1] == ["x"]
    assert set(found.used) == {"s1", "s2", "s4"}
    assert found.evidence(["a", "b"], candidates, "x") == {"source": "session", "with": "b", "sessions": 2}
    assert found.evidence(["a", "b"], candidates, "w") == {"source": "session", "with": "a", "sessions": 1}
    knn, _ = sknn.scores(["a", "b"], candidates, 10, True)
    expected = session_rule.scores({"a": 1, "b": 2, "x": 2, "y": 1}, 2, knn, 8.0, 1)
    assert dict(found.ranked) == pytest.approx({b: v for b, v in expected.items() if b not in ("a", "b")})


def test_an_empty_session_ranks_nothing():
    assert session_rule.for_session([], {"s1": ["a"]}).ranked == []


def test_with_the_served_rule_a_thin_last_item_reads_only_the_neighbours():
    candidates = {"s1": ["a", "b", "x"], "s2": ["a", "y"]}
    found = session_rule.for_session(["a", "b"], candidates, k=10)  # b in one session: below T
    assert found.weight == 0.0 and set(found.used) == {"s1", "s2"}
    assert found.evidence(["a", "b"], candidates, "y") == {"source": "session", "with": "a", "sessions": 1}
