"""The contextual bandit, pure: learning, guardrails, propensities and offline estimates."""

from collections import Counter, defaultdict

import numpy as np
import pytest

from engine.rules.bandit import (
    GLOBAL,
    HOLDOUT,
    choose,
    context_key,
    greedy_policy,
    in_holdout,
    ips_estimate,
    lift,
    posterior,
    replay_estimate,
    snips_estimate,
)
from engine.rules.ruleset import ModelSpec

NOW = 1_795_400_000_000
HOUR = 3_600_000


def new_stats():
    return defaultdict(lambda: defaultdict(lambda: [0, 0]))


def learn(stats, context, variant, clicked):
    for where in (context, GLOBAL):
        stats[where][variant][0] += 1
        stats[where][variant][1] += int(clicked)


def simulate(spec, rates: dict[str, dict[str, float]], rounds: int, seed: int):
    """Visitors cycle through the contexts of `rates`; returns the variant shown each round, per context."""
    rng = np.random.default_rng(seed)
    stats = new_stats()
    shown = defaultdict(list)
    contexts = list(rates)
    for n in range(rounds):
        context = contexts[n % len(contexts)]
        choice = choose(spec, stats, context, f"v{n}", "hero", spec.variants[0], rng)
        learn(stats, context, choice.variant, rng.random() < rates[context][choice.variant])
        shown[context].append(choice.variant)
    return shown, stats


def test_converges_to_the_better_of_two_variants():
    spec = ModelSpec(("a", "b"), min_impressions=100, exploration=0.05, holdout=0)
    shown, _ = simulate(spec, {"ctx": {"a": 0.03, "b": 0.07}}, 6000, seed=1)
    late = Counter(shown["ctx"][-2000:])
    assert late["b"] / 2000 > 0.85, late
    early = Counter(shown["ctx"][:100])
    assert min(early.values()) > 25, early  # the warm-up showed both


def test_contexts_whose_best_variants_differ_both_converge():
    spec = ModelSpec(("a", "b", "c"), min_impressions=150, exploration=0.05, holdout=0)
    rates = {
        "mobile|new|none": {"a": 0.09, "b": 0.03, "c": 0.04},
        "desktop|new|none": {"a": 0.03, "b": 0.09, "c": 0.04},
    }
    shown, stats = simulate(spec, rates, 12_000, seed=2)
    for context, best in (("mobile|new|none", "a"), ("desktop|new|none", "b")):
        late = Counter(shown[context][-1500:])
        assert late[best] / 1500 > 0.8, (context, late)
    policy = greedy_policy(spec, stats)
    assert policy("mobile|new|none") == "a" and policy("desktop|new|none") == "b"


def test_a_thin_context_leans_on_the_slot_wide_figures():
    stats = {GLOBAL: {"a": (10_000, 800), "b": (10_000, 200)}, "rare": {"a": (2, 0), "b": (2, 1)}}
    alpha_a, beta_a = posterior(stats, "rare", "a")
    alpha_b, beta_b = posterior(stats, "rare", "b")
    assert alpha_a / (alpha_a + beta_a) > alpha_b / (alpha_b + beta_b)  # 2 impressions do not overturn 20,000
    spec = ModelSpec(("a", "b"), min_impressions=100, exploration=0.0, holdout=0)
    choice = choose(spec, stats, "rare", "v1", "hero", "a", np.random.default_rng(0))
    assert "mostly slot-wide data: 4 impressions here" in choice.reason


def test_uniform_while_the_slot_has_fewer_than_min_impressions():
    spec = ModelSpec(("a", "b", "c"), min_impressions=200, exploration=0.0, holdout=0)
    stats = {GLOBAL: {"a": (100, 50), "b": (20, 0)}, "ctx": {"a": (100, 50), "b": (20, 0)}}  # a looks far better
    rng = np.random.default_rng(3)
    choices = [choose(spec, stats, "ctx", f"v{n}", "hero", "a", rng) for n in range(3000)]
    counts = Counter(c.variant for c in choices)
    assert all(abs(counts[v] / 3000 - 1 / 3) < 0.04 for v in "abc"), counts
    assert all(c.explore and c.propensity == pytest.approx(1 / 3) for c in choices)
    assert choices[0].reason == "explore (120 of 200 impressions before exploiting)"

    stats[GLOBAL]["c"] = stats["ctx"]["c"] = (80, 1)  # now 200: exploiting starts
    after = Counter(choose(spec, stats, "ctx", f"v{n}", "hero", "a", rng).variant for n in range(1000))
    assert after["a"] > 950, after


def test_exploration_floor_rate_and_propensities():
    spec = ModelSpec(("a", "b"), min_impressions=100, exploration=0.2, holdout=0)
    stats = {GLOBAL: {"a": (10_000, 1000), "b": (10_000, 100)}, "ctx": {"a": (5000, 500), "b": (5000, 50)}}
    rng = np.random.default_rng(4)
    choices = [choose(spec, stats, "ctx", f"v{n}", "hero", "a", rng) for n in range(5000)]
    explored = sum(c.explore for c in choices) / 5000
    assert abs(explored - 0.2) < 0.025, explored
    share_b = sum(c.variant == "b" for c in choices) / 5000
    assert abs(share_b - 0.1) < 0.02, share_b  # half the exploration, none of the exploitation
    b = next(c for c in choices if c.variant == "b")
    assert b.propensity == pytest.approx(0.1, abs=0.01)
    assert b.reason.startswith("explore (20% exploration floor)")
    a = next(c for c in choices if c.variant == "a" and not c.explore)
    assert a.propensity == pytest.approx(0.9, abs=0.01) and a.reason.endswith("; exploit")
    assert a.reason.startswith("expected click rate 10.0% for ctx")


