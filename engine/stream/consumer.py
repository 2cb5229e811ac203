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

Applied records go to the archive (engine.stream.archive) and offsets are committed
once their segment is sealed. The loop writes segments beside itself: it takes the
buffers and goes on applying batches while a thread writes them, one write at a time
and in order, and commits their offsets itself once the write is done (never from
beside the loop, where a commit could meet a rebalance).

A broker whose log was reset (a new log id, an end offset below this worker's
position, an offset out of range) is never skipped over in silence: `_reset` logs how many events may be missing, counts it in the stats
(/healthz, /metrics), and reads the new log from its earliest offset. A reset can
happen while a batch is being applied (a rebalance seals from aiokafka's own task):
each reset starts a new epoch, and a batch fetched in an earlier epoch is never
archived or committed, so no offset of the old log is taken for one of the new.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import os
import socket
import time
from dataclasses import dataclass, field
from typing import Awaitable, Callable, Sequence

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError, NoOffsetForPartitionError, OffsetOutOfRangeError
from redis.exceptions import RedisError, ResponseError

from engine.errors import Unavailable
from engine.settings import Settings
from engine.stream import codec
from engine.stream.archive import Archive, ArchiveWriter
from engine.stream.logid import LogIdentity

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


STALE_AFTER_RESET_S = 30.0  # a position past the end this soon after a reset is the old log's committed offset
GC_YOUNG_THRESHOLD = 50_000  # allocations between young collections (CPython's default: 700)


def tune_garbage_collection() -> None:
    """Fewer collections for a process that allocates a batch's worth of short-lived objects at a time.

    With CPython's defaults a 10,000-event batch triggers hundreds of young collections
    and several full ones over the cached profiles (a fifth of the worker's CPU per event
    in benchmarks/worker_profile.py); the batch's objects are freed by reference
    counting anyway. What the process holds after start-up is frozen out of the scans."""
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD, 20, 100)


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
    log_id: str | None = None  # the event log this worker reads (engine.stream.logid)
    resets: int = 0  # times the broker's log was found reset
    last_reset: dict | None = None  # when, why, and how many events may be missing
    archived_events: int = 0
    archive_segments: int = 0
    archive_pending: int = 0  # applied, not sealed into the archive yet

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
        # aiokafka waits 500 ms by default, and Tansu holds an empty fetch that long even when events arrive
        # meanwhile: most of a profile's staleness at a low rate (benchmarks/RESULTS.md, "Freshness").
        fetch_max_wait_ms=settings.batch_wait_ms,
        max_partition_fetch_bytes=16 << 20,
        rebalance_timeout_ms=rebalance_ms,
        session_timeout_ms=max(6000, 2 * rebalance_ms),
        heartbeat_interval_ms=1000,
        client_id=f"clickstream-{socket.gethostname()}-{os.getpid()}",
    )
    options.update(overrides)
    return AIOKafkaConsumer(*topics, **options)


class _Revocations(ConsumerRebalanceListener):
    """Seals and commits what this worker applied of the partitions it is about to lose."""

    def __init__(self, owner: "BatchConsumer") -> None:
        self.owner = owner

    async def on_partitions_revoked(self, revoked) -> None:
        try:
            await self.owner.seal_and_commit()
        except Exception as exc:  # the new owner re-reads from the last commit: harmless
            log.warning("could not seal before the rebalance: %r", exc)

    async def on_partitions_assigned(self, assigned) -> None:
        pass


