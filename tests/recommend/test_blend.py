"""blend(): per-source max normalization, weights, exclusion, ties and k."""

from __future__ import annotations

import pytest

from engine.recommend.blend import blend


def test_each_source_is_normalized_by_its_max():
    # counts on a scale 1000x the cosines must not drown them: both tops become 1.0
    out = blend({"cos": {"a": 0.5, "b": 0.25}, "pop": {"c": 1000.0, "b": 500.0}}, {"cos": 1.0, "pop": 1.0}, k=3)
    # b = 0.5 (cos) + 0.5 (pop) = 1.0; a and c are each their source's top, 1.0: all tie, by id
    assert out == [("a", pytest.approx(1.0), "cos"), ("b", pytest.approx(1.0), "cos"), ("c", pytest.approx(1.0), "pop")]


def test_weights_scale_contributions_and_pick_the_strongest_source():
    out = blend(
        {"cos": {"a": 1.0, "b": 0.5}, "als": {"b": 2.0, "c": 1.0}, "pop": {"d": 10.0}},
        {"cos": 1.0, "als": 0.5, "pop": 0.1},
        k=10,
    )
    assert out == [
        ("a", pytest.approx(1.0), "cos"),
        ("b", pytest.approx(1.0), "als"),  # 0.5 cos + 0.5 als: a source tie -> first name
        ("c", pytest.approx(0.25), "als"),
        ("d", pytest.approx(0.1), "pop"),
    ]


def test_zero_weight_source_is_ignored():
    out = blend({"cos": {"a": 1.0}, "pop": {"z": 5.0}}, {"cos": 1.0, "pop": 0.0}, k=5)
    assert out == [("a", pytest.approx(1.0), "cos")]


def test_excluded_ids_never_returned_and_do_not_set_the_scale():
    out = blend({"pop": {"milk": 100.0, "bread": 50.0, "eggs": 25.0}}, {"pop": 2.0}, k=5, exclude={"milk"})
    assert out == [("bread", pytest.approx(2.0), "pop"), ("eggs", pytest.approx(1.0), "pop")]


def test_ties_broken_by_id_and_k_truncates():
    out = blend({"s": {"d": 1.0, "b": 1.0, "c": 1.0, "a": 1.0}}, {"s": 1.0}, k=3)
    assert [i for i, _, _ in out] == ["a", "b", "c"]
    assert blend({"s": {"a": 1.0}}, {"s": 1.0}, k=0) == []


def test_non_positive_scores_are_dropped():
    out = blend({"als": {"a": 0.8, "b": -0.3, "c": 0.0}}, {"als": 1.0}, k=5)
    assert out == [("a", pytest.approx(1.0), "als")]
    assert blend({"als": {"b": -1.0}}, {"als": 1.0}, k=5) == []


def test_fallback_fills_the_list_below_the_primary_source():
    out = blend({"cos": {"x": 0.2}, "pop": {"p1": 9.0, "p2": 8.0, "x": 1.0}}, {"cos": 1.0, "pop": 0.05}, k=3)
    assert [i for i, _, _ in out] == ["x", "p1", "p2"]
    assert out[0][2] == "cos" and out[1][2] == "pop"


def test_source_without_weight_or_negative_weight_is_an_error():
    with pytest.raises(ValueError):
        blend({"cos": {"a": 1.0}, "als": {"b": 1.0}}, {"cos": 1.0}, k=5)
    with pytest.raises(ValueError):
        blend({"cos": {"a": 1.0}}, {"cos": -1.0}, k=5)
    assert blend({"cos": {"a": 1.0}}, {"cos": 1.0, "als": 1.0}, k=5) == [("a", pytest.approx(1.0), "cos")]
