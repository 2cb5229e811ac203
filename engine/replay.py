"""`clickstream replay`: rebuild the derived state in Redis from the start of the topic.

Wipes what the worker derives, then reads every partition from offset zero up to
the end offsets seen at the start, through the same batch handlers as the worker.
A live worker may keep running: both apply each event_id once, so they converge.
"""

from __future__ import annotations

import sys
import time

from aiokafka import TopicPartition

from engine import codec, kafka
from engine.redis_client import open_redis
from engine.settings import Settings
from engine.stream import kafka_consumer
from engine.rules.live import LiveRules
from engine.worker import batch_handlers, clear_derived_state, profile_services


async def replay(settings: Settings, progress: bool = True) -> int:
    await kafka.ensure_topics(settings)
    redis = open_redis(settings.redis)
    consumer = kafka_consumer(settings, group_id=None)
    await consumer.start()
    try:
        partitions = [TopicPartition(settings.topic, p) for p in sorted(consumer.partitions_for_topic(settings.topic) or [])]
        end = await kafka.end_offsets(consumer, partitions)
        await consumer.seek_to_beginning(*partitions)
        total = sum(end.values())
        await clear_derived_state(settings, redis)
        rules = LiveRules(settings.rules)
        rules.refresh()
        handlers = batch_handlers(settings, redis, rules)
        done, started = 0, time.monotonic()
        remaining = {tp for tp in partitions if end[tp] > 0}
        while remaining:
            fetched = await consumer.getmany(*remaining, timeout_ms=500, max_records=settings.batch_size)
            events = []
            for tp, records in fetched.items():
                events.extend(codec.decode(r.value) for r in records if r.offset < end[tp])
                if records and records[-1].offset + 1 >= end[tp]:
                    remaining.discard(tp)
            for handler in handlers:
                await handler(events)
            done += len(events)
            if progress:
                rate = done / max(time.monotonic() - started, 1e-6)
                print(f"\rreplay {done}/{total} events ({rate:,.0f}/s)", end="", file=sys.stderr, flush=True)
        if progress:
            print(file=sys.stderr)
        if await redis.scard(profile_services(settings, redis).values.buyers_key):
            await profile_services(settings, redis).values.refit()
        return done
    finally:
        await consumer.stop()
        await redis.aclose()
