"""Decisions served per minute, by slot, rule and variant, for the console's rules page.

    {prefix}:served:<minute>   hash   "slot|rule|variant" -> decisions (engine.minute_counts)

A decision no rule made counts under its source (default, model, withheld...).
"""

from __future__ import annotations

import time
from collections import defaultdict

from redis.asyncio import Redis

from engine.minute_counts import MinuteCounts

SEP = "|"


def field_of(decision) -> str:
    return SEP.join(
        (decision.slot, decision.rule_id or f"({decision.source})", decision.variant or decision.content_id or "-")
    )


def totals(minutes: list[tuple[int, dict[str, int]]]) -> dict[str, dict[str, dict[str, int]]]:
    """slot -> rule -> variant -> decisions, summed over the minutes."""
    out: dict = defaultdict(lambda: defaultdict(lambda: defaultdict(int)))
    for _, row in minutes:
        for field, count in row.items():
            slot, rule, variant = (field.split(SEP, 2) + ["", ""])[:3]
            out[slot][rule][variant] += count
    return {s: {r: dict(v) for r, v in rules.items()} for s, rules in out.items()}


class ServedCounts:
    def __init__(self, redis: Redis, prefix: str, clock_ms=lambda: int(time.time() * 1000)) -> None:
        self.counts = MinuteCounts(redis, prefix, "served", clock_ms)

    def record(self, decisions: dict) -> None:
        for decision in decisions.values():
            self.counts.add(field_of(decision))

    async def run(self) -> None:
        await self.counts.run()

    async def last_hour(self) -> dict[str, dict[str, dict[str, int]]]:
        return totals(await self.counts.last(60))
