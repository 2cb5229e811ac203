"""Reading the event topic from its start: for replay, rule backtests and training."""

from __future__ import annotations

import logging
from typing import AsyncIterator

from aiokafka import TopicPartition

from engine.stream import codec, kafka
from engine.settings import Settings
from engine.stream.consumer import kafka_consumer

log = logging.getLogger("engine.history")


async def topic_history(settings: Settings, batch_size: int = 10_000, before_first=None) -> AsyncIterator[tuple[list[dict], int, int]]:
    """Yields (events, records read so far, total) up to the end offsets seen at the start.

    `before_first` (an async callable) runs once the end offsets are known, before the
    first batch: replay clears the derived state there. Undecodable records are
    skipped (the live worker sends them to the dead-letter topic).
    """
    consumer = kafka_consumer(settings, group_id=None)
    await consumer.start()
    try:
        partitions = [TopicPartition(settings.topic, p) for p in sorted(consumer.partitions_for_topic(settings.topic) or [])]
        end = await kafka.end_offsets(consumer, partitions)
        await consumer.seek_to_beginning(*partitions)
        total, done = sum(end.values()), 0
        if before_first is not None:
            await before_first()
        remaining = {tp for tp in partitions if end[tp] > 0}
        while remaining:
            fetched = await consumer.getmany(*remaining, timeout_ms=500, max_records=batch_size)
            events = []
            for tp, records in fetched.items():
                for record in records:
                    if record.offset >= end[tp]:
                        continue
                    done += 1
                    try:
                        events.append(codec.decode(record.value))
                    except Exception as exc:
                        log.warning("skipping undecodable record %s@%d: %r", tp, record.offset, exc)
                if records and records[-1].offset + 1 >= end[tp]:
                    remaining.discard(tp)
            yield events, done, total
    finally:
        await consumer.stop()
