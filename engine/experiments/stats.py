"""The statistics of an experiment report. Pure: numbers in, numbers out.

Intervals that stay valid however often one looks: the mixture sequential probability
ratio test (mSPRT; Robbins 1970, Johari, Pekelis and Walsh 2017, "Always valid inference").
For the difference of two means d with estimated variance V = s1²/n1 + s0²/n0 and a
normal mixture N(0, tau²) over the effect, the likelihood ratio against "no difference" is

    L = sqrt(V / (V + tau²)) · exp(tau² d² / (2 V (V + tau²)))

and P(L ever exceeds 1/alpha | no difference) <= alpha. Inverting it gives the interval

    d ± sqrt(V (V + tau²) / tau² · (2 log(1/alpha) + log((V + tau²) / V)))

which covers the true difference at every moment with probability 1 - alpha, so a
marketer may check the report every day and stop whenever they like. The price is a
wider interval than a fixed-horizon one (about 1.5-2x at the sample sizes tau suits).
tau is the size of effect the test is tuned for; by default a fraction TAU_SCALE of
the metric's standard deviation (what Optimizely's stats engine also does).

Sample ratio mismatch: a chi-square test of people per arm against the configured
split; p < SRM_ALPHA flags a broken split (Kohavi et al., "Trustworthy online controlled
experiments", ch. 21).

CUPED (Deng, Xu, Kohavi and Walker 2013): y_adj = y - theta (x - mean x) with x the
person's activity before their first exposure and theta = cov(x, y) / var(x), pooled
over the arms. Assignment is independent of x, so the difference of adjusted means is
still unbiased, with variance shrunk by 1 - corr(x, y)².
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats as sps

ALPHA = 0.05
SRM_ALPHA = 0.001
TAU_SCALE = 0.05  # tau = this many standard deviations of the metric
METHOD = "mSPRT (normal mixture, always valid; Johari et al. 2017)"


@dataclass(frozen=True)
class Interval:
    estimate: float
    low: float
    high: float
    p_value: float  # always-valid p-value at this look: min(1, 1/L)

    def to_json(self, digits: int = 6) -> dict:
        """Rounded; an unbounded end is None (JSON has no infinity)."""

        def number(x: float) -> float | None:
            return round(x, digits) if math.isfinite(x) else None

        return {
            "estimate": number(self.estimate),
            "low": number(self.low),
            "high": number(self.high),
            "p_value": number(self.p_value),
        }


def msprt_interval(diff: float, variance: float, tau2: float, alpha: float = ALPHA) -> Interval:
    """The always-valid (1 - alpha) interval and p-value for a difference `diff` with estimated variance `variance`."""
    if not (variance > 0 and tau2 > 0):
        return (
            Interval(diff, -math.inf, math.inf, 1.0) if variance > 0 or diff != 0 else Interval(diff, diff, diff, 1.0)
        )
    v, t = variance, tau2
    half = math.sqrt(v * (v + t) / t * (2 * math.log(1 / alpha) + math.log((v + t) / v)))
    log_lr = 0.5 * math.log(v / (v + t)) + t * diff * diff / (2 * v * (v + t))
    p = 1.0 if log_lr <= 0 else math.exp(-log_lr)
    return Interval(diff, diff - half, diff + half, min(1.0, p))


def difference(
    treatment: np.ndarray, control: np.ndarray, alpha: float = ALPHA, tau_scale: float = TAU_SCALE
) -> Interval | None:
    """mSPRT interval of mean(treatment) - mean(control), per-person values; None below 2 people per arm."""
    t, c = np.asarray(treatment, float), np.asarray(control, float)
    if len(t) < 2 or len(c) < 2:
        return None
    variance = t.var(ddof=1) / len(t) + c.var(ddof=1) / len(c)
    pooled_sd = float(np.concatenate([t, c]).std(ddof=1))
    return msprt_interval(float(t.mean() - c.mean()), float(variance), (tau_scale * pooled_sd) ** 2, alpha)


def cuped_theta(ys: list[np.ndarray], xs: list[np.ndarray]) -> float:
    """theta = cov(x, y) / var(x), pooled over the arms (0 when x does not vary)."""
    y, x = np.concatenate([np.asarray(a, float) for a in ys]), np.concatenate([np.asarray(a, float) for a in xs])
    if len(x) < 2:
        return 0.0
    var = x.var(ddof=1)
    return float(np.cov(x, y, ddof=1)[0, 1] / var) if var > 0 else 0.0


def cuped_adjust(ys: list[np.ndarray], xs: list[np.ndarray]) -> tuple[list[np.ndarray], float]:
    """Each arm's y - theta (x - pooled mean of x), and theta."""
    theta = cuped_theta(ys, xs)
    mean_x = float(np.concatenate([np.asarray(a, float) for a in xs]).mean()) if any(len(a) for a in xs) else 0.0
    return [np.asarray(y, float) - theta * (np.asarray(x, float) - mean_x) for y, x in zip(ys, xs)], theta


def srm(observed: dict[str, int], shares: dict[str, float], alpha: float = SRM_ALPHA) -> dict | None:
    """Chi-square of people per arm against the configured shares; `mismatch` when p < alpha."""
    arms = [a for a in shares if shares[a] > 0]
    total = sum(observed.get(a, 0) for a in arms)
    if len(arms) < 2 or total == 0:
        return None
    weight = sum(shares[a] for a in arms)
    expected = [total * shares[a] / weight for a in arms]
    chi2, p = sps.chisquare([observed.get(a, 0) for a in arms], expected)
    return {
        "chi2": round(float(chi2), 4),
        "p_value": float(p),
        "mismatch": bool(p < alpha),
        "threshold": alpha,
        "expected": {a: round(e, 2) for a, e in zip(arms, expected)},
    }
