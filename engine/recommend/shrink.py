"""Also-bought for one seed: its own pair counts, shrunk toward popularity by how little evidence it has.

For a seed a held by n_a orders, c_ab of which also hold b, the served estimate of
P(b | a) is the pair share shrunk toward the prior by m pseudo-orders:

    score(b) = (c_ab + m * prior_b) / (n_a + m),      prior_b = n_b / N   (N orders in all)

For one seed the denominator is common, so the order is that of c_ab + m prior_b: the
prior is worth at most m orders. A seed with hundreds of orders has count gaps far
wider than that and is ranked by its counts; a seed with three borrows from
popularity, which reorders its near-ties (a best seller bought with it twice beats a
rarity bought with it three times once m prior_b passes the gap). m = 0 is raw
co-occurrence.

No minimum support: a pair seen once counts. Popular items never bought with the
seed compete by their prior alone (`rank(popular=...)`), m prior_b / (n_a + m): such an
item passes a partner only when m times the difference of their shares of all orders
is worth more than the partner's count, so it can displace the once-seen partners of a
thin seed, never the well-bought partners of a well-bought one.

m is the shop's own: the worker chooses it from a sample of the stored orders by exact
leave-one-out (engine.recommend.prior_choice, engine.recommend.prior_job) and the
scoring script reads it. PRIOR_STRENGTH is served until then: the m that
`benchmarks/recommend_robust.py` chose by 5-fold cross-validation inside the training
baskets of five data sets of different density together, the one whose worst
HitRate@10 gain over the better of raw counts and popularity is largest. Pure: no I/O.
"""

from __future__ import annotations

from typing import Iterable, Mapping

PRIOR_STRENGTH = 16.0  # m until the shop's own is chosen: cross-validation across five data sets (RESULTS.md)


def scores(
    pairs: Mapping[str, float],
    n_seed: float,
    counts: Mapping[str, float],
    n_orders: float,
    strength: float = PRIOR_STRENGTH,
) -> dict[str, float]:
    """Shrunk P(b | seed) for every b bought with the seed (pair count > 0)."""
    if strength < 0:
        raise ValueError("strength must be >= 0")
    total = max(float(n_orders), 1.0)
    # max(n_seed, c): counts read while an order is being applied may be one step apart (as cooccur.similarity)
    return {
        b: (c + strength * counts.get(b, 0) / total) / (max(n_seed, c) + strength) for b, c in pairs.items() if c > 0
    }


def rank(
    pairs: Mapping[str, float],
    n_seed: float,
    counts: Mapping[str, float],
    n_orders: float,
    strength: float = PRIOR_STRENGTH,
    exclude: Iterable[str] = (),
    popular: Iterable[str] = (),
) -> list[tuple[str, float]]:
    """Items bought with the seed and the `popular` items never bought with it, best first (ties by id).

    A popular item the seed was never bought with scores its prior share alone, m n_b / N / (n_a + m):
    a thin seed's once-seen partners compete with the best sellers, a well-bought seed's do not.
    """
    skip = set(exclude)
    scored = scores(pairs, n_seed, counts, n_orders, strength)
    if strength > 0:
        total = max(float(n_orders), 1.0)
        for b in popular:
            if b not in scored and counts.get(b, 0) > 0:
                scored[b] = strength * counts[b] / total / (n_seed + strength)
    return sorted(((b, s) for b, s in scored.items() if b not in skip), key=lambda p: (-p[1], p[0]))
