"""The personalization model in a simulated shop: does it learn who likes what?

Visitors have hidden features: a device (mobile 55%, desktop 35%, tablet 10%), a
value tier (new 50%, low 25%, growth 15%, key 10%) and a top interest (none 35%,
shoes 25%, bags 20%, outdoor 20%). Their click probability on each of four hero
variants depends on device x interest (the best variant differs by visitor type);
the tier only scales all rates (key customers click more), so it splits the
contexts without changing the answer, as real features often do.

            free-shipping  shoes-promo  bags-promo  app-discount
  base          4.5%          3%           3%        2% (6% on mobile)
  shoes          .            8%            .           .
  bags           .             .           8%           .
  (times 0.8 new, 1.0 low, 1.2 growth, 1.5 key)

Policies, each on the same visitors and the same random numbers (a click happens
when u < p(click), u shared), so differences are the policies' own:
  model    engine.rules.bandit.choose on in-memory counters, updated after every
           impression (the deployed worker updates within a batch, about 1 s later)
  random   a uniformly random variant
  static   the best single variant, chosen with hindsight
  oracle   the best variant for each visitor type (knows the hidden rates)

Regret is expected clicks lost against the oracle (sum of p_oracle - p_chosen), so it
carries no click noise. The offline part judges policies the model never ran (the
greedy policy of the final counters; "always free-shipping") from the model's logged
decisions and propensities (IPS, self-normalized IPS), against their true click rate.

Usage: python -m benchmarks.bandit_simulator [--impressions 100000] [--seed 7] [--exploration 0.1]
Prints a markdown table; writes nothing.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.common import machine  # noqa: E402
from engine.rules.bandit import GLOBAL, choose, context_key, greedy_policy, ips_estimate, snips_estimate  # noqa: E402
from engine.rules.ruleset import ModelSpec  # noqa: E402

VARIANTS = ("free-shipping", "shoes-promo", "bags-promo", "app-discount")
DEVICES = {"mobile": 0.55, "desktop": 0.35, "tablet": 0.10}
TIERS = {"new": 0.50, "low": 0.25, "growth": 0.15, "key": 0.10}
INTERESTS = {"none": 0.35, "shoes": 0.25, "bags": 0.20, "outdoor": 0.20}
TIER_SCALE = {"new": 0.8, "low": 1.0, "growth": 1.2, "key": 1.5}
NOW_MS = 1_767_225_600_000  # 2026-01-01
LAST = 10_000


def click_rate(device: str, tier: str, interest: str, variant: str) -> float:
    rate = {
        "free-shipping": 0.045,
        "shoes-promo": 0.03,
        "bags-promo": 0.03,
        "app-discount": 0.06 if device == "mobile" else 0.02,
    }[variant]
    if (interest, variant) in (("shoes", "shoes-promo"), ("bags", "bags-promo")):
        rate = 0.08
    return rate * TIER_SCALE[tier]


TYPES = list(itertools.product(DEVICES, TIERS, INTERESTS))
TYPE_P = np.array([DEVICES[d] * TIERS[t] * INTERESTS[i] for d, t, i in TYPES])
RATES = np.array([[click_rate(*kind, v) for v in VARIANTS] for kind in TYPES])  # type x variant


def visitor(kind: tuple[str, str, str]) -> tuple[dict, dict]:
    """The person and request context the engine would see for a visitor of this type."""
    device, tier, interest = kind
    person = {"value": {"tier": tier} if tier != "new" else {}, "interests": {}}
    if interest != "none":
        person["interests"][interest] = [4.0, NOW_MS - 3_600_000]
    return person, {"device": device}


def run_model(types: np.ndarray, u: np.ndarray, spec: ModelSpec, seed: int):
    rng = np.random.default_rng(seed)
    stats: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(lambda: [0, 0]))
    keys = [context_key(*visitor(kind), NOW_MS, half_life_days=14.0) for kind in TYPES]
    chosen = np.empty(len(types), dtype=int)
    logged = []
    index = {v: i for i, v in enumerate(VARIANTS)}
    for n, (t, draw) in enumerate(zip(types, u)):
        ctx = keys[t]
        choice = choose(spec, stats, ctx, f"v{n}", "hero", VARIANTS[0], rng)
        i = index[choice.variant]
        clicked = int(draw < RATES[t, i])
        for where in (ctx, GLOBAL):
            counter = stats[where][choice.variant]
            counter[0] += 1
            counter[1] += clicked
        chosen[n] = i
        logged.append((choice.variant, choice.propensity, clicked, ctx))
    return chosen, logged, stats, keys


def true_rate(policy, keys: list[str]) -> float:
    """The exact click rate of a context -> variant policy over the visitor population."""
    picks = [VARIANTS.index(policy(key)) for key in keys]
    return float(sum(TYPE_P[t] * RATES[t, picks[t]] for t in range(len(TYPES))))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--impressions", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--exploration", type=float, default=0.1)
    parser.add_argument("--min-impressions", type=int, default=200)
    args = parser.parse_args()

    rng = np.random.default_rng(args.seed)
    types = rng.choice(len(TYPES), size=args.impressions, p=TYPE_P / TYPE_P.sum())
    u = rng.random(args.impressions)
    spec = ModelSpec(VARIANTS, min_impressions=args.min_impressions, exploration=args.exploration, holdout=0.0)

    started = time.perf_counter()
    model, logged, stats, keys = run_model(types, u, spec, args.seed + 1)
    model_s = time.perf_counter() - started

    n = np.arange(args.impressions)
    oracle = RATES[types].argmax(axis=1)
    static_variant = int((TYPE_P @ RATES).argmax())
    policies = {
        "model (Thompson sampling, per context)": model,
        "random variant": rng.integers(len(VARIANTS), size=args.impressions),
        f"best static variant ({VARIANTS[static_variant]}, hindsight)": np.full(args.impressions, static_variant),
        "oracle (best variant per visitor type)": oracle,
    }
    p_oracle = RATES[types, oracle]
    last = n >= args.impressions - LAST
    oracle_last_ctr = (u[last] < p_oracle[last]).mean()

    print(f"# Bandit simulator\n\n{machine()}\n")
    print(
        f"{args.impressions:,} impressions, {len(TYPES)} visitor types ({len({*keys})} context keys), "
        f"{len(VARIANTS)} variants, seed {args.seed}; model: min_impressions {spec.min_impressions}, "
        f"exploration {spec.exploration:g}, holdout 0; model time {model_s:.1f} s "
        f"({model_s / args.impressions * 1e6:.0f} us per choice)\n"
    )
    print(
        "| policy | click rate | regret (clicks lost vs oracle) | click rate, last 10k | regret, last 10k | % of oracle, last 10k |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    for name, picks in policies.items():
        p = RATES[types, picks]
        clicks = u < p
        regret = p_oracle - p
        print(
            f"| {name} | {clicks.mean():.2%} | {regret.sum():,.0f} | {clicks[last].mean():.2%} | "
            f"{regret[last].sum():,.0f} | {clicks[last].mean() / oracle_last_ctr:.0%} |"
        )

    print(
        "\nLearning curve: the model's expected click rate (no click noise) as a share of the oracle's, "
        "per window of 10,000 impressions ending at\n"
    )
    ends = sorted({min(e, args.impressions) for e in (10_000, 25_000, 50_000, 75_000, args.impressions)})
    print("| " + " | ".join(f"{e:,}" for e in ends) + " |")
    print("|" + "---:|" * len(ends))
    expected = RATES[types, model]
    print(
        "| "
        + " | ".join(
            f"{expected[max(e - LAST, 0) : e].mean() / p_oracle[max(e - LAST, 0) : e].mean():.1%}" for e in ends
        )
        + " |"
    )
    ceiling = (1 - spec.exploration) + spec.exploration * RATES[types[last]].mean() / p_oracle[last].mean()
    print(
        f"\nCeiling with a {spec.exploration:g} exploration floor (perfect otherwise): {ceiling:.1%} of the oracle's."
    )

    print("\n## Offline evaluation from the model's logged decisions\n")
    print("| target policy | true click rate | IPS estimate | self-normalized IPS |")
    print("|---|---:|---:|---:|")
    targets = {
        "greedy on the final counters": greedy_policy(spec, stats),
        "always free-shipping": lambda ctx: "free-shipping",
        "always app-discount": lambda ctx: "app-discount",
    }
    for name, policy in targets.items():
        print(
            f"| {name} | {true_rate(policy, keys):.2%} | {ips_estimate(logged, policy):.2%} | "
            f"{snips_estimate(logged, policy):.2%} |"
        )


if __name__ == "__main__":
    main()
