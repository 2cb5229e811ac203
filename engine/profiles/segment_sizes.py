"""Segment sizes over time, sampled by the workers, for the console's segments page.

    {prefix}:segsize:<sample>   hash   segment -> members, at each SAMPLE_S step (epoch seconds // SAMPLE_S);
                                       kept KEPT_S

Sizes only: no member ids, so erasure has nothing to find here. HSET of the same
figures makes it harmless when several workers sample the same step.
"""

from __future__ import annotations

import asyncio
import logging
import time

from redis.asyncio import Redis

log = logging.getLogger("engine.segments")

SAMPLE_S = 600
KEPT_S = 48 * 3600


class SegmentSizes:
    def __init__(self, redis: Redis, prefix: str) -> None:
        self.redis = redis
        self.prefix = prefix

    def key(self, sample: int) -> str:
        return f"{self.prefix}:segsize:{sample}"

    async def record(self, sizes: dict[str, int], now_s: float | None = None) -> None:
        if not sizes:
            return
        key = self.key(int((now_s or time.time()) // SAMPLE_S))
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hset(key, mapping={name: int(size) for name, size in sizes.items()})
            pipe.expire(key, KEPT_S)
            await pipe.execute()

    async def history(self, hours: int = 24, now_s: float | None = None) -> list[tuple[int, dict[str, int]]]:
        """(sample start in epoch seconds, {segment: size}) for each step of the last `hours`, oldest first."""
        now = int((now_s or time.time()) // SAMPLE_S)
        wanted = list(range(now - hours * 3600 // SAMPLE_S + 1, now + 1))
        async with self.redis.pipeline(transaction=False) as pipe:
            for sample in wanted:
                pipe.hgetall(self.key(sample))
            rows = await pipe.execute()
        return [(s * SAMPLE_S, {k.decode(): int(v) for k, v in row.items()}) for s, row in zip(wanted, rows)]


async def sample_periodically(sizes: SegmentSizes, index, rules, stopping, every_s: float = SAMPLE_S / 2) -> None:
    """The worker's background task: the served segments' sizes, twice per step."""
    while not stopping():
        try:
            names = [s.name for s in rules.current.segments]
            await sizes.record(await index.sizes(names))
        except Exception as exc:
            log.warning("segment sizes not sampled: %r", exc)
        await asyncio.sleep(every_s)
