"""Reading the event log from its start: the archive, then the broker. For replay, rule backtests and training.

The archive (engine.stream.archive) holds what the workers applied, log by log, and
outlives a broker restart and Kafka's retention; the broker then supplies what the
archive does not hold yet: of the current log, from where its archive ends.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from typing import AsyncIterator

from aiokafka import TopicPartition
from tqdm import tqdm

from engine.settings import Settings
from engine.stream import codec, kafka
from engine.stream.archive import open_archive
from engine.stream.consumer import kafka_consumer
from engine.stream.logid import LogIdentity

log = logging.getLogger("engine.history")


def _decoded(values) -> list[dict]:
    events = []
    for value in values:
        try:
            events.append(codec.decode(value))
        except Exception as exc:
            log.warning("skipping an undecodable archived record: %r", exc)
    return events


async def read_history(
    settings: Settings, label: str, progress: bool, batch_size: int = 10_000, before_first=None
) -> AsyncIterator[list[dict]]:
    """topic_history's batches, with a progress bar on stderr (`label`: what is reading) when `progress`."""
    with tqdm(desc=label, unit=" events", disable=not progress, file=sys.stderr) as bar:
        async for events, done, total in topic_history(settings, batch_size, before_first):
            bar.total = total
            bar.update(done - bar.n)
            yield events


async def topic_history(
    settings: Settings, batch_size: int = 10_000, before_first=None
) -> AsyncIterator[tuple[list[dict], int, int]]:
    """Yields (events, records read so far, total) up to the end offsets seen at the start.

    `before_first` (an async callable) runs once the end offsets are known, before the
    first batch: replay clears the derived state there. Undecodable records are
    skipped (the live worker sends them to the dead-letter topic). An event may come
    twice (in an old log's archive and, sent again from a spool, in a newer log): the
    stores apply each event_id once.
    """
    archive = open_archive(settings)
    identity = LogIdentity(settings)
    await identity.start()
    try:
        current = await identity.read()
    finally:
        await identity.stop()
    logs = await asyncio.to_thread(archive.logs) if archive is not None else []
    archived_total = sum([await asyncio.to_thread(archive.count, log_id) for log_id in logs])
    archived_ends = await asyncio.to_thread(archive.ends, current) if archive is not None and current in logs else {}
    for log_id in logs:
        for partition, first, last in (await asyncio.to_thread(archive.coverage, log_id)).gaps:
            log.warning(
                "the archive of log %s lacks offsets %d-%d of partition %d: %s",
                log_id,
                first,
                last,
                partition,
                "read from the broker instead"
                if log_id == current
                else "missing from this replay unless a collector's spool sent them again to a later log",
            )

    consumer = kafka_consumer(settings, group_id=None)
    await consumer.start()
    try:
        partitions = [
            TopicPartition(settings.topic, p) for p in sorted(consumer.partitions_for_topic(settings.topic) or [])
        ]
        end = await kafka.end_offsets(consumer, partitions) if partitions else {}
        start = {tp: min(archived_ends.get(tp.partition, 0), end[tp]) for tp in partitions}
        total = archived_total + sum(end[tp] - start[tp] for tp in partitions)
        if before_first is not None:
            await before_first()
        done = 0
        for log_id in logs:
            segments = archive.records(log_id)
            pending: list[dict] = []
            while True:
                chunk = await asyncio.to_thread(next, segments, None)
                if chunk is None:
                    break
                _, records = chunk
                done += len(records)
                pending += _decoded(value for _, _, value in records)
                if len(pending) >= batch_size:
                    yield pending, done, total
                    pending = []
            if pending:
                yield pending, done, total
        for tp in partitions:
            consumer.seek(tp, start[tp])
        remaining = {tp for tp in partitions if end[tp] > start[tp]}
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
