"""Kafka clients opened from settings: topics, producer."""

from __future__ import annotations

import asyncio
import logging

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError
from tenacity import AsyncRetrying, stop_after_delay, wait_fixed

from engine.settings import Settings

log = logging.getLogger("engine.kafka")


async def ensure_topics(settings: Settings, timeout_s: float = 30.0, extra: tuple[str, ...] = ()) -> None:
    """Create the events and rejected topics (and the `extra` ones) if missing (idempotent)."""
    async for attempt in AsyncRetrying(
        stop=stop_after_delay(timeout_s),
        wait=wait_fixed(0.5),
        reraise=True,
        before_sleep=lambda state: log.info(
            "waiting for the broker at %s: %r", settings.kafka, state.outcome.exception()
        ),
    ):
        with attempt:
            admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka, request_timeout_ms=5000)
            try:
                await admin.start()
                existing = set(await admin.list_topics())
                wanted = [
                    NewTopic(name, num_partitions=settings.partitions, replication_factor=1)
                    for name in (settings.topic, settings.rejected_topic, *extra)
                    if name not in existing
                ]
                if wanted:
                    try:
                        await admin.create_topics(wanted)
                    except TopicAlreadyExistsError:
                        pass
            finally:
                await admin.close()


async def delete_topic(settings: Settings, topic: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka, request_timeout_ms=5000)
    await admin.start()
    try:
        await admin.delete_topics([topic])
    finally:
        await admin.close()


def producer(settings: Settings, **overrides) -> AIOKafkaProducer:
    """acks=all: a 202 means the broker has the events."""
    options = dict(
        bootstrap_servers=settings.kafka,
        acks="all",
        linger_ms=2,
        max_batch_size=1 << 20,
        max_request_size=8 << 20,
        request_timeout_ms=5000,
        retry_backoff_ms=200,
    )
    options.update(overrides)
    return AIOKafkaProducer(**options)


async def end_offsets(consumer, partitions: list) -> dict:
    """The true end offset of each partition, read from a fetch's high watermark.

    ListOffsets alone is not enough: Tansu answers it with the base offset of
    the last record batch, not the end. A fetch's high watermark is right on
    every broker. Reassigns `consumer` to `partitions`.
    """
    listed = await consumer.end_offsets(partitions)
    consumer.assign(partitions)
    ends = {tp: 0 for tp in partitions if listed[tp] == 0}
    for tp in partitions:
        if listed[tp] > 0:
            consumer.seek(tp, listed[tp] - 1)
    deadline = asyncio.get_running_loop().time() + 15
    while len(ends) < len(partitions):
        await consumer.getmany(*[tp for tp in partitions if tp not in ends], timeout_ms=200, max_records=1)
        for tp in partitions:
            if tp not in ends and consumer.highwater(tp) is not None:
                ends[tp] = consumer.highwater(tp)
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError("could not read the end offsets of the topic")
    return ends
