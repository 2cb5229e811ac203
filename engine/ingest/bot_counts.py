"""Bot events per day, counted by every collector in Redis and shown in /metrics.

{prefix}:bots:<YYYY-MM-DD>   int   events the collectors marked `bot` that day (UTC); kept DAYS_KEPT days
"""

from __future__ import annotations

import datetime as dt
import logging

from redis.asyncio import Redis
from redis.exceptions import RedisError

log = logging.getLogger("engine.ingest")

DAYS_KEPT = 35
DAYS_SHOWN = 7


def day_of(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.timezone.utc).date().isoformat()


class BotCounts:
    def __init__(self, redis: Redis, prefix: str) -> None:
        self.redis = redis
        self.prefix = prefix

    def _key(self, day: str) -> str:
        return f"{self.prefix}:bots:{day}"

    async def add(self, count: int, now_ms: int) -> None:
        """Counts; a Redis failure loses the count, never the events (they are on the topic, marked)."""
        key = self._key(day_of(now_ms))
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.incrby(key, count)
                pipe.expire(key, DAYS_KEPT * 86400)
                await pipe.execute()
        except (RedisError, OSError) as exc:
            log.warning("bot count not stored: %s", type(exc).__name__)

    async def recent(self, now_ms: int, days: int = DAYS_SHOWN) -> dict[str, int]:
        """Day -> bot events, for the last `days` days that had any."""
        wanted = [day_of(now_ms - n * 86_400_000) for n in range(days)]
        async with self.redis.pipeline(transaction=False) as pipe:  # one key per day: no cross-slot MGET
            for day in wanted:
                pipe.get(self._key(day))
            values = await pipe.execute()
        return {day: int(v) for day, v in zip(wanted, values) if v is not None}
