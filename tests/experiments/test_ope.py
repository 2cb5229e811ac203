"""Off-policy estimates, pure: IPS and doubly robust recover a known policy value from logged data."""

import numpy as np
import pytest

from engine.experiments import ope


def logged_uniform(n, rates, seed=1):
    """A uniform logging policy over arms with known click rates (context-free)."""
    rng = np.random.default_rng(seed)
    arms = list(rates)
    out = []
    for _ in range(n):
        a = arms[rng.integers(len(arms))]
        out.append((a, 1 / len(arms), float(rng.random() < rates[a]), "*"))
    return out


def test_ips_and_dr_cover_the_value_of_each_static_policy():
    rates = {"a": 0.05, "b": 0.12, "c": 0.08}
    logged = logged_uniform(30000, rates)
    found = ope.candidates(logged, list(rates))
    for arm, rate in rates.items():
        for method in ("ips", "dr"):
            est = found[f"always {arm}"][method]
            assert est["low"] <= rate <= est["high"], (arm, method, est)
    # the doubly robust interval is no wider than the IPS one
    assert (found["always b"]["dr"]["high"] - found["always b"]["dr"]["low"]) <= (
        found["always b"]["ips"]["high"] - found["always b"]["ips"]["low"]
    ) + 1e-12
    assert found["best per context"]["dr"]["estimate"] == pytest.approx(0.12, abs=0.01)


def test_a_policy_the_log_never_took_is_estimated_from_the_model_by_dr_only():
    logged = [("a", 0.5, 1.0, "x"), ("a", 0.5, 0.0, "x")]
    result = ope.evaluate(logged, lambda x: "b")
    assert result["ips"]["estimate"] == 0.0
    with pytest.raises(ValueError):
        ope.evaluate([("a", 0.0, 1.0, "x")], lambda x: "a")


def test_the_terminal_prints_every_candidate():
    from engine.experiments import printing

    logged = logged_uniform(2000, {"a": 0.05, "b": 0.1})
    text = printing.ope(
        {
            "slot": "hero",
            "reward": "click",
            "decisions": len(logged),
            "confidence": 0.95,
            "logged": {"estimate": 0.075},
            "policies": ope.candidates(logged, ["a", "b"]),
        }
    )
    assert "always a" in text and "always b" in text and "best per context" in text
