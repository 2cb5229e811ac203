"""Time-decayed popularity without rescanning: each purchase adds a weight that grows with time.

A purchase at time t adds 2 ** ((t - epoch) / half_life) to its item's score, so
an older purchase is worth half of a purchase one half-life later, and ranking by
the stored sum is ranking by decayed popularity at any moment. Dividing by the
weight of `now` turns the sum back into "purchases, decayed to now".

The weights would leave a double after 1,024 half-lives (20 years at 7 days, under
3 at 1 day), so time is cut into eras of ERA_HALF_LIVES half-lives, each summed in
its own key, with weights counted from the era's start (at most 2 ** 512). A read
adds the previous era, scaled down by 2 ** -ERA_HALF_LIVES: purchases older than
that are below what a double can tell from zero anyway.
"""

from __future__ import annotations

import math
from typing import Iterable, Mapping

EPOCH_MS = 1_704_067_200_000  # 2024-01-01T00:00:00Z
DAY_MS = 86_400_000
ERA_HALF_LIVES = 512


def half_lives(ts_ms: int, half_life_days: float, epoch_ms: int = EPOCH_MS) -> float:
    return (ts_ms - epoch_ms) / (half_life_days * DAY_MS)


def era_weight(ts_ms: int, half_life_days: float, epoch_ms: int = EPOCH_MS) -> tuple[int, float]:
    """(era, weight within the era) of a purchase at `ts_ms`."""
    x = half_lives(ts_ms, half_life_days, epoch_ms)
    era = math.floor(x / ERA_HALF_LIVES)
    return era, 2.0 ** (x - era * ERA_HALF_LIVES)


def decayed(stored: float, era: int, now_ms: int, half_life_days: float, epoch_ms: int = EPOCH_MS) -> float:
    """A sum stored in `era`, as purchases decayed to `now` (0.0 once too old to tell from nothing)."""
    exponent = half_lives(now_ms, half_life_days, epoch_ms) - era * ERA_HALF_LIVES
    return stored * 2.0**-exponent if exponent < 1074 else 0.0


def merge_eras(current: Iterable[tuple[str, float]], previous: Iterable[tuple[str, float]]) -> dict[str, float]:
    """Decayed scores of the current and previous era's items, summed per item."""
    out: dict[str, float] = {}
    for rows in (current, previous):
        for item, score in rows:
            out[item] = out.get(item, 0.0) + score
    return out


def top(scores: Mapping[str, float], k: int, exclude: Iterable[str] = ()) -> list[tuple[str, float]]:
    """The k most popular items, highest first, ties by id so the order is stable."""
    skip = set(exclude)
    ranked = sorted(
        ((item, s) for item, s in scores.items() if item not in skip and s > 0), key=lambda p: (-p[1], p[0])
    )
    return ranked[:k]
