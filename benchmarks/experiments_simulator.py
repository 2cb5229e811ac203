"""Experiment statistics against ground truth: do the report's numbers mean what they say?

A simulated shop runs a rule experiment (control 34%, umbrella 33%, sun 33%) for 14 days.
Each person has a hidden propensity g ~ Gamma(1/2, 2) (mean 1, as uneven as shoppers are):
they buy with probability min(rate[arm] · g, 1), spend a lognormal order value (mean
price[arm]), and did Poisson(4 g) events before their first exposure, the CUPED covariate
(engine.experiments.exposures.pre_activity). The true differences are known exactly:
E[min(rate · g, 1)] from the Gamma distribution, times the mean price for revenue per person.

Checks, each over repeated runs:
  coverage      the marketer looks every day; a run is covered when the 95% interval of
                every look holds the truth (mSPRT, engine.experiments.stats), against the
                fixed-horizon z-interval looked at the same way (the baseline that peeking breaks)
  SRM           false alarms of the chi-square check (p < 0.001) on fair splits, and how often
                it fires when 5% of control's people are lost (a broken split)
  CUPED         how much narrower the interval is after CUPED, same data
  OPE           a logging policy with known propensities per context; IPS and doubly robust
                estimates of "always the best static variant" against its true value

Usage: python -m benchmarks.experiments_simulator [--runs 300] [--per-day 1000] [--seed 7]
Prints markdown; writes nothing.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import machine  # noqa: E402
from engine.experiments import ope, stats  # noqa: E402

ARMS = ("control", "umbrella", "sun")
SHARES = np.array([0.34, 0.33, 0.33])
RATE = {"control": 0.10, "umbrella": 0.12, "sun": 0.11}
PRICE = {"control": 40.0, "umbrella": 42.0, "sun": 40.0}
DAYS = 14
Z = 1.959964
SHAPE = 0.5


def buy_rate(rate: float) -> float:
    """E[min(rate · g, 1)] for g ~ Gamma(SHAPE, 1/SHAPE): rate E[g; g < 1/rate] + P(g >= 1/rate)."""
    from scipy import stats as sps

    t = 1 / rate
    return rate * sps.gamma.cdf(t, SHAPE + 1, scale=1 / SHAPE) + sps.gamma.sf(t, SHAPE, scale=1 / SHAPE)


def simulate(rng, n: int):
    arm = rng.choice(3, size=n, p=SHARES)
    g = rng.gamma(SHAPE, 1 / SHAPE, size=n)
    pre = rng.poisson(4 * g).astype(float)
    rates = np.array([RATE[a] for a in ARMS])[arm] * g
    bought = (rng.random(n) < np.minimum(rates, 1)).astype(float)
    prices = np.array([PRICE[a] for a in ARMS])[arm]
    value = prices * rng.lognormal(-0.5 * 0.6**2, 0.6, size=n)  # mean = price
    return arm, pre, bought, bought * value


def z_interval(t, c):
    d = t.mean() - c.mean()
    half = Z * math.sqrt(t.var(ddof=1) / len(t) + c.var(ddof=1) / len(c))
    return d - half, d + half


def coverage(runs: int, per_day: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    p = {a: buy_rate(RATE[a]) for a in ARMS}
    truth = {("conversion", a): p[a] - p["control"] for a in ARMS[1:]}
    truth |= {("revenue", a): p[a] * PRICE[a] - p["control"] * PRICE["control"] for a in ARMS[1:]}
    covered = {k: 0 for k in ("msprt", "msprt_cuped", "z_peeking", "z_final")}
    keys = list(truth)
    width_ratio, reductions = [], []
    for _ in range(runs):
        arm, pre, bought, revenue = simulate(rng, per_day * DAYS)
        ok = {(k, key): True for k in covered for key in keys}
        for day in range(1, DAYS + 1):
            n = per_day * day
            for metric, y in (("conversion", bought[:n]), ("revenue", revenue[:n])):
                a, x = arm[:n], pre[:n]
                groups = [y[a == i] for i in range(3)]
                xs = [x[a == i] for i in range(3)]
                adjusted, _ = stats.cuped_adjust(groups, xs)
                for i, name in enumerate(ARMS[1:], start=1):
                    true = truth[(metric, name)]
                    plain = stats.difference(groups[i], groups[0])
                    cup = stats.difference(adjusted[i], adjusted[0])
                    lo, hi = z_interval(groups[i], groups[0])
                    key = (metric, name)
                    ok[("msprt", key)] &= plain.low <= true <= plain.high
                    ok[("msprt_cuped", key)] &= cup.low <= true <= cup.high
                    ok[("z_peeking", key)] &= lo <= true <= hi
                    if day == DAYS:
                        ok[("z_final", key)] &= lo <= true <= hi
                        width_ratio.append((cup.high - cup.low) / (plain.high - plain.low))
                        reductions.append(
                            1 - (adjusted[i].var() + adjusted[0].var()) / (groups[i].var() + groups[0].var())
                        )
        for (k, _), value in ok.items():
            covered[k] += value
    return {
        "coverage": {k: v / (runs * len(keys)) for k, v in covered.items()},
        "intervals": runs * len(keys),
        "cuped_width_ratio": float(np.mean(width_ratio)),
        "cuped_variance_reduction": float(np.mean(reductions)),
    }


LOSSES = (0.02, 0.05, 0.10)


def srm_rates(runs: int, people: int, seed: int) -> dict:
    """False alarms on fair splits; how often the check fires when a share of control's people is never logged."""
    rng = np.random.default_rng(seed)
    shares = dict(zip(ARMS, SHARES))
    fair = 0
    fired = {loss: 0 for loss in LOSSES}
    for _ in range(runs):
        counts = rng.multinomial(people, SHARES)
        fair += stats.srm(dict(zip(ARMS, counts.tolist())), shares)["mismatch"]
        for loss in LOSSES:
            lost = counts.copy()
            lost[0] = rng.binomial(counts[0], 1 - loss)
            fired[loss] += stats.srm(dict(zip(ARMS, lost.tolist())), shares)["mismatch"]
    return {"false_alarms": fair / runs, "detected": {loss: n / runs for loss, n in fired.items()}}


