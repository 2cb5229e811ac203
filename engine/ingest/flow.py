"""What the collectors took in and refused, per minute, and why they refused the last events.

    {prefix}:flow:<minute>   hash   accepted, rejected, bot -> events (engine.minute_counts)
    {prefix}:flow:refused    list   JSON {at, type, error}, newest first, at most REFUSED_KEPT

A refusal keeps the event's type and the collector's reason, never the event, its ids
or the sender's address: nothing personal, so erasure has nothing to find here.
"""

from __future__ import annotations

import json
import logging
import time

from redis.asyncio import Redis
from redis.exceptions import RedisError

from engine.minute_counts import FLUSH_S, MinuteCounts, flush_periodically

log = logging.getLogger("engine.ingest")

REFUSED_KEPT = 50
TEXT_MAX = 200


def refusals(raw_events: list, rejected: list[dict], at_ms: int) -> list[dict]:
    """What to keep of each rejected event: its type (when it named one) and the reason."""
    out = []
    for item in rejected:
        index = item.get("index")
        raw = raw_events[index] if isinstance(index, int) and 0 <= index < len(raw_events) else None
        kind = raw.get("type") if isinstance(raw, dict) and isinstance(raw.get("type"), str) else None
        out.append({"at": at_ms, "type": kind[:40] if kind else None, "error": str(item.get("error", ""))[:TEXT_MAX]})
    return out


class Flow:
    def __init__(self, redis: Redis, prefix: str, clock_ms=lambda: int(time.time() * 1000)) -> None:
        self.redis = redis
        self.counts = MinuteCounts(redis, prefix, "flow", clock_ms)
        self.refused_key = f"{prefix}:flow:refused"
        self.pending_refusals: list[dict] = []

    def record(self, accepted: int, raw_events: list, rejected: list[dict], bot: bool, at_ms: int) -> None:
        """In memory; written with the next flush."""
        self.counts.add("accepted", accepted)
        self.counts.add("rejected", len(rejected))
        if bot:
            self.counts.add("bot", accepted)
        if rejected:
            self.pending_refusals = (refusals(raw_events, rejected, at_ms)[::-1] + self.pending_refusals)[:REFUSED_KEPT]

    async def flush(self) -> None:
        await self.counts.flush()
        pending, self.pending_refusals = self.pending_refusals, []
        if not pending:
            return
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.lpush(self.refused_key, *(json.dumps(r) for r in reversed(pending)))
                pipe.ltrim(self.refused_key, 0, REFUSED_KEPT - 1)
                await pipe.execute()
        except (RedisError, OSError) as exc:
            log.warning("refusals not stored: %s", type(exc).__name__)

    async def run(self, every_s: float = FLUSH_S) -> None:
        await flush_periodically(self.flush, every_s)

    async def per_minute(self, minutes: int = 60) -> list[tuple[int, dict[str, int]]]:
        return await self.counts.last(minutes)

    async def refused(self, limit: int = REFUSED_KEPT) -> list[dict]:
        return [json.loads(r) for r in await self.redis.lrange(self.refused_key, 0, limit - 1)]
