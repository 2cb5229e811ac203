"""The batch path from Kafka to the stores.

Faust's stream machinery costs tens of microseconds per event (see DESIGN 4), so
the worker reads whole fetches with aiokafka's `getmany` instead, hands each batch
to the handlers (each applies it idempotently per event_id), and commits the
offsets only after every handler has written. Faust still runs this loop: it is a
service of the worker app (engine.stream.worker), supervised, started and stopped with it.

Failure policy, in one place (`_handle`): an undecodable message goes to the
dead-letter topic with its reason and is skipped; so does an event the handlers
cannot apply (they return it in their result's `rejected`, or it makes a handler
raise something other than an outage: the batch is split in halves until the event
that fails alone is found), so one bad event never holds up its batch or its
partition. An outage (Redis or the broker unreachable) retries the same batch with
backoff and commits nothing, so nothing is lost. Offsets are committed only once
every dead letter is on its topic.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import time
from dataclasses import dataclass, field
from typing import Awaitable, Callable, Sequence

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError
from redis.exceptions import RedisError, ResponseError

from engine.errors import Unavailable
from engine.stream import codec
from engine.settings import Settings

log = logging.getLogger("engine.stream")

Handler = Callable[[list[dict]], Awaitable[object]]
BackgroundTask = Callable[[Callable[[], bool]], Awaitable[None]]  # runs until the callable says stop
BATCH_SIZE_BUCKETS = (1, 10, 100, 1000, 5000, 10000, 50000)
RAW_KEPT = 900 * 1024  # a dead letter keeps the whole record up to this, so it can be produced again


def is_outage(exc: BaseException) -> bool:
    """An error that says nothing about the events (retry them), as opposed to one they cause."""
    if isinstance(exc, ResponseError):
        return "script" not in str(exc).lower()  # a Lua error comes from the data it was given
    return isinstance(exc, (Unavailable, RedisError, KafkaError, OSError, asyncio.TimeoutError))


@dataclass
class StreamStats:
    """Counters the worker publishes with its heartbeat (rendered by /metrics)."""

    events: int = 0
    batches: int = 0
    dead_letters: int = 0
    unapplied: int = 0  # decoded, but the handlers could not apply them (also dead letters)
    handler_errors: int = 0
    lag: int = 0
    partitions: list[str] = field(default_factory=list)
    batch_size_buckets: list[int] = field(default_factory=lambda: [0] * len(BATCH_SIZE_BUCKETS))
    batch_size_sum: int = 0

    def observe_batch(self, size: int) -> None:
        self.batches += 1
        self.events += size
        self.batch_size_sum += size
        for i, bound in enumerate(BATCH_SIZE_BUCKETS):
            if size <= bound:
                self.batch_size_buckets[i] += 1


def kafka_consumer(settings: Settings, *topics: str, group_id: str | None, **overrides) -> AIOKafkaConsumer:
    """A consumer tuned for batches, with the short group timeouts Tansu needs."""
    rebalance_ms = int(settings.rebalance_timeout_s * 1000)
    options = dict(
        bootstrap_servers=settings.kafka,
        group_id=group_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_poll_records=settings.batch_size,
        fetch_max_bytes=64 << 20,
        max_partition_fetch_bytes=16 << 20,
        rebalance_timeout_ms=rebalance_ms,
        session_timeout_ms=max(6000, 2 * rebalance_ms),
        heartbeat_interval_ms=1000,
        client_id=f"clickstream-{socket.gethostname()}-{os.getpid()}",
    )
    options.update(overrides)
    return AIOKafkaConsumer(*topics, **options)


class BatchConsumer:
    def __init__(
        self,
        settings: Settings,
        handlers: Sequence[Handler],
        *,
        group_id: str | None = None,
        dead_letter: AIOKafkaProducer | None = None,
    ) -> None:
        self.settings = settings
        self.handlers = list(handlers)
        self.group_id = group_id or settings.consumer_group
        self.dead_letter = dead_letter
        self.stats = StreamStats()
        self.consumer: AIOKafkaConsumer | None = None
        self.ready = asyncio.Event()

    async def start(self) -> None:
        self.consumer = kafka_consumer(self.settings, self.settings.topic, group_id=self.group_id)
        await self.consumer.start()

    async def stop(self) -> None:
        if self.consumer is not None:
            await self.consumer.stop()
            self.consumer = None

    async def run(self, should_stop: Callable[[], bool]) -> None:
        consumer = self.consumer
        assert consumer is not None, "start() first"
        wait_ms = self.settings.batch_wait_ms
        while not should_stop():
            fetched = await consumer.getmany(timeout_ms=wait_ms, max_records=self.settings.batch_size)
            if consumer.assignment():
                self.ready.set()
            if not fetched:
                await self._update_lag()
                continue
            await self._handle(fetched, should_stop)
            offsets = {tp: records[-1].offset + 1 for tp, records in fetched.items()}
            try:
                await consumer.commit(offsets)
            except Exception as exc:  # partitions moved away mid-batch: redelivery is harmless
                log.warning("commit failed, batch will be redelivered and de-duplicated: %s", exc)
            await self._update_lag()

    async def _handle(self, fetched: dict, should_stop: Callable[[], bool]) -> None:
        events, sources = [], []  # sources[n]: the record events[n] came from
        for tp, records in fetched.items():
            for record in records:
                try:
                    event = codec.decode(record.value)
                except Exception as exc:
                    await self._dead_letter(tp, record, f"undecodable: {exc}", should_stop)
                    continue
                events.append(event)
                sources.append(record)
        rejected: dict[int, tuple[dict, str]] = {}
        await self._apply(events, rejected, should_stop)
        if rejected:
            at = {id(event): n for n, event in enumerate(events)}
            for event, reason in rejected.values():
                record = sources[at[id(event)]]
                self.stats.unapplied += 1
                await self._dead_letter(TopicPartition(record.topic, record.partition), record,
                                        f"not applied: {reason}", should_stop)
        self.stats.observe_batch(len(events))

    async def _apply(self, events: list[dict], rejected: dict, should_stop: Callable[[], bool]) -> None:
        """Every handler over `events`; what they cannot apply lands in `rejected` (id(event) -> (event, reason))."""
        delay = 0.1
        while events:
            try:
                for handler in self.handlers:
                    outcome = await handler(events)
                    for event, reason in getattr(outcome, "rejected", None) or ():
                        rejected.setdefault(id(event), (event, reason))
                return
            except Exception as exc:
                self.stats.handler_errors += 1
                if not is_outage(exc):
                    if len(events) == 1:
                        rejected[id(events[0])] = (events[0], f"{type(exc).__name__}: {exc}"[:500])
                        return
                    half = len(events) // 2  # in order: a partition's earlier events go first
                    await self._apply(events[:half], rejected, should_stop)
                    await self._apply(events[half:], rejected, should_stop)
                    return
                log.error("batch of %d events failed, retrying in %.1fs: %r", len(events), delay, exc)
                if should_stop():
                    raise
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def _dead_letter(self, tp: TopicPartition, record, reason: str, should_stop: Callable[[], bool] = lambda: False) -> None:
        self.stats.dead_letters += 1
        log.warning("dead letter %s[%d]@%d: %s", tp.topic, tp.partition, record.offset, reason.split(":")[0])
        if self.dead_letter is None:
            return
        raw = record.value or b""
        payload = {
            "reason": reason,
            "source": {"topic": tp.topic, "partition": tp.partition, "offset": record.offset},
            "raw": raw if len(raw) <= RAW_KEPT else raw[:4096],
            "at": int(time.time() * 1000),
        }
        delay = 0.1
        while True:  # the offset is committed only after the dead letter is on its topic
            try:
                await self.dead_letter.send_and_wait(self.settings.rejected_topic, codec.encode(payload), key=record.key)
                return
            except Exception as exc:
                if should_stop():
                    raise
                log.error("dead-letter topic unreachable, retrying in %.1fs: %r", delay, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def _update_lag(self) -> None:
        consumer = self.consumer
        lag = 0
        partitions = []
        for tp in consumer.assignment():
            partitions.append(f"{tp.topic}:{tp.partition}")
            high = consumer.highwater(tp)
            if high is None:
                continue
            try:
                position = await consumer.position(tp)
            except Exception:
                continue
            lag += max(0, high - position)
        self.stats.lag = lag
        self.stats.partitions = sorted(partitions)


@dataclass
class WorkerParts:
    """What the worker's stream service runs, built by the composition root."""

    handlers: list[Handler]
    dead_letter: AIOKafkaProducer
    heartbeat: Callable[[StreamStats, asyncio.Event], "Heartbeat"]
    background: list[BackgroundTask]
    close: Callable[[], Awaitable[None]]


class Heartbeat:
    """Publishes that this worker is alive, with its stats, for /healthz and /metrics."""

    def __init__(self, redis, key: str, worker_id: str, stats: StreamStats, ready: asyncio.Event, ttl_s: float) -> None:
        self.redis, self.key, self.worker_id = redis, key, worker_id
        self.stats, self.ready, self.ttl_s = stats, ready, ttl_s

    async def beat(self) -> None:
        body = dict(self.stats.__dict__, ts=time.time(), ready=self.ready.is_set())
        await self.redis.hset(self.key, self.worker_id, json.dumps(body))

    async def clear(self) -> None:
        await self.redis.hdel(self.key, self.worker_id)


async def read_heartbeats(redis, key: str, max_age_s: float) -> dict[str, dict]:
    """Live workers' published stats; stale entries (a killed worker) are dropped."""
    now = time.time()
    live = {}
    for worker_id, raw in (await redis.hgetall(key)).items():
        try:
            body = json.loads(raw)
        except ValueError:
            continue
        if now - body.get("ts", 0) <= max_age_s:
            live[worker_id.decode() if isinstance(worker_id, bytes) else worker_id] = body
    return live
