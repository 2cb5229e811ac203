"""Model-driven slots in the API: the bandit's choice per slot, and the decisions it must remember.

The choice is made before the pure decide (it needs the counters from Redis); decide
uses it only when no preference or rule answers first. Model and holdout decisions
are recorded before the response goes out, so the tracker's impression and click
events always find them.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from engine.rules.bandit import choose, context_key
from engine.rules.bandit_store import BanditStore
from engine.rules.decide import Decision, model_variants
from engine.rules.ruleset import RuleSet


class ModelSlots:
    def __init__(self, store: BanditStore, *, half_life_days: float) -> None:
        self.store = store
        self.half_life_days = half_life_days
        self.rng = np.random.default_rng()

    async def choose(
        self,
        rs: RuleSet,
        slots: list[str],
        person: dict | None,
        prefs: dict,
        context: dict,
        visitor_id: str,
        now_ms: int,
    ) -> dict:
        choices = {}
        key = None
        for name in slots:
            slot = rs.slots.get(name)
            allowed = model_variants(slot, prefs, person) if slot is not None else ()
            if len(allowed) < 1:
                continue
            key = key or context_key(person, context, now_ms, half_life_days=self.half_life_days)
            spec = replace(slot.model, variants=allowed)
            stats = await self.store.stats(name, getattr(slot.model, "reward", "click"))
            choices[name] = choose(spec, stats, key, visitor_id, name, slot.default, self.rng)
        return choices

    async def record(self, decisions: dict[str, Decision], choices: dict, visitor_id: str) -> None:
        async with self.store.redis.pipeline(transaction=False) as pipe:
            recorded = 0
            for name, decision in decisions.items():
                choice = choices.get(name)
                if choice is None or "model" not in decision.extra:
                    continue
                await self.store.record_decision(
                    decision.decision_id,
                    name,
                    choice.variant,
                    choice.context,
                    choice.propensity,
                    choice.holdout,
                    visitor_id,
                    client=pipe,
                )
                recorded += 1
            if recorded:
                await pipe.execute()

    async def report(self, rs: RuleSet, name: str) -> dict | None:
        slot = rs.slots.get(name)
        if slot is None or slot.model is None:
            return None
        return await self.store.report(name, slot.model, slot.default)
