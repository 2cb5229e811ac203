"""Puts accepted events on Kafka, waits for the broker's acknowledgement, spools them.

`Publisher.publish` answers only once the broker has every event and, with a spool
(engine.ingest.spool), once the batch is fsynced there too. `LogWatch` runs beside
it: it notices a broker whose log is not the one the collector was writing to (a
new log id, a vanished topic), recreates the topics, and sends again from the spool
every batch the archive does not hold; it removes from the spool what the archive
holds. With `rotate_events` it also bounds an embedded broker's memory: past that
many events it deletes the events topic (Tansu 0.6 has no retention), which the
spool and the archive make a lossless reset.
"""

from __future__ import annotations

import asyncio
import logging
import time
from contextlib import asynccontextmanager
from functools import lru_cache

from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import murmur2

from engine.errors import Unavailable
from engine.ingest.collector import Batch
from engine.ingest.spool import Spool, SpoolFile
from engine.stream import codec
from engine.stream.logid import is_fresh
from engine.ingest.trust import scrubbed

log = logging.getLogger("engine.ingest")

RAW_KEPT = 2048
RECORD_BATCH_MIN = 64  # a partition's share of a request from this many events on goes as one record batch


class Publisher:
    def __init__(
        self,
        producer: AIOKafkaProducer | None,
        topic: str,
        rejected_topic: str,
        ack_timeout_s: float = 10.0,
        spool: Spool | None = None,
    ) -> None:
        self.producer = producer
        self.topic = topic
        self.rejected_topic = rejected_topic
        self.ack_timeout_s = ack_timeout_s
        self.spool = spool
        self.log_id: str | None = None  # the log the producer writes to (engine.stream.logid)
        self.sent: dict[int, int] = {}  # partition -> highest offset acknowledged in that log
        self.fresh = 0  # events published to that log, not counting ones sent again
        self._open = asyncio.Event()  # cleared while the log is switched (see `held`)
        self._open.set()
        self._in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()

    async def publish(self, batch: Batch) -> None:
        """Returns once the broker has every event of the batch (and the spool, when there is one).

        Events are keyed by visitor_id so one visitor's events stay in order on
        one partition. A failure part way may leave some events on the topic:
        the tracker resends the batch with the same event_ids, and the worker
        applies each event_id once.
        """
        if self.producer is None:
            raise Unavailable("the event broker is not connected yet, retry later")
        await self._open.wait()
        self._in_flight += 1
        self._idle.clear()
        try:
            await self._publish(batch)
        finally:
            self._in_flight -= 1
            if not self._in_flight:
                self._idle.set()

    @asynccontextmanager
    async def held(self, timeout_s: float):
        """New batches wait, and the ones under way finish (up to `timeout_s`), while the log is switched:
        every batch is then spooled under the log it was sent to, and none is sent again for want of a label."""
        self._open.clear()
        try:
            try:
                await asyncio.wait_for(self._idle.wait(), timeout_s)
            except asyncio.TimeoutError:
                log.info("switching the event log with %d batches still under way", self._in_flight)
            yield
        finally:
            self._open.set()

    async def _publish(self, batch: Batch) -> None:
        label = self.log_id  # the log the batch is sent to, as far as the collector knows when it sends
        keys = [event["visitor_id"].encode() for event in batch.accepted]
        pairs = list(zip(keys, batch.encoded))
        try:
            sends = await self._send_keyed(pairs)
            rejected = []
            for raw, rejection in zip(batch.rejected_raw, batch.rejected):
                payload = {
                    "reason": rejection["error"],
                    "raw": _truncated(scrubbed(raw)),
                    "received_at": int(time.time() * 1000),
                }
                try:
                    encoded = codec.encode(payload)
                except (OverflowError, ValueError, TypeError):
                    encoded = codec.encode(dict(payload, raw=repr(raw)[:RAW_KEPT]))
                rejected.append(await self.producer.send(self.rejected_topic, encoded))
            ends = await asyncio.wait_for(self._acknowledged(sends, rejected), self.ack_timeout_s)
        except Exception as exc:
            log.warning("broker did not acknowledge %d events: %r", len(batch.accepted), exc)
            raise Unavailable("the event broker is unavailable, retry later") from None
        if keys:
            if label == self.log_id:
                self.fresh += len(keys)
            await self._spool(pairs, ends, label)

    async def send_raw(self, pairs: list[tuple[bytes, bytes]]) -> None:
        """Sends (key, value) events as they are, e.g. again from the spool; spools them under the current log."""
        label = self.log_id
        sends = await self._send_keyed(pairs)
        ends = await asyncio.wait_for(self._acknowledged(sends, []), max(self.ack_timeout_s, 30.0))
        await self._spool(pairs, ends, label)

    async def _send_keyed(self, pairs: list[tuple[bytes, bytes]]) -> list[tuple[int, int, asyncio.Future]]:
        """Queues the events, in their order: (partition, records, future of the first one's offset) per send.

        The partition is the one the producer's default partitioner would give the key (Kafka's
        murmur2, so every sender of a visitor's events, here or elsewhere, picks the same),
        computed once per visitor. A partition's share of a large request (a back end's batch)
        goes as one record batch with one future: a future, a coroutine and a hash per event
        were a third of the collector's time. Smaller shares go event by event through the
        producer's accumulator, where concurrent requests share record batches: a record batch
        per small request waits for the one before it on its partition to be sent, and many
        browsers' requests at once would queue a broker round trip each.
        """
        if not pairs:
            return []
        partitions = sorted(await self.producer.partitions_for(self.topic))
        count = len(partitions)
        grouped: dict[int, list[tuple[bytes, bytes]]] = {}
        for key, value in pairs:
            grouped.setdefault(partitions[_partition_index(key, count)], []).append((key, value))
        producer, topic = self.producer, self.topic
        sends = []
        for partition, records in grouped.items():
            if len(records) < RECORD_BATCH_MIN:
                for key, value in records:
                    sends.append((partition, 1, await producer.send(topic, value, key=key, partition=partition)))
                continue
            batch, records_in = producer.create_batch(), 0
            for key, value in records:
                if batch.append(key=key, value=value, timestamp=None) is None:  # full: send it, start another
                    sends.append((partition, records_in, await producer.send_batch(batch, topic, partition=partition)))
                    batch, records_in = producer.create_batch(), 0
                    batch.append(key=key, value=value, timestamp=None)
                records_in += 1
            sends.append((partition, records_in, await producer.send_batch(batch, topic, partition=partition)))
        return sends

    @staticmethod
    async def _acknowledged(sends: list[tuple[int, int, asyncio.Future]], others: list) -> dict[int, int]:
        """Waits for every send; answers the highest offset acknowledged per partition of the keyed ones."""
        acks = await asyncio.gather(*(future for _, _, future in sends), *others)
        ends: dict[int, int] = {}
        for (partition, records, _), ack in zip(sends, acks):
            last = ack.offset + records - 1
            if last > ends.get(partition, -1):
                ends[partition] = last
        return ends

    async def _spool(self, pairs: list[tuple[bytes, bytes]], ends: dict[int, int], label: str | None) -> None:
        """Spools the batch under `label`, the log id current when it was sent, not when its acknowledgement
        came: a batch under way while the log was found reset went to the old log (or to a broker that had
        just lost it), and labelled with the new one it would seem covered by the new log's small offsets."""
        if label == self.log_id:
            for partition, offset in ends.items():
                self.sent[partition] = max(self.sent.get(partition, -1), offset)
        if self.spool is None:
            return
        try:
            await self.spool.append(label or "unknown", ends, pairs)
        except OSError as exc:
            log.error("could not spool %d events: %r", len(pairs), exc)
            raise Unavailable("the collector cannot store events durably, retry later") from None


