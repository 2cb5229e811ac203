"""The learning model of model-driven slots: a contextual Thompson-sampling bandit. Pure, no I/O.

Why this method: each slot has a handful of variants and the visitor is described by a
few discrete features, so a Beta-Bernoulli posterior per (context, variant) is all the
model there is. It is simple to explain ("expected click rate 4.1% for mobile|key|shoes"),
robust with few features and little data (no learning rate, no feature scaling, nothing
to diverge), and its whole state is two counters per (context, variant) — impressions
and clicks — which every API process can share as one Redis hash per slot and which
the worker updates with plain increments. Sampling from the posterior explores by
itself: a variant is tried about as often as it might be the best, so exploration fades
as evidence piles up, and it comes back on its own in a new or thin context.

How a choice is made (`choose`):

1. holdout: a stable hash of (visitor, slot) puts `holdout` percent of visitors in a
   group that always sees the slot's default (variant "holdout"); comparing them with
   everyone else measures what the model adds (engine.rules.bandit_store.report).
2. warm-up: while the slot has fewer than `min_impressions` impressions in all, choose
   uniformly at random.
3. exploration floor: with probability `exploration`, choose uniformly at random, so
   no variant is ever starved and logged propensities never get tiny.
4. otherwise draw once from each variant's posterior for the visitor's context and show
   the highest draw. Contexts share strength: a context's prior is the slot-wide
   posterior of the variant from the other contexts, shrunk to at most PRIOR_STRENGTH
   pseudo-impressions. A thin context therefore follows the slot-wide ("*") figures
   and moves to its own as its impressions grow past a few times PRIOR_STRENGTH.

Every choice carries its propensity: the probability this policy gives the variant,
the exploration mixture included, with the sampling part computed by quadrature
(`win_probabilities`; deterministic, where 200 Monte Carlo draws were off by up to
5 points and could give a chosen variant 0). Logged decisions can then judge
another policy offline: `ips_estimate`, `snips_estimate`, `replay_estimate`.
"""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass
from typing import Callable, Iterable, Mapping

import numpy as np
from scipy import special

from engine.profiles.model import decay

GLOBAL = "*"  # the slot-wide context
HOLDOUT = "holdout"  # the variant name of the holdout group
PRIOR_STRENGTH = 20.0  # at most this many pseudo-impressions of slot-wide data in a context's prior
# (benchmarks/bandit_simulator.py: 10-50 about equal, 1000 far worse)
QUADRATURE_NODES = 12  # behind a propensity: accurate to about 0.001 (200 Monte Carlo draws: 0.05)
MIN_PROPENSITY = 1e-6  # what a variant chosen against all odds is logged with, never 0
INTEREST_MIN = 1.0  # a decayed interest below this (about one recent view) is no interest
DEVICES = ("mobile", "tablet", "desktop")
TIERS = ("key", "growth", "low")

Stats = Mapping[str, Mapping[str, tuple[int, int]]]  # context -> variant -> (impressions, clicks)
Policy = Callable[[str], "str | Mapping[str, float]"]  # context -> variant, or variant -> probability


@dataclass(frozen=True)
class Choice:
    variant: str  # a content id of the slot, or HOLDOUT
    expected_ctr: float  # posterior mean click rate of the variant in this context
    explore: bool  # chosen at random (warm-up or exploration floor)
    holdout: bool
    context: str
    propensity: float  # probability this policy picks this variant here, for offline evaluation
    reason: str
    content: str  # what to show: the variant, or the slot default for the holdout


# --- the context: a few discrete features of the visitor ---------------------------


def _device(context: dict) -> str:
    device = str(context.get("device") or "").lower()
    return device if device in DEVICES else "other"


def _tier(person: dict | None) -> str:
    tier = ((person or {}).get("value") or {}).get("tier")
    return tier if tier in TIERS else "new"


def _label(name: str) -> str:
    return re.sub(r"[^a-z0-9_-]+", "-", str(name).lower()).strip("-")[:24] or "other"


def _top_interest(person: dict | None, now_ms: int, categories: Iterable[str] | None, half_life_days: float) -> str:
    best, best_score = "none", INTEREST_MIN
    for category, entry in sorted(((person or {}).get("interests") or {}).items()):
        try:
            score, ts = entry
            score = decay(float(score), int(ts), now_ms, half_life_days)
        except (TypeError, ValueError):
            continue
        if score >= best_score:
            best, best_score = category, score
    if best != "none" and categories is not None and best not in set(categories):
        return "other"
    return _label(best) if best != "none" else best


