"""The one-seed ranking (engine.recommend.shrink): pure, no services."""

from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from engine.recommend import cooccur, prior_choice, shrink

COUNTS = {"milk": 500, "bread": 300, "caviar": 4, "blini": 3, "dill": 10}
N = 1000


def ids(ranked):
    return [b for b, _ in ranked]


def test_no_prior_is_raw_pair_counts():
    pairs = {"milk": 2, "caviar": 3, "blini": 3}
    assert ids(shrink.rank(pairs, 3, COUNTS, N, strength=0)) == ["blini", "caviar", "milk"]  # ties by id


def test_a_thin_seed_borrows_from_popularity_a_well_bought_one_does_not():
    thin = {"milk": 2, "caviar": 3}  # the seed is in 5 orders
    assert ids(shrink.rank(thin, 5, COUNTS, N, strength=8)) == ["milk", "caviar"]  # 2 + 8 * 0.5 > 3 + 8 * 0.004
    thick = {"milk": 200, "caviar": 300}  # the same shares of 500 orders: counts decide
    assert ids(shrink.rank(thick, 500, COUNTS, N, strength=8)) == ["caviar", "milk"]


def test_score_is_the_shrunk_share_and_matches_the_store_formula():
    got = dict(shrink.rank({"caviar": 3}, 5, COUNTS, N, strength=4))
    assert got["caviar"] == pytest.approx((3 + 4 * 4 / N) / (5 + 4))
    assert got["caviar"] == pytest.approx(cooccur.similarity(3, 5, 4, N, "shrunk", 1, strength=4))


def test_popular_items_compete_by_their_prior_share_alone():
    ranked = shrink.rank({"caviar": 1}, 2, COUNTS, N, strength=16, popular=["milk", "bread", "caviar"])
    assert ids(ranked) == ["milk", "bread", "caviar"]  # 16 * 0.5 > 16 * 0.3 > 1 + 16 * 0.004
    assert dict(ranked)["milk"] == pytest.approx(16 * 0.5 / (2 + 16))
    # without a prior the fill stays the caller's: only the seed's own partners are ranked
    assert ids(shrink.rank({"caviar": 1}, 2, COUNTS, N, strength=0, popular=["milk"])) == ["caviar"]


def test_exclude_and_bad_strength():
    assert ids(shrink.rank({"milk": 2, "dill": 1}, 3, COUNTS, N, 1, exclude={"milk"}, popular=["milk"])) == ["dill"]
    with pytest.raises(ValueError):
        shrink.rank({"milk": 1}, 1, COUNTS, N, strength=-1)


pair_counts = st.dictionaries(st.sampled_from(sorted(COUNTS)), st.integers(1, 50), min_size=1)


@given(pair_counts, st.floats(0, 64))
def test_with_enough_orders_the_counts_decide(pairs, m):
    """The same pair shares over 100 times as many orders: the counts, not the prior, decide (ties aside)."""
    many = {b: 100 * c for b, c in pairs.items()}
    ranked = shrink.rank(many, 100 * max(pairs.values()), COUNTS, N, strength=m)
    counts = [many[b] for b in ids(ranked)]
    assert counts == sorted(counts, reverse=True)


@given(pair_counts, st.integers(50, 1000), st.floats(0, 64))
def test_a_partner_is_never_below_one_bought_with_it_less_and_no_more_popular(pairs, n_seed, m):
    ranked = ids(shrink.rank(pairs, n_seed, COUNTS, N, strength=m))
    for a in pairs:
        for b in pairs:
            if pairs[a] > pairs[b] and COUNTS[a] >= COUNTS[b]:
                assert ranked.index(a) < ranked.index(b)


@given(
    st.dictionaries(st.sampled_from([f"i{n}" for n in range(12)]), st.integers(1, 6), min_size=1),
    st.dictionaries(st.sampled_from([f"i{n}" for n in range(12)]), st.integers(1, 99), min_size=12),
)
def test_the_smallest_m_of_the_grid_is_raw_counts_with_ties_by_popularity(pairs, bought):
    """m = 1 (prior_choice.GRID's smallest) adds less than one order: the plain counts, ties by popularity."""
    assert min(prior_choice.GRID) == 1.0
    counts = {b: max(n, pairs.get(b, 0)) for b, n in bought.items()}
    n_orders = 100  # every item is in fewer orders than this, so no prior share reaches 1
    raw = sorted(pairs, key=lambda b: (-pairs[b], -counts[b], b))
    assert ids(shrink.rank(pairs, max(pairs.values()), counts, n_orders, strength=1.0)) == raw