@lru_cache(maxsize=65536)
def _partition_index(key: bytes, count: int) -> int:
    """Kafka's default partitioner (murmur2 of the key), remembered: one visitor's events share a key."""
    return (murmur2(key) & 0x7FFFFFFF) % count


def _truncated(raw) -> object:
    """Rejected input is kept for debugging, but bounded."""
    text = repr(raw)
    return raw if len(text) <= RAW_KEPT else text[:RAW_KEPT]


class LogWatch:
    """The collector's side of a reset broker: detect, recreate, re-send; and confirm spooled batches.

    A spooled batch is confirmed when the archive covers, in the log the batch was
    sent to, every offset up to the batch's own on every partition it touched, without
    a hole (the worker archives before it commits, and labels segments with a log id it
    has just read again). It leaves the spool `grace_s` after that, time for a Redis
    that fsyncs its append-only file every second to have the batch's effects on disk.

    A batch is labelled with the log the collector believed current; a broker that
    lost its log acknowledges sends before anyone notices, at small offsets the old
    log's archive seems to cover. So a file's label is trusted only once a check that
    began after the file's last write found that log still current; a file never so
    confirmed (written across a reset or a rotation, or adopted from a dead
    collector) is sent again instead.

    With `memory_only` (the embedded Tansu) a reset also replaces the events topic. A
    restarted memory broker keeps the batches it took for the topic before anyone
    noticed, even when the topic is created again, and numbers new batches from zero
    among them: a later batch at an offset an earlier one spans is acknowledged and
    then never read (measured: 125 and 325 of about 4,000 acknowledged events lost
    after a restart). So the collector holds publishing, deletes the topic and starts
    a log marked fresh (`engine.stream.logid.FRESH`) on a new one; a collector that
    finds a fresh log already there joins it, so several collectors delete it once.
    """

    def __init__(
        self,
        publisher: Publisher,
        identity,
        archive=None,
        *,
        grace_s: float = 5.0,
        rotate_events: int = 0,
        admin_delete=None,
        memory_only: bool = False,
        drain_timeout_s: float = 30.0,
        clock=time.monotonic,
    ) -> None:
        self.publisher = publisher
        self.identity = identity
        self.archive = archive
        self.grace_s = grace_s
        self.rotate_events = rotate_events
        self.admin_delete = admin_delete  # async (topic) -> None, deletes the events topic
        self.memory_only = memory_only  # the broker keeps its log in memory only: see _reset
        self.clock = clock
        self.confirmed_at: dict[str, float] = {}
        self.good_at: dict[str, float] = {}  # log id -> when the last check that found it current began
        self.resets = 0
        self.rotations = 0
        self.resent = 0
        self.last_reset: dict | None = None
        self.gaps: set[tuple[str, int, int, int]] = set()  # (log, partition, first, last) the archive lacks
        self.drain_timeout_s = drain_timeout_s
        self.draining: tuple[float, dict[int, int]] | None = None  # since when, the offsets to see archived

    def state(self) -> dict:
        spool = self.publisher.spool
        return {
            "log_id": self.publisher.log_id,
            "resets": self.resets,
            "rotations": self.rotations,
            "last_reset": self.last_reset,
            "resent_events": self.resent,
            "archive_gaps": len(self.gaps),
            "spool": None
            if spool is None
            else {
                "events": spool.events(),
                "bytes": spool.size(),
                "files": len(spool.files()),
                "dropped_events": spool.dropped,
            },
        }

    async def run(self, interval_s: float) -> None:
        while True:
            try:
                await self.check()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.info("log check failed (broker unreachable?): %r", exc)
            await asyncio.sleep(interval_s)

    async def check(self) -> None:
        publisher = self.publisher
        began = self.clock()
        current = await self.identity.read()
        if current is not None and current == publisher.log_id:
            self.good_at[current] = began
        if current != publisher.log_id:
            await self._reset("no log id on the broker" if current is None else f"the broker holds log {current}")
        elif (
            self.rotate_events
            and publisher.fresh >= self.rotate_events
            and publisher.spool is not None
            and self.admin_delete is not None
        ):
            await self._drain_then_rotate()
        if publisher.spool is not None:
            await self._settle()

    async def _drain_then_rotate(self) -> None:
        """Waits until the archive holds what was acknowledged when the limit was reached, then rotates:
        what the spool sends again is then only what arrived meanwhile (about one archive segment's time)."""
        now = self.clock()
        if self.draining is None:
            self.draining = (now, dict(self.publisher.sent))
            return
        since, target = self.draining
        held = await asyncio.to_thread(self._archived, {self.publisher.log_id})
        ends = held.get(self.publisher.log_id, {})
        if all(ends.get(p, 0) > offset for p, offset in target.items()) or now - since > self.drain_timeout_s:
            self.draining = None
            await self._rotate()

    async def _reset(self, reason: str) -> None:
        publisher = self.publisher
        old = publisher.log_id
        if old is not None and self.memory_only and self.admin_delete is not None:
            async with publisher.held(publisher.ack_timeout_s):
                current = await self.identity.read()
                publisher.log_id = current if is_fresh(current) else await self._new_topic()
        else:
            publisher.log_id = await self.identity.ensure()
        publisher.sent, publisher.fresh = {}, 0
        self.draining = None
        if old is None:  # the first check after start: nothing was sent yet
            return
        self.resets += 1
        pending = publisher.spool.events() if publisher.spool is not None else 0
        self.last_reset = {
            "at": time.time(),
            "reason": reason,
            "from_log": old,
            "to_log": publisher.log_id,
            "spooled": pending,
        }
        if publisher.spool is None:
            log.error(
                "event log reset (%s): log %s -> %s; events the old log acknowledged but the workers had not "
                "applied are missing (no spool to send them again)",
                reason,
                old,
                publisher.log_id,
            )
        else:
            log.warning(
                "event log reset (%s): log %s -> %s; the spool holds %d acknowledged events, sending again "
                "those the archive lacks",
                reason,
                old,
                publisher.log_id,
                pending,
            )
            publisher.spool.rotate()

    async def _rotate(self) -> None:
        """Bounds the embedded broker's memory: a new, empty log; the spool covers what is not archived yet."""
        publisher = self.publisher
        log.info(
            "rotating the event log %s after %d events (the embedded broker keeps no retention)",
            publisher.log_id,
            sum(o + 1 for o in publisher.sent.values()),
        )
        old = publisher.log_id
        async with publisher.held(publisher.ack_timeout_s):
            publisher.spool.rotate()
            publisher.log_id = await self._new_topic()
            publisher.sent, publisher.fresh = {}, 0
        self.rotations += 1
        log.info("event log %s -> %s", old, publisher.log_id)

    async def _new_topic(self) -> str:
        """A new log on a new events topic (the caller holds publishing): whatever the old topic held is gone."""
        await self.admin_delete(self.publisher.topic)
        return await self.identity.ensure(fresh=True)

    async def _settle(self) -> None:
        spool = self.publisher.spool
        spool.adopt_orphans()
        if (
            spool.current is not None
            and spool.current.written
            and self.clock() - spool.current.opened >= spool.rotate_s
        ):
            spool.rotate()
        files = [f for f in spool.files() if f.fd is None or f.synced >= f.written]
        if not files:
            return
        logs = {log_id for f in files for log_id in f.ends}
        archived = await asyncio.to_thread(self._archived, logs)
        now = self.clock()
        for spool_file in files:
            trusted = all(spool_file.last_write < self.good_at.get(log_id, float("-inf")) for log_id in spool_file.ends)
            if trusted and _held(spool_file, archived):
                since = self.confirmed_at.setdefault(spool_file.path.name, now)
                if now - since >= self.grace_s:
                    spool.remove(spool_file)
                    self.confirmed_at.pop(spool_file.path.name, None)
            elif spool_file.last_write == float("inf") or any(
                log_id != self.publisher.log_id for log_id in spool_file.ends
            ):
                await self._resend(spool_file)

    def _archived(self, logs: set[str]) -> dict[str, dict[int, int]]:
        """Per log, where the archive's unbroken coverage ends; a hole in it is reported once, loudly."""
        if self.archive is None:
            return {}
        ends = {}
        for log_id in logs:
            coverage = self.archive.coverage(log_id)
            ends[log_id] = coverage.ends
            for gap in coverage.gaps:
                if (log_id, *gap) not in self.gaps:
                    self.gaps.add((log_id, *gap))
                    log.error(
                        "the archive of log %s lacks offsets %d-%d of partition %d: spooled batches past them "
                        "stay in the spool (sent again when the log changes), and a replay reads them from the broker",
                        log_id,
                        gap[1],
                        gap[2],
                        gap[0],
                    )
        return ends

    async def _resend(self, spool_file: SpoolFile) -> None:
        spool = self.publisher.spool
        pairs = [(bytes(k), bytes(v)) for record in spool.read(spool_file) for k, v in record["events"]]
        for start in range(0, len(pairs), 5000):
            await self.publisher.send_raw(pairs[start : start + 5000])
        spool.remove(spool_file)
        self.resent += len(pairs)
        log.warning(
            "sent %d spooled events again to log %s (%s)", len(pairs), self.publisher.log_id, spool_file.path.name
        )


def _held(spool_file: SpoolFile, archived: dict[str, dict[int, int]]) -> bool:
    for log_id, ends in spool_file.ends.items():
        held = archived.get(log_id, {})
        if any(held.get(partition, 0) <= offset for partition, offset in ends.items()):
            return False
    return True