def context_key(
    person: dict | None, context: dict, now_ms: int, categories: Iterable[str] | None = None, *, half_life_days: float
) -> str:
    """device class | value tier | top interest, e.g. "mobile|key|shoes".

    At most 4 devices x 4 tiers x the interest categories; pass `categories` (the few
    that matter to the slot) to fold every other interest into "other" and keep the key
    space, and so the learning per context, small. `half_life_days`: the profiles' interest
    half-life (CLICKSTREAM_INTEREST_HALF_LIFE_DAYS), so the bandit reads interests as rules do.
    """
    return f"{_device(context)}|{_tier(person)}|{_top_interest(person, now_ms, categories, half_life_days)}"


# --- holdout ---------------------------------------------------------------------------


def in_holdout(visitor_id: str, slot: str, percent: float) -> bool:
    """Stable per (visitor, slot): the same visitor is always in or always out."""
    if percent <= 0:
        return False
    digest = hashlib.blake2b(f"{slot}\0{visitor_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64 * 100 < percent


# --- posteriors ---------------------------------------------------------------------


def _counts(stats: Stats, context: str, variant: str) -> tuple[int, float]:
    """(impressions, successes); successes may be fractional (a revenue reward, engine.rules.bandit_store)."""
    shown, clicked = (stats.get(context) or {}).get(variant, (0, 0))
    shown = max(int(shown), 0)
    clicked = float(clicked)
    return shown, min(max(int(clicked) if clicked.is_integer() else clicked, 0), shown)


def posterior(stats: Stats, context: str, variant: str, strength: float = PRIOR_STRENGTH) -> tuple[float, float]:
    """(alpha, beta) of the variant's click rate in `context`.

    The prior is the slot-wide posterior Beta(1 + clicks, 1 + misses) of the other
    contexts, scaled down to at most `strength` pseudo-impressions: with little slot-wide
    data it is exactly that posterior, with much it keeps its mean but not its certainty,
    so each context can still find out that it differs.
    """
    n_all, c_all = _counts(stats, GLOBAL, variant)
    n_ctx, c_ctx = _counts(stats, context, variant) if context != GLOBAL else (0, 0)
    n_rest, c_rest = max(n_all - n_ctx, 0), max(c_all - c_ctx, 0)
    c_rest = min(c_rest, n_rest)
    mean = (c_rest + 1) / (n_rest + 2)
    size = min(n_rest + 2, strength)
    return size * mean + c_ctx, size * (1 - mean) + (n_ctx - c_ctx)


def _impressions(stats: Stats, context: str, variants: Iterable[str]) -> int:
    return sum(_counts(stats, context, v)[0] for v in variants)


_NODES, _WEIGHTS = np.polynomial.legendre.leggauss(QUADRATURE_NODES)
_NODES, _WEIGHTS = (_NODES + 1) / 2, _WEIGHTS / 2  # Gauss-Legendre on (0, 1)


def win_probabilities(alphas: np.ndarray, betas: np.ndarray) -> np.ndarray:
    """P(arm i has the highest posterior draw) for every arm: what Thompson sampling picks.

    P_i = integral over u in (0, 1) of prod_{j != i} F_j(Q_i(u)), with Q_i the quantile
    function of arm i's Beta and F_j the others' CDFs. Integrating over arm i's own
    quantiles keeps the nodes where its mass is, however narrow the posteriors.
    """
    k = len(alphas)
    quantiles = special.betaincinv(alphas[:, None], betas[:, None], _NODES[None, :])  # arm i x node
    cdfs = special.betainc(alphas[None, :, None], betas[None, :, None], quantiles[:, None, :])  # i x j x node
    cdfs[np.arange(k), np.arange(k), :] = 1.0
    wins = np.nan_to_num(cdfs.prod(axis=1) @ _WEIGHTS)
    total = wins.sum()
    return wins / total if total > 0 else np.full(k, 1 / k)


# --- choosing ---------------------------------------------------------------------------


def choose(
    spec,
    stats: Stats,
    context_key: str,
    visitor_id: str,
    slot: str,
    default: str,
    rng: np.random.Generator | None = None,
    strength: float = PRIOR_STRENGTH,
) -> Choice:
    """The variant of a model-driven slot for one visitor. `spec` is a ruleset.ModelSpec."""
    rng = rng if rng is not None else np.random.default_rng()
    variants = list(spec.variants)
    k = len(variants)

    if in_holdout(visitor_id, slot, spec.holdout):
        shown, clicked = _counts(stats, GLOBAL, HOLDOUT)
        return Choice(
            HOLDOUT,
            (clicked + 1) / (shown + 2),
            False,
            True,
            context_key,
            1.0,
            f"holdout ({spec.holdout:g}% of visitors always see the default, to measure the model)",
            default,
        )

    params = [posterior(stats, context_key, v, strength) for v in variants]
    alphas = np.array([a for a, _ in params])
    betas = np.array([b for _, b in params])
    means = alphas / (alphas + betas)

    total = _impressions(stats, GLOBAL, variants)
    if total < spec.min_impressions:
        i = int(rng.integers(k))
        return Choice(
            variants[i],
            float(means[i]),
            True,
            False,
            context_key,
            1 / k,
            f"explore ({total} of {spec.min_impressions} impressions before exploiting)",
            variants[i],
        )

    explore = bool(rng.random() < spec.exploration)
    if explore:
        i = int(rng.integers(k))
    else:
        i = int(rng.beta(alphas, betas).argmax())
    propensity = max(
        spec.exploration / k + (1 - spec.exploration) * win_probabilities(alphas, betas)[i], MIN_PROPENSITY
    )

    own = _impressions(stats, context_key, variants) if context_key != GLOBAL else total
    where = (
        context_key if own >= spec.min_impressions else f"{context_key} (mostly slot-wide data: {own} impressions here)"
    )
    if explore:
        reason = f"explore ({spec.exploration:.0%} exploration floor); expected click rate {means[i]:.1%} for {where}"
    else:
        reason = f"expected click rate {means[i]:.1%} for {where}; exploit"
    return Choice(variants[i], float(means[i]), explore, False, context_key, float(propensity), reason, variants[i])


def greedy_policy(spec, stats: Stats, strength: float = PRIOR_STRENGTH) -> Callable[[str], str]:
    """The variant with the highest posterior mean per context (what exploiting would converge to)."""

    def policy(context: str) -> str:
        means = [(a / (a + b), v) for v in spec.variants for a, b in [posterior(stats, context, v, strength)]]
        return max(means, key=lambda mv: (mv[0], -spec.variants.index(mv[1])))[1]

    return policy


# --- offline evaluation ---------------------------------------------------------------


Logged = tuple[str, float, float, str]  # (chosen variant, its propensity, reward, context key)


def _target_probability(policy: Policy, context: str, variant: str) -> float:
    answer = policy(context)
    if isinstance(answer, str):
        return 1.0 if answer == variant else 0.0
    return float(answer.get(variant, 0.0))


def _weights(logged: list[Logged], policy: Policy) -> tuple[list[float], list[float]]:
    weights, rewards = [], []
    for variant, propensity, reward, context in logged:
        if not propensity > 0:
            raise ValueError(f"a logged propensity must be above 0, got {propensity!r} for {variant!r}")
        weights.append(_target_probability(policy, context, variant) / propensity)
        rewards.append(float(reward))
    return weights, rewards


def ips_estimate(logged: list[Logged], policy: Policy) -> float:
    """Inverse propensity scoring: the mean reward `policy` would have had on the logged traffic.

    Unbiased when every propensity is the logging policy's true probability at the
    time (as `choose` records) and the logger could choose what `policy` chooses.
    `policy(context)` returns a variant, or a mapping of variant to probability.
    Leave holdout decisions out: the holdout group is not the policy's to choose.
    """
    if not logged:
        return math.nan
    weights, rewards = _weights(logged, policy)
    return sum(w * r for w, r in zip(weights, rewards)) / len(logged)


def snips_estimate(logged: list[Logged], policy: Policy) -> float:
    """Self-normalized IPS: divides by the sum of the weights instead of the count.

    Slightly biased, much lower variance when the weights are large; nan when the
    logs never contain what `policy` would choose.
    """
    weights, rewards = _weights(logged, policy)
    total = sum(weights)
    return sum(w * r for w, r in zip(weights, rewards)) / total if total > 0 else math.nan


def replay_estimate(logged: list[Logged], policy: Callable[[str], str]) -> tuple[float, int]:
    """Replay (Li et al. 2011): the mean reward of the logged decisions where a
    deterministic `policy` agrees with the log, and how many there were. Unbiased only
    for uniformly random logging (the warm-up and exploration decisions)."""
    matched = [reward for variant, _, reward, context in logged if policy(context) == variant]
    return (sum(matched) / len(matched) if matched else math.nan), len(matched)


# --- what the model adds ---------------------------------------------------------------


def lift(model: tuple[int, int], holdout: tuple[int, int], z: float = 1.96) -> dict | None:
    """Relative click-rate difference of the model's visitors over the holdout's, with a 95% interval.

    `model` and `holdout` are (impressions, clicks). The interval is the usual one for a
    ratio of two proportions (the log of the ratio is about normal, Katz et al. 1978);
    None until both groups have a click, since a ratio to zero says nothing.
    """
    (n_m, c_m), (n_h, c_h) = model, holdout
    if min(c_m, c_h) <= 0 or c_m > n_m or c_h > n_h:
        return None
    ratio = (c_m / n_m) / (c_h / n_h)
    se = math.sqrt(max(1 / c_m - 1 / n_m + 1 / c_h - 1 / n_h, 0.0))
    return {
        "estimate": ratio - 1,
        "low": ratio * math.exp(-z * se) - 1,
        "high": ratio * math.exp(z * se) - 1,
        "confidence": round(math.erf(z / math.sqrt(2)), 3),
    }