class BatchConsumer:
    """Kafka batches -> handlers -> archive -> commit; notices a broker whose log was reset."""

    def __init__(
        self,
        settings: Settings,
        handlers: Sequence[Handler],
        *,
        group_id: str | None = None,
        dead_letter: AIOKafkaProducer | None = None,
        archive: Archive | None = None,
        identity: LogIdentity | None = None,
    ) -> None:
        self.settings = settings
        self.handlers = list(handlers)
        self.group_id = group_id or settings.consumer_group
        self.dead_letter = dead_letter
        self.writer = (
            ArchiveWriter(archive, settings.archive_segment_s, settings.archive_segment_events) if archive else None
        )
        self.identity = identity
        self.log_id: str | None = None
        self.stats = StreamStats()
        self.consumer: AIOKafkaConsumer | None = None
        self.ready = asyncio.Event()
        self.applied: dict[TopicPartition, int] = {}  # next offset per partition, applied, not yet committed
        self.seen_end: dict[TopicPartition, int] = {}  # the highest end offset seen, for the loss estimate
        self.epoch = 0  # one per log read: records of an earlier epoch are never archived or committed
        self._checked = 0.0
        self._sealing = asyncio.Lock()  # the buffers and `applied`: a rebalance may seal while a batch is handled
        self._seal_order = asyncio.Lock()  # one seal at a time, in order: segments are written as they were taken
        self._seal_task: asyncio.Task | None = None  # the archive write the loop started and goes on beside
        self._archived: dict[TopicPartition, int] = {}  # offsets whose records the archive holds, not yet committed

    async def start(self) -> None:
        if self.identity is not None:
            await self.identity.start()
            self.log_id = await self.identity.ensure()
            self.stats.log_id = self.log_id
        # "none": an offset out of range is a named event here, never a silent jump (see _run_once).
        self.consumer = kafka_consumer(self.settings, group_id=self.group_id, auto_offset_reset="none")
        self.consumer.subscribe([self.settings.topic], listener=_Revocations(self))
        await self.consumer.start()

    async def stop(self) -> None:
        if self.consumer is not None:
            try:
                await self._sealed()
            except Exception as exc:  # its records are back in the buffers: the seal below tries them again
                log.warning("an archive write failed: %r", exc)
            try:
                await self.seal_and_commit(verify=False)
            except Exception as exc:
                log.warning("could not seal at stop; the next start re-reads from the last commit: %r", exc)
            await self.consumer.stop()
            self.consumer = None
        if self.identity is not None:
            await self.identity.stop()

    async def run(self, should_stop: Callable[[], bool]) -> None:
        assert self.consumer is not None, "start() first"
        while not should_stop():
            await self._run_once(should_stop)

    async def _run_once(self, should_stop: Callable[[], bool]) -> None:
        if self._seal_task is not None and self._seal_task.done():
            await self._sealed()  # a write that failed fails the loop, as it did when the loop waited for it
            await self._commit(self._take_archived())  # here, not beside the loop: never during a rebalance
        consumer = self.consumer
        epoch = self.epoch
        try:
            fetched = await consumer.getmany(
                timeout_ms=self.settings.batch_wait_ms, max_records=self.settings.batch_size
            )
        except NoOffsetForPartitionError as exc:  # a new group, or a new log: start at its beginning
            await consumer.seek_to_beginning(*_partitions(exc))
            return
        except OffsetOutOfRangeError as exc:
            await self._reset(f"offsets out of range: {_describe(exc)}", renew=True)
            return
        if consumer.assignment():
            self.ready.set()
        if fetched:
            await self._handle(fetched, should_stop, epoch)
            if self.writer is None:
                await self._commit()
        now = time.monotonic()
        if now - self._checked >= self.settings.log_check_s:
            self._checked = now
            await self._check_log()
        if self.writer is not None and self._seal_task is None and self.writer.due() and await self._log_holds():
            # Beside the loop: the next batches are applied while these segments are written (10 s of events
            # take a tenth of a second or more, which every event arriving meanwhile used to wait for). The
            # offsets are committed by the loop once the write is done.
            self._seal_task = asyncio.create_task(self._archive())
        await self._update_lag()

    async def _sealed(self) -> None:
        """Waits for the archive write the loop started, and raises what it raised."""
        task, self._seal_task = self._seal_task, None
        if task is not None:
            await task

    async def _log_holds(self) -> bool:
        """Whether the broker still holds the log this worker reads (else it starts over: see _reset)."""
        if self.identity is None:
            return True
        try:
            return not await self._log_changed()
        except KafkaError as exc:  # the broker is away: keep the buffers, seal later
            log.info("could not read the log id before sealing, will retry: %r", exc)
            return False

    async def seal_and_commit(self, verify: bool = True) -> None:
        """Archives what was applied, then commits it; a committed offset is an archived one.

        The log id is read again first: records fetched from a broker that lost its log
        must not be archived under the old log's name, where they would seem to cover
        offsets that were lost. Dropping them is safe: the collectors' spools keep
        every batch until the archive holds it.
        """
        if self.writer is not None and self.writer.holding() and verify and not await self._log_holds():
            return
        await self._archive()
        await self._commit(self._take_archived())

    async def _archive(self) -> None:
        """Takes what is buffered, writes it to the archive, and makes its offsets committable (`_archived`)."""
        async with self._seal_order:
            taken = {}
            async with self._sealing:  # only to take the buffers: batches are applied and added while they are written
                if self.writer is not None:
                    taken = self.writer.take()
                applied, self.applied = self.applied, {}
                epoch, log_id = self.epoch, self.log_id or "unknown"
            if taken:
                try:
                    await asyncio.to_thread(self.writer.write, log_id, taken)
                except BaseException:
                    async with self._sealing:
                        if self.epoch == epoch:  # back in front of what came since, to be written and committed later
                            self.writer.put_back(taken)
                            self.applied = {**applied, **self.applied}
                    raise
                self.stats.archived_events, self.stats.archive_segments = self.writer.events, self.writer.segments
                self.stats.archive_pending = self.writer.pending()
            if self.epoch == epoch:  # else the log was reset meanwhile: these offsets are the old log's
                self._archived.update(applied)

    def _take_archived(self) -> dict[TopicPartition, int]:
        archived, self._archived = self._archived, {}
        return archived

    async def _commit(self, applied: dict[TopicPartition, int] | None = None) -> None:
        """Commits `applied` (default: everything applied so far)."""
        if applied is None:
            applied, self.applied = self.applied, {}
        if not applied:
            return
        offsets = {tp: offset for tp, offset in applied.items() if tp in self.consumer.assignment()}
        try:
            await self.consumer.commit(offsets)
        except Exception as exc:  # partitions moved away mid-batch: redelivery is harmless
            log.warning("commit failed, batch will be redelivered and de-duplicated: %s", exc)

    async def _check_log(self) -> None:
        if self.identity is None:
            return
        try:
            if await self._log_changed():
                return
        except Exception as exc:
            log.info("could not read the log id: %r", exc)
            return
        consumer = self.consumer
        for tp in consumer.assignment():
            high = consumer.highwater(tp)
            if high is None:
                continue
            try:
                position = await asyncio.wait_for(consumer.position(tp), 1.0)
            except Exception:
                continue
            if high < position:
                if time.time() - (self.stats.last_reset or {}).get("at", 0) < STALE_AFTER_RESET_S:
                    # The group's committed offset from the log before came back with a rebalance: not a new reset.
                    log.warning(
                        "%s[%d]: position %d from the previous log, past the end %d: reading from the start",
                        tp.topic,
                        tp.partition,
                        position,
                        high,
                    )
                    await self._rewind([tp])
                    continue
                await self._reset(
                    f"{tp.topic}[{tp.partition}] ends at {high}, below this worker's position {position}", renew=True
                )
                return

    async def _log_changed(self) -> bool:
        current = await self.identity.read()
        if current == self.log_id:
            return False
        await self._reset(
            "the broker holds no log id" if current is None else f"the broker holds log {current}", renew=False
        )
        return True

    async def _reset(self, reason: str, renew: bool) -> None:
        """The broker's log is not the one this worker was reading: start over on the new one."""
        consumer = self.consumer
        old = self.log_id
        unapplied = 0
        for tp in consumer.assignment():
            try:
                position = await asyncio.wait_for(consumer.position(tp), 1.0)
            except Exception:
                position = self.applied.get(tp, 0)
            unapplied += max(0, self.seen_end.get(tp, 0) - position)
        unarchived = self._forget_old_log()
        if self.identity is not None:
            self.log_id = await (self.identity.renew(old) if renew else self.identity.ensure())
        self.stats.resets += 1
        self.stats.log_id = self.log_id
        self.stats.last_reset = {
            "at": time.time(),
            "reason": reason,
            "from_log": old,
            "to_log": self.log_id,
            "unapplied": unapplied,
            "unarchived": unarchived,
        }
        log.error(
            "event log reset (%s): log %s -> %s; up to %d events the old log acknowledged were not applied "
            "by this worker and %d applied ones were not archived yet: they are missing unless a collector's "
            "spool re-sends them; reading the new log from its earliest offset",
            reason,
            old,
            self.log_id,
            unapplied,
            unarchived,
        )
        if consumer.assignment():
            await self._rewind(list(consumer.assignment()))

    def _forget_old_log(self) -> int:
        """Starts a new epoch: what was applied of the old log is neither archived nor committed. Returns how
        many applied records are dropped from the archive's buffers (the collectors' spools still hold them)."""
        self.epoch += 1
        self.applied, self.seen_end, self._archived = {}, {}, {}
        return self.writer.discard() if self.writer is not None else 0

    async def _rewind(self, partitions: list[TopicPartition]) -> None:
        """Reads from the earliest offset, and commits that, so a rebalance does not bring back an old position."""
        consumer = self.consumer
        try:
            starts = await consumer.beginning_offsets(partitions)
        except Exception:
            await consumer.seek_to_beginning(*partitions)
            return
        for tp in partitions:
            consumer.seek(tp, starts[tp])  # explicit: seek_to_beginning did not always replace a stale position
        try:
            await consumer.commit({tp: starts[tp] for tp in partitions})
        except Exception as exc:
            log.info("could not commit the earliest offsets: %r", exc)

    async def _handle(self, fetched: dict, should_stop: Callable[[], bool], epoch: int | None = None) -> None:
        # The batch's events live until it is done: a young collection on the way would only scan them and
        # move them to older generations, to be scanned again. Reference counting frees them after the batch;
        # the cycles the batch leaves wait for the next collection, once it is over.
        gc.disable()
        try:
            await self._handle_batch(fetched, should_stop, epoch)
        finally:
            gc.enable()

    async def _handle_batch(self, fetched: dict, should_stop: Callable[[], bool], epoch: int | None) -> None:
        events, sources = [], []  # sources[n]: the record events[n] came from
        archived: dict[int, list] = {}
        for tp, records in fetched.items():
            kept = archived.setdefault(tp.partition, [])
            for record in records:
                try:
                    event = codec.decode(record.value)
                except Exception as exc:
                    await self._dead_letter(tp, record, f"undecodable: {exc}", should_stop)
                    continue
                events.append(event)
                sources.append(record)
                user = event.get("user_id")
                kept.append((record.offset, record.key or b"", record.value, user if isinstance(user, str) else None))
        rejected: dict[int, tuple[dict, str]] = {}
        await self._apply(events, rejected, should_stop)
        if rejected:
            at = {id(event): n for n, event in enumerate(events)}
            for event, reason in rejected.values():
                record = sources[at[id(event)]]
                self.stats.unapplied += 1
                await self._dead_letter(
                    TopicPartition(record.topic, record.partition), record, f"not applied: {reason}", should_stop
                )
        async with self._sealing:
            if epoch is None or epoch == self.epoch:  # else the log was reset while the batch was applied
                if self.writer is not None:
                    for tp, records in fetched.items():
                        if records:  # the fetch's whole range, dead letters included: segments tile the log
                            self.writer.add(
                                tp.partition, archived[tp.partition], records[0].offset, records[-1].offset + 1
                            )
                for tp, records in fetched.items():
                    self.applied[tp] = records[-1].offset + 1
        if self.writer is not None:
            self.stats.archive_pending = self.writer.pending()
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

    async def _dead_letter(
        self, tp: TopicPartition, record, reason: str, should_stop: Callable[[], bool] = lambda: False
    ) -> None:
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
                await self.dead_letter.send_and_wait(
                    self.settings.rejected_topic, codec.encode(payload), key=record.key
                )
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
            self.seen_end[tp] = max(self.seen_end.get(tp, 0), high)
            try:
                position = await asyncio.wait_for(consumer.position(tp), 1.0)
            except Exception:
                continue
            lag += max(0, high - position)
        self.stats.lag = lag
        self.stats.partitions = sorted(partitions)


def _partitions(exc: Exception) -> list[TopicPartition]:
    found = exc.args[0] if exc.args else ()
    if isinstance(found, TopicPartition):
        return [found]
    return list(found) if isinstance(found, (dict, list, set, tuple)) else []


def _describe(exc: Exception) -> str:
    found = exc.args[0] if exc.args else {}
    if isinstance(found, dict):
        return ", ".join(f"{tp.topic}[{tp.partition}]@{offset}" for tp, offset in found.items())
    return str(found)


@dataclass
class WorkerParts:
    """What the worker's stream service runs, built by the composition root."""

    handlers: list[Handler]
    dead_letter: AIOKafkaProducer
    heartbeat: Callable[[StreamStats, asyncio.Event], "Heartbeat"]
    background: list[BackgroundTask]
    close: Callable[[], Awaitable[None]]
    archive: Archive | None = None
    identity: LogIdentity | None = None


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
