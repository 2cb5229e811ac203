"""The identity of the event log: which incarnation of the topic the broker holds now.

A broker can lose its log and keep answering: the embedded Tansu broker keeps
everything in memory, so a restart comes back empty, and it acknowledges sends to
topics it no longer lists. Offsets then mean nothing: the worker's positions lie
past the new log's end, and the collectors' acknowledged offsets name records that
are gone. So the log carries an id, kept in the broker next to it:

    topic {events}.log   one partition; every record's value is a log id, the last one is current

A broker without that record (restarted, or a fresh one) holds a new log: whoever
finds it first appends a new id. Spool batches, archive segments and committed
positions are labelled with the log id they belong to, so nothing confirms an event
against offsets of another log. Ids sort by creation time (`<ms>-<random>`), which
is the order the archive reads logs in.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from engine.settings import Settings

log = logging.getLogger("engine.log")

KEY = b"log-id"
SETTLE_S = 0.3  # after appending an id, a racing appender's id would show up by now


def marker_topic(settings: Settings) -> str:
    return f"{settings.topic}.log"


FRESH = "-fresh"  # ends an id appended with a new events topic (deleted and created again): see LogWatch._reset


def new_log_id(now_s: float | None = None, fresh: bool = False) -> str:
    return f"{int((now_s or time.time()) * 1000):013d}-{secrets.token_hex(3)}{FRESH if fresh else ''}"


def is_fresh(log_id: str | None) -> bool:
    """Whether the log began on an events topic deleted and created again for it (nothing from before in it)."""
    return log_id is not None and log_id.endswith(FRESH)


class LogIdentity:
    """Reads and, when missing, creates the current log id (and the topics with it)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.topic = marker_topic(settings)
        self.tp = TopicPartition(self.topic, 0)
        self._consumer: AIOKafkaConsumer | None = None
        self._admin: AIOKafkaAdminClient | None = None

    async def start(self) -> None:
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=self.settings.kafka,
            enable_auto_commit=False,
            request_timeout_ms=5000,
            auto_offset_reset="earliest",
        )
        await self._consumer.start()
        self._admin = AIOKafkaAdminClient(bootstrap_servers=self.settings.kafka, request_timeout_ms=5000)
        await self._admin.start()

    async def stop(self) -> None:
        for client in (self._consumer, self._admin):
            if client is not None:
                try:
                    await (client.stop() if isinstance(client, AIOKafkaConsumer) else client.close())
                except Exception:
                    pass
        self._consumer = self._admin = None

    async def topics(self) -> set[str]:
        """Topics the broker lists (a listing of all topics: it never creates one)."""
        return set(await self._admin.list_topics())

    async def read(self) -> str | None:
        """The current log id; None when the broker holds no log id, or no events topic."""
        listed = await self.topics()
        if self.topic not in listed or self.settings.topic not in listed:
            return None
        consumer = self._consumer
        consumer.assign([self.tp])
        end = await _true_end(consumer, self.tp)
        if end == 0:
            return None
        consumer.seek(self.tp, end - 1)
        deadline = asyncio.get_running_loop().time() + 5
        while asyncio.get_running_loop().time() < deadline:
            fetched = await consumer.getmany(self.tp, timeout_ms=300, max_records=1)
            for record in fetched.get(self.tp, []):
                return record.value.decode()
        raise TimeoutError(f"could not read the log id from {self.topic}")

    async def ensure(self, timeout_s: float = 30.0, fresh: bool = False) -> str:
        """Creates what is missing (events, rejected and marker topics, a log id) and returns the log id;
        `fresh`: the caller has just deleted the events topic, so a new id is marked so."""
        deadline = asyncio.get_running_loop().time() + timeout_s
        while True:
            try:
                events_were_missing = await self._create_topics()
                current = await self.read()
                if current is not None and not events_were_missing:
                    return current
                # No id, or an id that outlived its events topic (deleted and created again).
                await self._append(new_log_id(fresh=fresh and events_were_missing))
                await asyncio.sleep(SETTLE_S)
                current = await self.read()
                if current is not None:
                    return current
            except Exception as exc:
                if asyncio.get_running_loop().time() > deadline:
                    raise
                log.info("waiting for the broker at %s: %r", self.settings.kafka, exc)
                await asyncio.sleep(0.5)

    async def renew(self, seen: str) -> str:
        """A log found reset (offsets past its end): appends a new id unless one already replaced `seen`."""
        current = await self.read()
        if current is not None and current != seen:
            return current
        await self._append(new_log_id())
        await asyncio.sleep(SETTLE_S)
        return await self.ensure()

    async def _create_topics(self) -> bool:
        """Creates the missing topics; True when the events topic was among them."""
        settings = self.settings
        listed = await self.topics()
        wanted = [
            NewTopic(name, num_partitions=settings.partitions, replication_factor=1)
            for name in (settings.topic, settings.rejected_topic)
            if name not in listed
        ]
        if self.topic not in listed:
            # Compacted: a real Kafka keeps the last id past any retention.
            wanted.append(
                NewTopic(
                    self.topic, num_partitions=1, replication_factor=1, topic_configs={"cleanup.policy": "compact"}
                )
            )
        if wanted:
            try:
                await self._admin.create_topics(wanted)
            except TopicAlreadyExistsError:
                pass
        return settings.topic not in listed

    async def _append(self, log_id: str) -> None:
        producer = AIOKafkaProducer(bootstrap_servers=self.settings.kafka, acks="all", request_timeout_ms=5000)
        await producer.start()
        try:
            await producer.send_and_wait(self.topic, log_id.encode(), key=KEY, partition=0)
        finally:
            await producer.stop()
        log.info("new event log %s on %s", log_id, self.settings.topic)


async def _true_end(consumer: AIOKafkaConsumer, tp: TopicPartition) -> int:
    from engine.stream.kafka import end_offsets

    return (await end_offsets(consumer, [tp]))[tp]


async def ensure_log(settings: Settings) -> str:
    """The topics and the log id, for a command that runs once (replay, a test)."""
    identity = LogIdentity(settings)
    await identity.start()
    try:
        return await identity.ensure()
    finally:
        await identity.stop()
