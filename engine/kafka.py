"""Kafka clients opened from settings: topics, producer."""

from __future__ import annotations

import asyncio
import logging

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from engine.settings import Settings

log = logging.getLogger("engine.kafka")


async def ensure_topics(settings: Settings, timeout_s: float = 30.0) -> None:
    """Create the events and rejected topics if missing (idempotent)."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka, request_timeout_ms=5000)
        try:
            await admin.start()
            existing = set(await admin.list_topics())
            wanted = [
                NewTopic(name, num_partitions=settings.partitions, replication_factor=1)
                for name in (settings.topic, settings.rejected_topic)
                if name not in existing
            ]
            if wanted:
                try:
                    await admin.create_topics(wanted)
                except TopicAlreadyExistsError:
                    pass
            return
        except Exception as exc:
            if asyncio.get_running_loop().time() > deadline:
                raise
            log.info("waiting for the broker at %s: %r", settings.kafka, exc)
            await asyncio.sleep(0.5)
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
