"""Segment changes and alerts as a Kafka topic, for consumers downstream (a CRM sync, a warehouse).

With `CLICKSTREAM_SEGMENT_CHANGES_TOPIC` set (docker-compose sets `clickstream.segment-changes`),
every outbox record (engine.profiles.segments_index) is also produced to that topic, keyed
by person so that one person's changes stay in order on one partition. The value is the
webhook body without traits: `{id, segment, person, change, at, score, reason}` or an
alert, `id` being the delivery id, the same if a record is produced again (consumers drop
repeats by it). The delivery worker feeds it from the outbox like a destination, with a
consumer group of its own, so profile processing never waits on the broker.

Unlike the outbox, a topic cannot be erased from: an erased person's records stay until
the topic's retention, and the `exited` record with reason `erased` tells consumers to
delete them. The embedded broker keeps everything in memory with no retention, which is
why `up` leaves the topic off.
"""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaProducer

from engine.settings import Settings
from engine.stream import kafka


class ChangesTopic:
    def __init__(self, settings: Settings, topic: str) -> None:
        self.settings = settings
        self.topic = topic
        self.name = f"kafka {topic}"  # a destination's name has no spaces: this group is the topic's alone
        self.producer: AIOKafkaProducer | None = None

    async def send(self, records: list[tuple[bytes, bytes]], timeout_s: float) -> None:
        """Returns once the broker acknowledged every (key, value); raises if it did not (nothing is acknowledged
        in the outbox then: the records are produced again, with the same ids)."""
        if self.producer is None:
            await kafka.ensure_topics(self.settings, timeout_s=timeout_s, extra=(self.topic,))
            producer = kafka.producer(self.settings)
            await producer.start()
            self.producer = producer
        futures = [await self.producer.send(self.topic, value, key=key) for key, value in records]
        await asyncio.wait_for(asyncio.gather(*futures), timeout_s)

    async def stop(self) -> None:
        if self.producer is not None:
            await self.producer.stop()
            self.producer = None
