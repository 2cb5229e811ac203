"""Off-policy evaluation of a model slot (pure): what another policy would have earned on the logged traffic.

Each logged person is (arm of their first exposure, its propensity, their reward, context).
For a deterministic candidate policy pi:

    IPS  = mean(w_i r_i),                          w_i = 1[pi(x_i) = a_i] / p_i
    DR   = mean(q(x_i, pi(x_i)) + w_i (r_i - q(x_i, a_i)))

with q the mean reward of an arm in a context (falling back to the arm's mean, then to the
overall mean). IPS is unbiased when the propensities are right; the doubly robust estimate
is unbiased if either the propensities or q are, and has lower variance (Dudik, Langford and
Li 2011). Intervals are the normal 95% ones of a mean of the per-person terms: this is a
one-off estimate, not a running test. Holdout people are not the policy's to choose and are
left out.
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Callable

Logged = tuple[str, float, float, str]  # (arm, propensity, reward, context)
Z = 1.959964


def _mean_interval(terms: list[float]) -> dict:
    n = len(terms)
    mean = sum(terms) / n
    var = sum((t - mean) ** 2 for t in terms) / (n - 1) if n > 1 else math.inf
    half = Z * math.sqrt(var / n) if math.isfinite(var) else math.inf
    return {"estimate": mean, "low": mean - half, "high": mean + half}


def reward_model(logged: list[Logged]) -> Callable[[str, str], float]:
    cell: dict[tuple[str, str], list[float]] = defaultdict(lambda: [0.0, 0])
    arm: dict[str, list[float]] = defaultdict(lambda: [0.0, 0])
    for a, _, r, x in logged:
        cell[(x, a)][0] += r
        cell[(x, a)][1] += 1
        arm[a][0] += r
        arm[a][1] += 1
    overall = sum(r for _, _, r, _ in logged) / len(logged) if logged else 0.0

    def q(x: str, a: str) -> float:
        if (x, a) in cell:
            s, n = cell[(x, a)]
            return s / n
        if a in arm:
            s, n = arm[a]
            return s / n
        return overall

    return q


def evaluate(logged: list[Logged], policy: Callable[[str], str]) -> dict:
    """IPS and doubly robust estimates of `policy`'s mean reward per person, with 95% intervals."""
    q = reward_model(logged)
    ips, dr = [], []
    for a, p, r, x in logged:
        if not p > 0:
            raise ValueError(f"a logged propensity must be above 0, got {p!r}")
        chosen = policy(x)
        w = (1.0 if chosen == a else 0.0) / p
        ips.append(w * r)
        dr.append(q(x, chosen) + w * (r - q(x, a)))
    return {"ips": _mean_interval(ips), "dr": _mean_interval(dr)}


def greedy(logged: list[Logged], arms: list[str]) -> Callable[[str], str]:
    """The arm with the best reward model per context (fit on the same logs: an optimistic candidate)."""
    q = reward_model(logged)
    return lambda x: max(arms, key=lambda a: (q(x, a), -arms.index(a)))


def candidates(logged: list[Logged], arms: list[str]) -> dict[str, dict]:
    out = {f"always {a}": evaluate(logged, lambda x, a=a: a) for a in arms}
    out["best per context"] = evaluate(logged, greedy(logged, arms))
    return out
