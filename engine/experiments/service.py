"""Experiment reports over the store and the live rules (what the API and the command line print)."""

from __future__ import annotations

import time

from engine.experiments import exposures as xp
from engine.experiments import ope, report
from engine.experiments.store import ExperimentStore


class Experiments:
    def __init__(self, store: ExperimentStore, rules, global_percent: float, window_hours: float) -> None:
        self.store = store
        self.rules = rules  # engine.rules.live.LiveRules
        self.global_percent = global_percent
        self.window_hours = window_hours

    async def list(self) -> list[dict]:
        return report.catalog(
            self.rules.current, self.global_percent, await self.store.experiments(), int(time.time() * 1000)
        )

    async def report(self, experiment: str) -> dict | None:
        info = next((e for e in await self.list() if e["id"] == experiment), None)
        if info is None:
            return None
        info = {k: v for k, v in info.items() if k != "id"}
        configured, control = report.shares(self.rules.current, experiment, self.global_percent)
        records = await self.store.records(experiment)
        return report.build(experiment, info, records, configured, control, self.window_hours)

    async def ope(self, slot_name: str) -> dict | None:
        """Off-policy estimates for a model slot: each static variant and the best per context."""
        slot = self.rules.current.slots.get(slot_name)
        if slot is None or slot.model is None:
            return None
        reward = getattr(slot.model, "reward", "click")
        records = [r for r in await self.store.records(xp.slot_experiment(slot_name)) if r.get("arm") != xp.HOLDOUT]
        logged = [
            (str(r["arm"]), float(r["p"]), reward_of(r, reward), str(r.get("c") or "*"))
            for r in records
            if float(r.get("p") or 0) > 0
        ]
        out = {
            "slot": slot_name,
            "reward": reward,
            "decisions": len(logged),
            "confidence": 0.95,
            "method": "inverse propensity scoring and doubly robust (Dudik et al. 2011), per person",
            "logged": {"estimate": sum(r for _, _, r, _ in logged) / len(logged) if logged else None},
            "policies": {},
        }
        if len(logged) >= 2:
            out["policies"] = ope.candidates(logged, list(slot.model.variants))
        return out


REWARDS = ("click", "add_to_cart", "purchase", "revenue")


def reward_of(record: dict, reward: str) -> float:
    """A person's reward in a slot experiment, by the slot's configured reward."""
    if reward == "revenue":
        return float(record.get("rev", 0))
    field = {"click": "clk", "add_to_cart": "atc", "purchase": "buy"}[reward]
    return 1.0 if record.get(field, 0) > 0 else 0.0
