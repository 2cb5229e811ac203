"""Customer value: the models recover what generated the data, and RFM, tiers and CLV behave."""

import numpy as np
import pytest

from engine.profiles import value
from engine.profiles.value import DAY_MS, Summary

NOW = 1_795_400_000_000


def simulate_bgnbd(n, r, alpha, a, b, T, seed=1):
    """Customers drawn from the BG/NBD story: Poisson buying while alive, a coin after each purchase."""
    rng = np.random.default_rng(seed)
    xs, txs = [], []
    for _ in range(n):
        rate, p = rng.gamma(r, 1 / alpha), rng.beta(a, b)
        t, x, t_x = 0.0, 0, 0.0
        while True:
            t += rng.exponential(1 / rate)
            if t > T:
                break
            x, t_x = x + 1, t
            if rng.random() < p:
                break
        xs.append(x)
        txs.append(t_x)
    return np.array(xs, float), np.array(txs), np.full(n, float(T))


def test_bgnbd_fit_recovers_the_parameters_that_generated_the_data():
    truth = (0.25, 4.4, 0.8, 2.4)
    x, t_x, T = simulate_bgnbd(5000, *truth, T=39)
    fitted = value.fit_bgnbd(x, t_x, T)
    for got, want in zip(fitted, truth):
        assert got == pytest.approx(want, rel=0.2)


def test_expected_purchases_match_a_simulated_future():
    truth = (0.5, 5.0, 0.6, 3.0)
    rng = np.random.default_rng(7)
    # Simulate 40 days, then the next 40, for the same customers.
    n, total = 4000, 80.0
    future_actual, hist = [], []
    for _ in range(n):
        rate, p = rng.gamma(truth[0], 1 / truth[1]), rng.beta(truth[2], truth[3])
        t, alive, times = 0.0, True, []
        while alive:
            t += rng.exponential(1 / rate)
            if t > total:
                break
            times.append(t)
            alive = rng.random() >= p
        before = [s for s in times if s <= 40]
        hist.append((len(before), before[-1] if before else 0.0))
        future_actual.append(len(times) - len(before))
    x = np.array([h[0] for h in hist], float)
    t_x = np.array([h[1] for h in hist])
    predicted = value.expected_purchases(truth, x, t_x, np.full(n, 40.0), 40.0)
    assert predicted.sum() == pytest.approx(sum(future_actual), rel=0.1)
    # More past purchases, more expected (for the same recency and age).
    assert value.expected_purchases(truth, 5, 39, 40, 40) > value.expected_purchases(truth, 1, 39, 40, 40)
    # A long silence since the last purchase lowers the expectation.
    assert value.expected_purchases(truth, 5, 5, 40, 40) < value.expected_purchases(truth, 5, 39, 40, 40)


def test_gamma_gamma_recovers_its_parameters_and_shrinks_towards_the_mean():
    p, q, g = 6.0, 4.0, 15.0
    rng = np.random.default_rng(3)
    n = 4000
    x = rng.integers(1, 8, n).astype(float)
    nu = rng.gamma(q, 1 / g, n)
    monetary = np.array([rng.gamma(p * xi, 1 / (nu_i * xi)) for xi, nu_i in zip(x, nu)])
    fitted = value.fit_gamma_gamma(x, monetary)
    prior_mean = g * p / (q - 1)
    assert fitted[0] * fitted[2] / (fitted[1] - 1) == pytest.approx(prior_mean, rel=0.1)
    one, many = value.expected_order_value(fitted, [1, 20], [200.0, 200.0], 30.0)
    assert prior_mean < one < many < 200  # few purchases: pulled harder towards the population


def test_summarize_counts_purchase_days_and_ignores_an_empty_log():
    log = [[NOW - 10 * DAY_MS, 20, "a"], [NOW - 10 * DAY_MS + 1000, 5, "b"], [NOW - 2 * DAY_MS, 30, "c"]]
    s = value.summarize(log, NOW)
    assert (s.x, s.t_x, s.T, s.orders, s.revenue, s.recency_days) == (1, 8.0, 10.0, 3, 55.0, 2.0)
    assert s.monetary == 30.0  # the repeat day's revenue
    assert value.summarize([], NOW) is None


def population(n=400, seed=5):
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        orders = int(rng.integers(1, 12))
        days = sorted(rng.choice(300, orders, replace=False))
        out.append(
            [[NOW - int(d) * DAY_MS, float(rng.gamma(2, 20 + i % 7 * 10)), f"o{i}-{j}"] for j, d in enumerate(days)]
        )
    return out


def test_fit_gives_quintiles_clv_and_an_80_20_tiering():
    logs = population()
    model = value.fit([value.summarize(log, NOW) for log in logs], NOW)
    assert model.tier_basis == "clv" and model.bgnbd and model.gamma_gamma
    values = [value.person_value(model, log, NOW) for log in logs]
    tiers = [v["tier"] for v in values]
    assert tiers.count("key") == pytest.approx(0.2 * len(logs), abs=3)
    assert tiers.count("growth") == pytest.approx(0.3 * len(logs), abs=3)
    key_clv = min(v["clv"]["value"] for v in values if v["tier"] == "key")
    assert all(v["clv"]["value"] <= key_clv for v in values if v["tier"] != "key")
    for v in values:
        assert 1 <= v["rfm"]["r"] <= 5 and 1 <= v["rfm"]["f"] <= 5 and 1 <= v["rfm"]["m"] <= 5
    # A fresh big spender beats a lapsed one-time buyer on every axis.
    best = value.person_value(model, [[NOW - d * DAY_MS, 500.0, f"b{d}"] for d in range(0, 40, 4)], NOW)
    worst = value.person_value(model, [[NOW - 299 * DAY_MS, 1.0, "w"]], NOW)
    assert best["rfm"]["score"] == "555" and worst["rfm"]["score"] == "111"
    assert best["tier"] == "key" and worst["tier"] != "key"
    assert best["clv"]["value"] > worst["clv"]["value"]


def test_without_enough_customers_the_tier_follows_revenue_and_there_is_no_clv():
    logs = population(20)
    model = value.fit([value.summarize(log, NOW) for log in logs], NOW)
    assert model.bgnbd is None and model.tier_basis == "revenue"
    v = value.person_value(model, logs[0], NOW)
    assert v["clv"] is None and v["tier"] in ("key", "growth", "low")
    assert value.person_value(value.ValueModel(), [], NOW) == {
        "tier": "low",
        "orders": 0,
        "revenue": 0.0,
        "rfm": None,
        "clv": None,
    }


def test_the_model_survives_json():
    logs = population(100)
    model = value.fit([value.summarize(log, NOW) for log in logs], NOW)
    again = value.ValueModel.from_json(model.to_json())
    assert value.person_value(again, logs[3], NOW) == value.person_value(model, logs[3], NOW)
    assert isinstance(Summary(0, 0, 0, 0, 1, 1, 0), Summary)