def test_propensity_matches_how_often_the_policy_picks_each_variant():
    spec = ModelSpec(("a", "b", "c"), min_impressions=10, exploration=0.1, holdout=0)
    stats = {
        GLOBAL: {"a": (300, 18), "b": (300, 15), "c": (300, 6)},
        "ctx": {"a": (100, 6), "b": (100, 5), "c": (100, 2)},
    }
    rng = np.random.default_rng(5)
    choices = [choose(spec, stats, "ctx", f"v{n}", "hero", "a", rng) for n in range(6000)]
    for variant in "abc":
        picked = [c for c in choices if c.variant == variant]
        assert abs(len(picked) / 6000 - np.mean([c.propensity for c in picked])) < 0.02, variant
    assert {round(c.propensity, 6) for c in choices if c.variant == "c"}  # never 0


def test_holdout_share_is_stable_per_visitor_and_slot():
    spec = ModelSpec(("a", "b"), min_impressions=0, exploration=0.1, holdout=10)
    visitors = [f"visitor-{n}" for n in range(20_000)]
    held = {v for v in visitors if in_holdout(v, "hero", spec.holdout)}
    assert abs(len(held) / len(visitors) - 0.10) < 0.01
    other_slot = {v for v in visitors if in_holdout(v, "footer", spec.holdout)}
    assert 0.05 < len(held & other_slot) / len(held) < 0.2  # independent per slot, not the same people

    visitor = sorted(held)[0]
    for seed, stats in enumerate(({}, {GLOBAL: {"a": (5000, 400), "b": (5000, 100)}})):
        choice = choose(spec, stats, "ctx", visitor, "hero", "welcome", np.random.default_rng(seed))
        assert (choice.variant, choice.content, choice.holdout, choice.propensity) == (HOLDOUT, "welcome", True, 1.0)
        assert choice.reason.startswith("holdout (10% of visitors")
    outside = sorted(set(visitors) - held)[0]
    assert not choose(spec, {}, "ctx", outside, "hero", "welcome", np.random.default_rng(0)).holdout
    assert not in_holdout(visitor, "hero", 0)


def test_context_key_is_small_and_discrete():
    person = {"value": {"tier": "key"}, "interests": {"shoes": [5.0, NOW - HOUR], "bags": [2.0, NOW - HOUR]}}
    assert context_key(person, {"device": "Mobile"}, NOW, half_life_days=14.0) == "mobile|key|shoes"
    assert context_key(None, {}, NOW, half_life_days=14.0) == "other|new|none"
    faded = {"interests": {"shoes": [5.0, NOW - 90 * 24 * HOUR]}}
    assert (
        context_key(faded, {"device": "desktop"}, NOW, half_life_days=14.0) == "desktop|new|none"
    )  # decayed below one view
    odd = {"value": {"tier": "platinum"}, "interests": {"Garden & Patio!": [3.0, NOW]}}
    assert context_key(odd, {"device": "fridge"}, NOW, half_life_days=14.0) == "other|new|garden-patio"
    assert (
        context_key(person, {"device": "tablet"}, NOW, categories=["bags"], half_life_days=14.0) == "tablet|key|other"
    )


def test_ips_is_unbiased_for_a_known_policy_on_a_synthetic_log():
    rng = np.random.default_rng(6)
    rates = {"c1": {"a": 0.02, "b": 0.10}, "c2": {"a": 0.12, "b": 0.03}}
    logging = {"c1": {"a": 0.7, "b": 0.3}, "c2": {"a": 0.2, "b": 0.8}}  # mostly the worse variant
    logged = []
    for n in range(60_000):
        context = "c1" if n % 2 else "c2"
        variant = "a" if rng.random() < logging[context]["a"] else "b"
        logged.append((variant, logging[context][variant], float(rng.random() < rates[context][variant]), context))
    target = {"c1": "b", "c2": "a"}.get
    truth = (rates["c1"]["b"] + rates["c2"]["a"]) / 2  # 0.11
    naive = np.mean([reward for _, _, reward, _ in logged])  # about 0.04
    assert abs(naive - truth) > 0.05
    assert ips_estimate(logged, target) == pytest.approx(truth, abs=0.01)
    assert snips_estimate(logged, target) == pytest.approx(truth, abs=0.01)
    stochastic = lambda ctx: logging[ctx]  # the logging policy itself
    assert ips_estimate(logged, stochastic) == pytest.approx(naive, abs=0.005)

    uniform = [(v, 0.5, r, c) for v, _, r, c in logged if rng.random() < 0.5]  # relabelled for replay's sake
    value, matched = replay_estimate(
        [
            (("a", "b")[n % 2], 0.5, float(rng.random() < rates[c][("a", "b")[n % 2]]), c)
            for n, (_, _, _, c) in enumerate(uniform)
        ],
        target,
    )
    assert value == pytest.approx(truth, abs=0.015) and 0.4 < matched / len(uniform) < 0.6

    with pytest.raises(ValueError):
        ips_estimate([("a", 0.0, 1.0, "c1")], target)


def test_lift_over_the_holdout_with_an_interval():
    result = lift((20_000, 1000), (2000, 80))  # 5% against 4%
    assert result["estimate"] == pytest.approx(0.25)
    assert result["low"] < 0.25 < result["high"] and result["low"] > -0.1 and result["confidence"] == 0.95
    tight = lift((200_000, 10_000), (20_000, 800))
    assert tight["high"] - tight["low"] < (result["high"] - result["low"]) / 2
    assert lift((1000, 10), (100, 0)) is None
