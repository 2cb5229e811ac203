"""The prior strength m of also-bought, chosen for this catalogue from its own orders by leave-one-out.

One fixed m cannot suit every catalogue (engine.recommend.shrink: a dense shop wants the
pair counts alone, thin grocery baskets want more popularity). So the engine asks its own
orders: for each sampled order B, every (seed a, held-out b) pair of B is a query, ranked
from the counts as they would be without B,

    c'_xy = c_xy - [x, y both in B],   n'_x = n_x - [x in B],   N' = N - 1,

the way the served list ranks (shrink.rank with the popular items competing, the seed
left out, then the popular fill to k), and b counts as a hit when it is among the k listed.
That is exact leave-one-out: the same lists a refit on every order but B would give
(tests/recommend/test_prior_choice.py refits to check), at the cost of one pass over the
sampled orders' seeds. The m with the most hits wins; ties go to PRIOR_STRENGTH, else to
the smaller m. Below MIN_QUERIES queries the default stays. The work grows with the
sampled seeds' partners: `affordable` keeps as many orders as BUDGET allows.

The popular list is the served one, held fixed: one order moves it by at most one
purchase. What the served list does past the ranking is left out: the per-category cap
and availability filters, and the fill's preference for the seed's category (here the
fill is the overall popular list, which matters only where the pairs leave the list
short: a seed with few partners). Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable, Iterator, Mapping, Sequence

from engine.recommend import shrink
from engine.recommend.cooccur import order_items

# No 0: m = 0 ranks the seed's pair counts with ties by item id, which means nothing on real
# ids (and on a generated catalogue whose ids follow popularity looks better than it is). m = 1
# is the raw counts with ties by popularity (the prior adds less than one order), so the plain
# counts are always on the grid, and a larger m is served only where the orders rank better with it.
GRID = (1.0, 4.0, 16.0, 64.0, 256.0, 1024.0)
K = 10  # HitRate@K: the length of a product page's list
MIN_QUERIES = 100  # fewer (seed, held-out) pairs than this: too little to move away from the default
BUDGET = 2_000_000  # scored candidates per m (a seed's partners plus the popular list, summed over seeds)


@dataclass(frozen=True)
class Choice:
    strength: float  # the m to serve
    hits: dict[float, int]  # per m of the grid: held-out items among the k listed
    queries: int  # (seed, held-out) pairs scored
    orders: int  # sampled orders with 2 or more items

    def hit_rates(self) -> dict[float, float]:
        return {m: h / self.queries if self.queries else 0.0 for m, h in self.hits.items()}


class _Without(Mapping):
    """Item counts less one for each item of the held-out order, without copying them."""

    def __init__(self, counts: Mapping[str, float], held: set[str]) -> None:
        self.counts, self.held = counts, held

    def get(self, item, default=None):
        value = self.counts.get(item)
        if value is None:
            return default
        return value - 1 if item in self.held else value

    def __getitem__(self, item):
        value = self.get(item)
        if value is None:
            raise KeyError(item)
        return value

    def __iter__(self) -> Iterator[str]:
        return iter(self.counts)

    def __len__(self) -> int:
        return len(self.counts)


def listed(
    pairs: Mapping[str, float],
    n_seed: float,
    counts: Mapping[str, float],
    n_orders: float,
    strength: float,
    seed: str,
    popular: Sequence[str],
    k: int = K,
) -> list[str]:
    """The k items the also-bought list of `seed` shows: shrink.rank (the popular items competing), then the
    popular fill. A seed bought with nothing gets the popular list, as served (engine.recommend.service)."""
    ranked = (
        shrink.rank(pairs, n_seed, counts, n_orders, strength, exclude=(seed,), popular=popular)
        if any(c > 0 for c in pairs.values())
        else []
    )
    out = [b for b, _ in ranked[:k]]
    taken = set(out)
    for b in popular:
        if len(out) >= k:
            break
        if b != seed and b not in taken:
            out.append(b)
            taken.add(b)
    return out


def affordable(
    orders: Sequence[Sequence[str]], partners: Callable[[str], int], popular: int, budget: int = BUDGET
) -> list[Sequence[str]]:
    """The orders from the first on while their seeds' candidates (`partners(a)` + `popular` each) fit the budget:
    the cost of a leave-one-out run grows with them, so a catalogue of well-bought items gets fewer orders."""
    out, cost = [], 0
    for items in orders:
        distinct = order_items(items)
        more = sum(partners(a) + popular for a in distinct) if len(distinct) >= 2 else 0
        if out and cost + more > budget:
            break
        out.append(items)
        cost += more
    return out


def leave_one_out(
    orders: Iterable[Sequence[str]],
    pairs: Mapping[str, Mapping[str, float]],
    counts: Mapping[str, float],
    n_orders: float,
    popular: Sequence[str],
    grid: Sequence[float] = GRID,
    k: int = K,
) -> tuple[dict[float, int], int, int]:
    """(hits per m, queries, orders used): each order's (seed, held-out) pairs ranked from the counts less that order.

    `pairs[a]` are a's pair counts (every seed of the orders needs its own), `counts` every item's orders,
    all including the orders given."""
    hits = {m: 0 for m in grid}
    queries = used = 0
    for items in orders:
        distinct = order_items(items)
        if len(distinct) < 2:
            continue
        used += 1
        held = set(distinct)
        without = _Without(counts, held)
        for a in distinct:
            own = dict(pairs.get(a, {}))
            for x in distinct:
                if x != a and x in own:
                    own[x] -= 1
            n_a = max(counts.get(a, 0) - 1, 0)
            others = [b for b in distinct if b != a]
            queries += len(others)
            for m in grid:
                top = set(listed(own, n_a, without, n_orders - 1, m, a, popular, k))
                hits[m] += sum(b in top for b in others)
    return hits, queries, used


def best(hits: Mapping[float, int], queries: int, default: float = shrink.PRIOR_STRENGTH) -> float:
    """The m with the most hits; ties to `default`, then to the smaller m; `default` below MIN_QUERIES."""
    if queries < MIN_QUERIES or not hits:
        return default
    top = max(hits.values())
    winners = [m for m, h in hits.items() if h == top]
    return default if default in winners else min(winners)


def choose(
    orders: Iterable[Sequence[str]],
    pairs: Mapping[str, Mapping[str, float]],
    counts: Mapping[str, float],
    n_orders: float,
    popular: Sequence[str],
    grid: Sequence[float] = GRID,
    k: int = K,
) -> Choice:
    """leave_one_out over the orders, then best: the m this catalogue's own orders rank best with."""
    hits, queries, used = leave_one_out(orders, pairs, counts, n_orders, popular, grid, k)
    return Choice(best(hits, queries), hits, queries, used)
