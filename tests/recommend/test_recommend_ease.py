"""The item-item regression: the closed form against a direct fit, what it keeps, how it scores, its artefacts."""

from __future__ import annotations

import random

import numpy as np
import pytest
import scipy.sparse as sp

from engine.recommend import ease
from engine.recommend.als_model import AlsModel
from engine.recommend.als_training import AlsParams, build_matrix, train_from_interactions
from engine.recommend.ease import EaseParams


def random_matrix(persons=60, items=8, seed=3) -> sp.csr_matrix:
    rng = np.random.default_rng(seed)
    dense = (rng.random((persons, items)) < 0.35) * rng.choice([1.0, 5.0], size=(persons, items))
    return sp.csr_matrix(dense)


def test_weights_are_the_ridge_regression_of_each_item_on_the_others():
    matrix, lam = random_matrix(), 4.0
    fitted = ease.fit(matrix, purchase_weight=5.0, params=EaseParams(regularization=lam, max_items=8, keep=7))
    x = np.minimum(matrix.toarray() / 5.0, 1.0)
    n = x.shape[1]
    dense = np.zeros((n, n))
    for seed_col in range(n):
        row = fitted.rows[seed_col]
        dense[seed_col, fitted.targets[row]] = fitted.weights[row]
    for j in range(n):  # column j: item j predicted from every other item, penalty lam, its own weight 0
        others = [i for i in range(n) if i != j]
        a = x[:, others]
        direct = np.linalg.solve(a.T @ a + lam * np.eye(n - 1), a.T @ x[:, j])
        assert dense[others, j] == pytest.approx(direct, abs=1e-5)
        assert dense[j, j] == 0


def test_only_the_most_touched_items_take_part_and_each_keeps_its_largest_weights():
    matrix = random_matrix(items=10)
    touched = np.asarray((matrix > 0).sum(axis=0)).ravel()
    fitted = ease.fit(matrix, 5.0, EaseParams(regularization=2.0, max_items=6, keep=3))
    assert set(fitted.rows) == set(np.argsort(-touched, kind="stable")[:6].tolist())
    full = ease.fit(matrix, 5.0, EaseParams(regularization=2.0, max_items=6, keep=5))
    for item, row in fitted.rows.items():
        kept = dict(zip(fitted.targets[row].tolist(), fitted.weights[row].tolist()))
        every = dict(zip(full.targets[full.rows[item]].tolist(), full.weights[full.rows[item]].tolist()))
        assert set(kept) <= set(fitted.rows) and len(kept) == 3
        assert sorted(map(abs, kept.values()), reverse=True) == pytest.approx(
            sorted(map(abs, every.values()), reverse=True)[:3]
        )
    assert ease.fit(sp.csr_matrix(np.array([[1.0, 0.0]])), 1.0) is None  # one item: nothing to regress on


def test_scores_sum_the_seeds_rows_and_leave_out_the_seeds_and_what_they_predict_against():
    regression = ease.ItemRegression(
        seeds=np.array([0, 1], dtype=np.int32),
        targets=np.array([[1, 2, 3], [0, 2, 3]], dtype=np.int32),
        weights=np.array([[0.5, 0.2, -0.1], [0.4, 0.3, -0.3]], dtype=np.float32),
    )
    assert regression.scores([0], 10) == pytest.approx({1: 0.5, 2: 0.2})
    assert regression.scores([0], 1) == pytest.approx({1: 0.5})
    assert regression.scores([0, 1], 10) == pytest.approx({2: 0.5})  # 3 sums below 0; seeds left out
    assert regression.scores([0, 1], 0) == {} and regression.scores([7], 5) == {}


def grouped(groups=4, per_group=8, persons=300, seed=5):
    rng = random.Random(seed)
    return [(f"p{p}", f"g{p % groups}-i{i}", 5.0) for p in range(persons) for i in rng.sample(range(per_group), 3)]


def test_trained_with_als_it_finds_hidden_groups_and_travels_in_the_artefact():
    params = AlsParams(factors=8, iterations=5, num_threads=1, item_regression=EaseParams(regularization=10.0))
    model = train_from_interactions(grouped(), params)
    assert model.meta["regression_items"] == 32 and model.regression is not None
    right = 0
    for item in model.item_ids:
        nearest = sorted(model.regression_scores([item], 5).items(), key=lambda p: -p[1])
        right += sum(other.split("-")[0] == item.split("-")[0] for other, _ in nearest)
    assert right / (5 * len(model.item_ids)) > 0.95
    again = AlsModel.from_bytes(model.to_bytes())
    assert again.regression_scores(["g0-i1", "g0-i2"], 10) == model.regression_scores(["g0-i1", "g0-i2"], 10)
    without = train_from_interactions(
        grouped(), AlsParams(factors=8, iterations=5, num_threads=1, item_regression=EaseParams(max_items=0))
    )
    assert without.regression is None and AlsModel.from_bytes(without.to_bytes()).regression_scores(["g0-i1"]) == {}


def test_the_matrix_is_scaled_so_a_purchase_counts_one_and_repeats_do_not_count_more():
    rows = [("p1", "a", 5.0), ("p1", "b", 15.0), ("p2", "a", 1.0), ("p2", "b", 5.0)]
    matrix, _, items = build_matrix(rows)
    heavy = ease.fit(matrix, 5.0, EaseParams(regularization=1.0))
    capped = ease.fit(
        build_matrix([("p1", "a", 5.0), ("p1", "b", 5.0), ("p2", "a", 1.0), ("p2", "b", 5.0)])[0],
        5.0,
        EaseParams(regularization=1.0),
    )
    assert np.allclose(heavy.weights, capped.weights) and items == ["a", "b"]


def test_ranking_the_rows_in_chunks_keeps_the_same_weights(monkeypatch):
    matrix, params = random_matrix(items=9), EaseParams(regularization=3.0, keep=4)
    whole = ease.fit(matrix, 5.0, params)
    monkeypatch.setattr(ease, "CHUNK", 2)
    chunked = ease.fit(matrix, 5.0, params)
    assert chunked.rows == whole.rows
    for row in range(len(whole.rows)):
        assert dict(zip(chunked.targets[row].tolist(), chunked.weights[row].tolist())) == pytest.approx(
            dict(zip(whole.targets[row].tolist(), whole.weights[row].tolist()))
        )
