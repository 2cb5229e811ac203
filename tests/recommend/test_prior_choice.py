"""Choosing also-bought's prior strength by leave-one-out: exact against a refit, and right on known structure."""

from __future__ import annotations

import random

import pytest

from engine.recommend import prior_choice, shrink
from engine.recommend.cooccur import CoCounts, order_items

GRID = prior_choice.GRID


def counted(orders) -> CoCounts:
    co = CoCounts()
    for items in orders:
        co.add_order(items)
    return co


def popular_of(co: CoCounts, n: int = 12) -> list[str]:
    return [i for i, _ in sorted(co.counts.items(), key=lambda p: (-p[1], p[0]))[:n]]


def refit_hits(orders, held_out: int, popular, grid=GRID, k=prior_choice.K) -> dict[float, int]:
    """The slow way: count every order but one from scratch, rank each of its (seed, held-out) pairs."""
    co = counted(orders[:held_out] + orders[held_out + 1 :])
    items = order_items(orders[held_out])
    hits = {m: 0 for m in grid}
    if len(items) < 2:
        return hits
    for a in items:
        for m in grid:
            top = prior_choice.listed(co.pairs.get(a, {}), co.counts.get(a, 0), co.counts, co.orders, m, a, popular, k)
            hits[m] += sum(b in top for b in items if b != a)
    return hits


def random_orders(rng: random.Random, n: int, n_items: int) -> list[list[str]]:
    weights = [1.0 / (i + 1) for i in range(n_items)]
    out = []
    for _ in range(n):
        size = rng.choice([1, 2, 2, 3, 4, 6])
        out.append([f"i{rng.choices(range(n_items), weights)[0]}" for _ in range(size)])  # repeats: one item
    return out


@pytest.mark.parametrize("seed", range(6))
def test_leave_one_out_equals_a_refit_without_the_order(seed):
    rng = random.Random(seed)
    orders = random_orders(rng, rng.randint(20, 80), rng.randint(5, 30))
    co = counted(orders)
    popular = popular_of(co, rng.choice([0, 3, 12]))
    k = rng.choice([1, 3, 10])
    for n, order in enumerate(orders):
        got, queries, used = prior_choice.leave_one_out([order], co.pairs, co.counts, co.orders, popular, GRID, k)
        assert got == refit_hits(orders, n, popular, GRID, k)
        distinct = len(order_items(order))
        assert (queries, used) == ((distinct * (distinct - 1), 1) if distinct >= 2 else (0, 0))


def test_the_totals_are_the_sum_over_orders():
    rng = random.Random(7)
    orders = random_orders(rng, 60, 15)
    co = counted(orders)
    popular = popular_of(co)
    hits, _, _ = prior_choice.leave_one_out(orders, co.pairs, co.counts, co.orders, popular)
    expected = {m: sum(refit_hits(orders, n, popular)[m] for n in range(len(orders))) for m in GRID}
    assert hits == expected


def shop_where_popularity_is_the_truth(rng: random.Random) -> list[list[str]]:
    """Each order draws its items from one skewed popularity, whatever else it holds: pairs are noise."""
    items = [f"p{i:03d}" for i in range(150)]
    weights = [1.0 / (i + 1) ** 0.9 for i in range(len(items))]
    return [rng.choices(items, weights, k=rng.randint(2, 4)) for _ in range(1500)]


def shop_where_pairs_are_the_truth(rng: random.Random) -> list[list[str]]:
    """Orders inside one of 60 small groups; the groups differ in popularity, so the prior points elsewhere."""
    groups = [[f"g{g:02d}-{j}" for j in range(6)] for g in range(60)]
    weights = [1.0 / (g + 1) for g in range(len(groups))]
    return [rng.sample(rng.choices(groups, weights)[0], rng.randint(2, 4)) for _ in range(1500)]


def choose_on(orders) -> prior_choice.Choice:
    co = counted(orders)
    return prior_choice.choose(orders[-600:], co.pairs, co.counts, co.orders, popular_of(co, 100))


def test_a_large_prior_where_popularity_is_the_truth():
    choice = choose_on(shop_where_popularity_is_the_truth(random.Random(1)))
    assert choice.strength >= 64
    assert choice.hits[choice.strength] > choice.hits[1.0]  # raw counts (m 1: ties by popularity) chase noise
    assert choice.hits[choice.strength] == max(choice.hits.values())


def test_a_small_prior_where_pairs_are_the_truth():
    choice = choose_on(shop_where_pairs_are_the_truth(random.Random(2)))
    assert choice.strength <= shrink.PRIOR_STRENGTH
    assert choice.hits[choice.strength] > choice.hits[1024.0]  # popularity would pull toward other groups
    assert choice.hits[choice.strength] == max(choice.hits.values())


def test_ties_go_to_the_default_then_the_smaller_m():
    assert prior_choice.best({0.0: 5, 16.0: 9, 64.0: 9}, 500) == 16.0
    assert prior_choice.best({0.0: 5, 4.0: 9, 64.0: 9}, 500) == 4.0
    assert prior_choice.best({0.0: 5, 64.0: 9, 256.0: 8}, 500) == 64.0


def test_too_few_queries_keep_the_default():
    assert prior_choice.best({0.0: 1, 256.0: 90}, prior_choice.MIN_QUERIES - 1) == shrink.PRIOR_STRENGTH
    assert prior_choice.best({0.0: 1, 256.0: 90}, prior_choice.MIN_QUERIES) == 256.0


def test_a_seed_bought_with_nothing_else_is_listed_the_popular_items():
    assert prior_choice.listed({"b": 0}, 1, {"a": 1, "b": 3, "c": 2}, 4, 16.0, "a", ["b", "a", "c"], 2) == ["b", "c"]


def test_a_large_catalogue_gets_as_many_orders_as_the_budget_affords():
    orders = [["a", "b"], ["a", "c"], ["b", "c", "d"], ["e"], ["d", "a"]]
    partners = {"a": 3, "b": 2, "c": 2, "d": 2, "e": 0}.get
    assert prior_choice.affordable(orders, partners, 1, 10**6) == orders
    assert prior_choice.affordable(orders, partners, 1, 7) == orders[:1]  # (3+1)+(2+1) = 7, then 7 more
    assert prior_choice.affordable(orders, partners, 1, 23) == orders[:4]  # + (2+1)*3, and a one-item order is free
    assert prior_choice.affordable(orders, partners, 1, 0) == orders[:1]  # always at least one