def ope_check(runs: int, n: int, seed: int) -> dict:
    """Contexts mobile/desktop; the logging policy favours a different arm per context (known propensities)."""
    rng = np.random.default_rng(seed)
    contexts = ("mobile", "desktop")
    ctr = {"mobile": {"a": 0.04, "b": 0.07, "c": 0.05}, "desktop": {"a": 0.06, "b": 0.05, "c": 0.04}}
    logging = {"mobile": {"a": 0.2, "b": 0.6, "c": 0.2}, "desktop": {"a": 0.6, "b": 0.2, "c": 0.2}}
    arms = ["a", "b", "c"]
    true_value = {a: 0.5 * ctr["mobile"][a] + 0.5 * ctr["desktop"][a] for a in arms}
    best = max(arms, key=true_value.get)
    errors = {"ips": [], "dr": []}
    covered = {"ips": 0, "dr": 0}
    widths = {"ips": [], "dr": []}
    for _ in range(runs):
        logged = []
        for x in rng.choice(contexts, size=n):
            probs = logging[x]
            a = arms[rng.choice(3, p=[probs[k] for k in arms])]
            logged.append((a, probs[a], float(rng.random() < ctr[x][a]), x))
        found = ope.evaluate(logged, lambda x: best)
        for method in ("ips", "dr"):
            est = found[method]
            errors[method].append(abs(est["estimate"] - true_value[best]))
            covered[method] += est["low"] <= true_value[best] <= est["high"]
            widths[method].append(est["high"] - est["low"])
    return {
        "policy": f"always {best}",
        "true": true_value[best],
        **{
            m: {
                "mean_abs_error": float(np.mean(errors[m])),
                "coverage": covered[m] / runs,
                "mean_width": float(np.mean(widths[m])),
            }
            for m in ("ips", "dr")
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--per-day", type=int, default=1000)
    parser.add_argument("--srm-runs", type=int, default=20000)
    parser.add_argument("--ope-runs", type=int, default=200)
    parser.add_argument("--ope-size", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--parts", default="coverage,srm,ope", help="which checks to run (comma-separated)")
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    started = time.perf_counter()
    print(f"machine: {machine()}")
    print(
        f"runs: {args.runs} experiments x {DAYS} daily looks x {args.per_day} people a day "
        f"({args.per_day * DAYS} people per run, 3 arms); SRM: {args.srm_runs} splits of {args.per_day * DAYS}; "
        f"OPE: {args.ope_runs} logs of {args.ope_size}\n"
    )
    if "coverage" in parts:
        print_coverage(coverage(args.runs, args.per_day, args.seed))
    if "srm" in parts:
        srm = srm_rates(args.srm_runs, args.per_day * DAYS, args.seed + 1)
        print(
            f"\nSRM (p < 0.001) over {args.srm_runs} splits of {args.per_day * DAYS} people: "
            f"false alarms on fair splits {srm['false_alarms']:.2%}"
        )
        print("\n| control's people lost | check fires |\n|---|---|")
        for loss, rate in srm["detected"].items():
            print(f"| {loss:.0%} | {rate:.1%} |")
    if "ope" in parts:
        print_ope(ope_check(args.ope_runs, args.ope_size, args.seed + 2))
    print(f"\n{time.perf_counter() - started:.0f} s")


def print_coverage(cov: dict) -> None:
    c = cov["coverage"]
    print(f"| 95% interval ({cov['intervals']} = runs x 2 comparisons x 2 metrics) | covers the truth at every look |")
    print("|---|---|")
    print(f"| mSPRT, looked at daily | {c['msprt']:.1%} |")
    print(f"| mSPRT after CUPED, looked at daily | {c['msprt_cuped']:.1%} |")
    print(f"| fixed-horizon z-interval, looked at daily (baseline) | {c['z_peeking']:.1%} |")
    print(f"| fixed-horizon z-interval, last day only | {c['z_final']:.1%} |")
    print(
        f"\nCUPED: interval width x{cov['cuped_width_ratio']:.3f} of the plain one "
        f"(variance -{cov['cuped_variance_reduction']:.1%}) on day {DAYS}"
    )


def print_ope(o: dict) -> None:
    print(f"\nOPE of '{o['policy']}' (true value {o['true']:.4f}):")
    print("| estimate | mean abs error | 95% interval covers the truth | mean width |")
    print("|---|---|---|---|")
    for m, label in (("ips", "IPS"), ("dr", "doubly robust")):
        print(f"| {label} | {o[m]['mean_abs_error']:.4f} | {o[m]['coverage']:.1%} | {o[m]['mean_width']:.4f} |")


if __name__ == "__main__":
    main()
