"""Time-decayed popularity without rescanning: each purchase adds a weight that grows with time.

A purchase at time t adds 2 ** ((t - epoch) / half_life) to its item's score, so
an older purchase is worth half of a purchase one half-life later, and ranking by
the stored sum is ranking by decayed popularity at any moment. Dividing by the
weight of `now` turns the sum back into "purchases, decayed to now". With a
7-day half-life the weights stay inside a double for about 19 years past the epoch;
`rebase` divides stored scores when an operator moves the epoch.
"""

from __future__ import annotations

from typing import Iterable, Mapping

EPOCH_MS = 1_704_067_200_000  # 2024-01-01T00:00:00Z
DAY_MS = 86_400_000


def weight(ts_ms: int, half_life_days: float, epoch_ms: int = EPOCH_MS) -> float:
    return 2.0 ** ((ts_ms - epoch_ms) / (half_life_days * DAY_MS))


def decayed(stored: float, now_ms: int, half_life_days: float, epoch_ms: int = EPOCH_MS) -> float:
    """A stored sum as purchases decayed to `now`."""
    return stored / weight(now_ms, half_life_days, epoch_ms)


def top(scores: Mapping[str, float], k: int, exclude: Iterable[str] = ()) -> list[tuple[str, float]]:
    """The k most popular items, highest first, ties by id so the order is stable."""
    skip = set(exclude)
    ranked = sorted(((item, s) for item, s in scores.items() if item not in skip and s > 0), key=lambda p: (-p[1], p[0]))
    return ranked[:k]
