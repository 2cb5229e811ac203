"""Counts per minute kept in Redis for a while, added up in memory and written every second.

    {prefix}:{name}:<minute>   hash   field -> count in that minute (UTC epoch minutes); kept KEPT_S

Buffered so the paths that count (the collector, decide) never wait on Redis for it:
one pipeline per second per process. A Redis failure loses that second's counts and
nothing else. Every process adds into the same hashes, so the figures are the engine's.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter

from redis.asyncio import Redis
from redis.exceptions import RedisError

log = logging.getLogger("engine.counts")

KEPT_S = 3 * 3600
FLUSH_S = 1.0


def minute_of(ms: int) -> int:
    return ms // 60_000


class MinuteCounts:
    def __init__(self, redis: Redis, prefix: str, name: str, clock_ms) -> None:
        self.redis = redis
        self.base = f"{prefix}:{name}"
        self.clock_ms = clock_ms
        self.pending: Counter = Counter()  # (minute, field) -> count

    def key(self, minute: int) -> str:
        return f"{self.base}:{minute}"

    def add(self, field: str, count: int = 1) -> None:
        if count:
            self.pending[(minute_of(self.clock_ms()), field)] += count

    async def flush(self) -> None:
        pending, self.pending = self.pending, Counter()
        if not pending:
            return
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                for (minute, field), count in pending.items():
                    pipe.hincrby(self.key(minute), field, count)
                for minute in {m for m, _ in pending}:
                    pipe.expire(self.key(minute), KEPT_S)
                await pipe.execute()
        except (RedisError, OSError) as exc:
            log.warning("counts of %s not stored: %s", self.base, type(exc).__name__)

    async def run(self, every_s: float = FLUSH_S) -> None:
        await flush_periodically(self.flush, every_s)

    async def last(self, minutes: int) -> list[tuple[int, dict[str, int]]]:
        """(minute, {field: count}) for each of the last `minutes` minutes, oldest first, the current one last."""
        now = minute_of(self.clock_ms())
        wanted = list(range(now - minutes + 1, now + 1))
        async with self.redis.pipeline(transaction=False) as pipe:  # one key per minute: no cross-slot reads
            for minute in wanted:
                pipe.hgetall(self.key(minute))
            rows = await pipe.execute()
        return [(m, {k.decode(): int(v) for k, v in row.items()}) for m, row in zip(wanted, rows)]


async def flush_periodically(flush, every_s: float = FLUSH_S) -> None:
    """Runs `flush` every `every_s` until cancelled, and once more then, so nothing counted stays in memory."""
    try:
        while True:
            await asyncio.sleep(every_s)
            await flush()
    finally:
        await flush()
