"""What an experiment report says, from the people's records (pure).

Per arm: people exposed, exposures, impressions, clicks, add-to-carts, purchases,
conversions (people who bought), revenue, conversion rate and revenue per person. Per
arm against control: the difference of conversion rate and of revenue per person with
an always-valid 95% interval (engine.experiments.stats), plain and CUPED-adjusted, and
the relative lift (the interval divided by control's mean). A sample-ratio-mismatch
check of people per arm against the configured split says whether to trust any of it.
"""

from __future__ import annotations

import numpy as np

from engine.experiments import exposures as xp
from engine.experiments import stats
from engine.rules.ruleset import RuleSet

EXCLUDED = "bots, claimed (unconfirmed) orders, people without analytics consent, erased people"


def catalog(rs: RuleSet, global_percent: float, with_data: list[str], now_ms: int) -> list[dict]:
    """Every experiment: each rule that splits a slot, each model-driven slot, the global holdout; and any
    experiment with data whose rule or slot is gone (state "removed")."""
    out = {}
    for rule in rs.rules:
        for choice in rule.choices:
            if xp.is_experiment(rs, rule.id, choice.slot):
                state = (
                    "running"
                    if rule.enabled and rule.live(now_ms)
                    else ("disabled" if not rule.enabled else "not live")
                )
                out[xp.rule_experiment(rule.id, choice.slot)] = {
                    "kind": "rule",
                    "rule": rule.id,
                    "slot": choice.slot,
                    "state": state,
                }
    for name, slot in rs.slots.items():
        if slot.model is not None:
            out[xp.slot_experiment(name)] = {
                "kind": "model",
                "slot": name,
                "state": "running",
                "reward": getattr(slot.model, "reward", "click"),
            }
    out[xp.GLOBAL] = {
        "kind": "global holdout",
        "state": "running" if global_percent > 0 else "off",
        "holdout_percent": global_percent,
    }
    for experiment in with_data:
        out.setdefault(experiment, {"kind": experiment.split(":")[0], "state": "removed"})
    return [{"id": key, **value} for key, value in sorted(out.items())]


def shares(rs: RuleSet, experiment: str, global_percent: float) -> tuple[dict[str, float], str | None]:
    """(arm -> configured share, control arm) of an experiment; the bandit's arms are grouped as "model"."""
    if experiment == xp.GLOBAL:
        return {xp.HOLDOUT: global_percent / 100, xp.PERSONALIZED: 1 - global_percent / 100}, xp.HOLDOUT
    kind, _, rest = experiment.partition(":")
    if kind == "rule":
        rule_id, _, slot = rest.rpartition(":")
        configured = xp.rule_shares(rs, rule_id, slot) or {}
        control = xp.CONTROL if xp.CONTROL in configured else next(iter(configured), None)
        return configured, control
    if kind == "slot" and rest in rs.slots and rs.slots[rest].model is not None:
        holdout = rs.slots[rest].model.holdout / 100
        return {xp.HOLDOUT: holdout, "model": 1 - holdout}, xp.HOLDOUT
    return {}, None


def _row(records: list[dict]) -> dict:
    people = len(records)
    total = {k: sum(r.get(k, 0) for r in records) for k in ("n", "imp", "clk", "atc", "buy", "rev")}
    converted = sum(1 for r in records if r.get("buy", 0) > 0)
    return {
        "people": people,
        "exposures": total["n"],
        "impressions": total["imp"],
        "clicks": total["clk"],
        "add_to_cart": total["atc"],
        "purchases": total["buy"],
        "conversions": converted,
        "revenue": round(total["rev"], 2),
        "conversion_rate": converted / people if people else None,
        "revenue_per_person": total["rev"] / people if people else None,
    }


def _metric(records: list[dict], name: str) -> np.ndarray:
    if name == "conversion":
        return np.array([1.0 if r.get("buy", 0) > 0 else 0.0 for r in records])
    return np.array([float(r.get("rev", 0)) for r in records])


def _compare(treated: list[dict], control: list[dict], name: str) -> dict | None:
    y1, y0 = _metric(treated, name), _metric(control, name)
    plain = stats.difference(y1, y0)
    if plain is None:
        return None
    x1, x0 = (np.array([float(r.get("pre", 0)) for r in rs]) for rs in (treated, control))
    (a1, a0), theta = stats.cuped_adjust([y1, y0], [x1, x0])
    cuped = stats.difference(a1, a0)
    base = float(y0.mean())
    out = {
        "difference": plain.to_json(),
        "cuped": {**cuped.to_json(), "theta": round(theta, 6)},
        "variance_reduction": None,
        "control_mean": base,
        "treatment_mean": float(y1.mean()),
    }
    plain_var, cuped_var = y1.var() + y0.var(), a1.var() + a0.var()
    if plain_var > 0:
        out["variance_reduction"] = round(1 - cuped_var / plain_var, 4)
    if base > 0 and all(map(np.isfinite, (cuped.low, cuped.high))):
        best = cuped
        out["lift"] = {
            "estimate": round(best.estimate / base, 6),
            "low": round(best.low / base, 6),
            "high": round(best.high / base, 6),
            "of": "cuped difference / control mean",
        }
    return out


def build(
    experiment: str,
    info: dict,
    records: list[dict],
    configured: dict[str, float],
    control: str | None,
    window_hours: float,
) -> dict:
    by_arm: dict[str, list[dict]] = {}
    for record in records:
        by_arm.setdefault(str(record.get("arm")), []).append(record)
    arms = {arm: _row(rows) for arm, rows in sorted(by_arm.items())}
    for arm, share in configured.items():
        if experiment.startswith("slot:") and arm != xp.HOLDOUT:
            continue  # "model" stands for the bandit's arms together, in the sample-ratio check only
        arms.setdefault(arm, _row([]))
        arms[arm]["expected_share"] = round(share, 6)
    observed = {arm: row["people"] for arm, row in arms.items()}
    if experiment.startswith("slot:"):  # the bandit's shares move: only holdout against the model is fixed
        observed = {
            xp.HOLDOUT: observed.get(xp.HOLDOUT, 0),
            "model": sum(v for a, v in observed.items() if a != xp.HOLDOUT),
        }
    comparisons = {}
    if control is not None and by_arm.get(control):
        for arm, rows in sorted(by_arm.items()):
            if arm != control:
                comparisons[arm] = {
                    "conversion_rate": _compare(rows, by_arm[control], "conversion"),
                    "revenue_per_person": _compare(rows, by_arm[control], "revenue"),
                }
    switched = sum(1 for r in records if r.get("sw", 0) > 0)
    return {
        "id": experiment,
        **info,
        "method": stats.METHOD,
        "confidence": 1 - stats.ALPHA,
        "window_hours": window_hours,
        "control": control,
        "arms": arms,
        "comparisons": comparisons,
        "srm": stats.srm(
            observed,
            {"model" if experiment.startswith("slot:") and a != xp.HOLDOUT else a: s for a, s in configured.items()},
        ),
        "people_in_two_arms": switched,
        "excluded": EXCLUDED,
    }
