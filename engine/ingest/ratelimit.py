"""Requests per client address at the collector: a token bucket in Redis, shared by every collector.

    {prefix}:rl:<address>   hash  n = tokens left, t = when last counted (ms, Redis' clock)

<address> is the client's IP truncated as the events keep it (/24, /48): one bucket
per neighbourhood, and no full address stored. A bucket holds `burst` tokens and
refills `rate` per second; a request takes one, or is told how long to wait. The
script reads Redis' clock, so collectors on several machines agree.

Redis out of reach must not stop the collection while the broker takes events: the
limiter then lets requests through (fails open), counts it in
clickstream_rate_limit_unavailable_total, logs it (once a minute at most) and leaves
Redis alone for a few seconds before asking again.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time

from redis.asyncio import Redis
from redis.exceptions import RedisError

from engine.metrics import RATE_LIMITED, RATE_LIMIT_UNAVAILABLE
from engine.redis_scripts import lua

log = logging.getLogger("engine.ingest")

# KEYS[1]: the bucket.  ARGV: rate per second, burst.  Returns ms to wait (0: go ahead).
TAKE = lua("ingest", "take.lua")

TIMEOUT_S = 0.25  # a slow Redis costs a request this much at most
PAUSE_S = 5.0  # after a failure, requests pass without asking Redis for this long
LOG_EVERY_S = 60.0


class RateLimiter:
    def __init__(self, redis: Redis, prefix: str, rate_per_s: float, burst: int) -> None:
        self.redis = redis
        self.prefix = prefix
        self.rate = rate_per_s
        self.burst = burst
        self._take = redis.register_script(TAKE)
        self._paused_until = 0.0
        self._logged = float("-inf")

    async def retry_after(self, address: str | None) -> int | None:
        """Seconds the client must wait, or None when the request may go ahead."""
        if self.rate <= 0 or not address or time.monotonic() < self._paused_until:
            return None
        try:
            wait_ms = await asyncio.wait_for(
                self._take(keys=[f"{self.prefix}:rl:{address}"], args=[self.rate, self.burst]), TIMEOUT_S
            )
        except (RedisError, OSError, asyncio.TimeoutError) as exc:
            self._unavailable(exc)
            return None
        if not wait_ms:
            return None
        RATE_LIMITED.inc()
        return max(1, math.ceil(int(wait_ms) / 1000))

    def _unavailable(self, exc: Exception) -> None:
        now = time.monotonic()
        self._paused_until = now + PAUSE_S
        RATE_LIMIT_UNAVAILABLE.inc()
        if now - self._logged >= LOG_EVERY_S:
            self._logged = now
            log.warning("rate limiter: Redis unavailable (%s); letting requests through", type(exc).__name__)
