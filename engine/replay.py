"""`clickstream replay`: rebuild the derived state in Redis from the start of the topic.

Wipes what the worker derives, then reads every partition from offset zero up to
the end offsets seen at the start, through the same batch handlers as the worker.
A live worker may keep running: both apply each event_id once, so they converge.
"""

from __future__ import annotations

import sys
import time

from engine import kafka
from engine.history import topic_history
from engine.redis_client import open_redis
from engine.settings import Settings
from engine.rules.live import LiveRules
from engine.worker import batch_handlers, clear_derived_state, profile_services


async def replay(settings: Settings, progress: bool = True) -> int:
    await kafka.ensure_topics(settings)
    redis = open_redis(settings.redis)
    try:
        rules = LiveRules(settings.rules, half_life_days=settings.interest_half_life_days)
        rules.refresh()
        handlers = batch_handlers(settings, redis, rules)
        applied, started = 0, time.monotonic()
        async for events, done, total in topic_history(settings, settings.batch_size,
                                                       before_first=lambda: clear_derived_state(settings, redis)):
            for handler in handlers:
                await handler(events)
            applied += len(events)
            if progress:
                rate = done / max(time.monotonic() - started, 1e-6)
                print(f"\rreplay {done}/{total} events ({rate:,.0f}/s)", end="", file=sys.stderr, flush=True)
        if progress:
            print(file=sys.stderr)
        values = profile_services(settings, redis).values
        if await redis.scard(values.buyers_key):
            await values.refit()
        return applied
    finally:
        await redis.aclose()
