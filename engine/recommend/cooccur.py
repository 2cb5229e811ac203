"""Co-occurrence math: what one order or one session view adds, and normalized similarity.

Raw pair counts favour best sellers: milk is bought with everything. Similarity
divides the pair count by how often each item occurs, and a minimum support drops
pairs seen too rarely to trust. `benchmarks/recommend_quality.py` compares the
measures on real and synthetic baskets (see RESULTS.md):

    confidence  c_ab / n_a                  (P(b | a): the share of a's orders that hold b)
    cosine      c_ab / sqrt(n_a * n_b)
    jaccard     c_ab / (n_a + n_b - c_ab)
    lift        c_ab * N / (n_a * n_b)      (N = number of orders)
    shrunk      (c_ab + m n_b / N) / (n_a + m)   (engine.recommend.shrink: P(b | a) shrunk toward popularity)

Shrunk is the one served for one seed (also-bought), with no minimum support;
confidence for several seeds (for-you, a cart). For one seed it ranks exactly as the raw counts do,
and offline nothing ranks one seed's partners better: dividing by n_b (cosine,
jaccard, lift) demotes the best sellers people do buy next. Summed over several
seeds, it gives each seed one vote of the same size, where raw counts let the
best-selling seed decide alone.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from typing import Iterable, Mapping

from engine.recommend.shrink import PRIOR_STRENGTH

METHODS = ("confidence", "cosine", "jaccard", "lift", "raw", "shrunk")
MAX_ITEMS_PER_ORDER = 50  # an order's pairs grow with its size squared; larger orders count their first 50
MAX_ITEMS_PER_SESSION = 50


def order_items(items: Iterable[str], cap: int = MAX_ITEMS_PER_ORDER) -> list[str]:
    """The distinct item ids of an order, in first-seen order, at most `cap` of them."""
    seen: dict[str, None] = {}
    for item in items:
        if item and item not in seen:
            seen[item] = None
            if len(seen) >= cap:
                break
    return list(seen)


def order_pairs(items: Iterable[str]) -> list[tuple[str, str]]:
    """Both directions of every pair of distinct items bought together: each adds 1."""
    distinct = order_items(items)
    return [(a, b) for a in distinct for b in distinct if a != b]


def view_pairs(session_viewed: Iterable[str], item: str, cap: int = MAX_ITEMS_PER_SESSION) -> list[tuple[str, str]]:
    """What viewing `item` adds to co-view counts, given the items the session viewed before.

    A pair counts once per session: viewing the same item again adds nothing,
    which also makes a redelivered view harmless.
    """
    before = order_items(session_viewed, cap)
    if item in before or len(before) >= cap:
        return []
    return [pair for other in before for pair in ((item, other), (other, item))]


def similarity(
    pair: float,
    n_a: float,
    n_b: float,
    n_orders: float,
    method: str = "cosine",
    min_support: float = 2,
    strength: float = PRIOR_STRENGTH,
) -> float:
    """Normalized similarity of b to a; 0 below the minimum support."""
    if pair < min_support or pair <= 0:
        return 0.0
    if method == "confidence":
        return pair / max(n_a, pair)
    if method == "cosine":
        return pair / math.sqrt(max(n_a, pair) * max(n_b, pair))
    if method == "jaccard":
        return pair / max(n_a + n_b - pair, pair)
    if method == "lift":
        return pair * max(n_orders, 1) / (max(n_a, pair) * max(n_b, pair))
    if method == "raw":
        return float(pair)
    if method == "shrunk":
        return (pair + strength * n_b / max(n_orders, 1)) / (max(n_a, pair) + strength)
    raise ValueError(f"unknown similarity {method!r}; expected one of {METHODS}")


def neighbours(
    seed: str,
    pairs: Mapping[str, float],
    counts: Mapping[str, float],
    n_orders: float,
    method: str = "cosine",
    min_support: float = 2,
    strength: float = PRIOR_STRENGTH,
) -> dict[str, float]:
    """Normalized neighbours of `seed` from its raw pair counts; zero scores are dropped."""
    n_seed = counts.get(seed, 0)
    out = {}
    for other, pair in pairs.items():
        if other == seed:
            continue
        score = similarity(pair, n_seed, counts.get(other, 0), n_orders, method, min_support, strength)
        if score > 0:
            out[other] = score
    return out


class CoCounts:
    """In-memory co-occurrence counts, the same numbers the Redis store keeps.

    Used offline (benchmarks, training checks) and as the reference the store's
    tests compare against.
    """

    def __init__(self) -> None:
        self.pairs: dict[str, Counter] = defaultdict(Counter)
        self.counts: Counter = Counter()
        self.orders = 0

    def add_order(self, items: Iterable[str], sign: int = 1) -> None:
        distinct = order_items(items)
        if not distinct:
            return
        self.orders += sign
        for item in distinct:
            self.counts[item] += sign
        for a, b in order_pairs(distinct):
            self.pairs[a][b] += sign

    def neighbours(
        self, seed: str, method: str = "cosine", min_support: float = 2, strength: float = PRIOR_STRENGTH
    ) -> dict[str, float]:
        return neighbours(seed, self.pairs.get(seed, {}), self.counts, self.orders, method, min_support, strength)
