"""The archive's segments are written beside the fetch loop, against the real broker: batches go on being
applied while a segment is written, and no offset is committed before the archive holds its records."""

from __future__ import annotations

import asyncio
import threading

from aiokafka import TopicPartition

from engine.stream import codec, kafka
from engine.stream.archive import Archive, LocalStore
from engine.stream.consumer import BatchConsumer, kafka_consumer


class HeldStore(LocalStore):
    """A folder whose segment writes wait until `release` is set (a slow disk, held at will)."""

    def __init__(self, root) -> None:
        super().__init__(root)
        self.release = threading.Event()
        self.writing = threading.Event()

    def put(self, name: str, data: bytes) -> None:
        if name.endswith(".seg"):
            self.writing.set()
            assert self.release.wait(30), "the test never released the write"
        super().put(name, data)


async def until(check, seconds: float = 20.0) -> None:
    """Waits for `check()` (a bool, or an awaitable of one) to hold."""
    deadline = asyncio.get_running_loop().time() + seconds
    while not await _value(check()):
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def test_batches_apply_while_a_segment_is_written_and_commits_follow_the_archive(settings_for, tmp_path):
    settings = settings_for(partitions=1, archive_segment_s=0.2, batch_wait_ms=50)
    await kafka.ensure_topics(settings)
    store = HeldStore(tmp_path / "archive")
    applied: list[str] = []

    async def handler(events):
        applied.extend(e["event_id"] for e in events)

    worker = BatchConsumer(settings, [handler], archive=Archive(store, settings.topic))
    producer = kafka.producer(settings)
    await producer.start()
    stopping = False
    await worker.start()
    loop = asyncio.create_task(worker.run(lambda: stopping))
    tp = TopicPartition(settings.topic, 0)

    async def send(first: int, n: int) -> None:
        for i in range(first, first + n):
            await producer.send_and_wait(settings.topic, codec.encode({"event_id": f"e{i}"}), key=b"v")

    async def committed() -> int:
        return await worker.consumer.committed(tp) or 0

    async def committed_at_least(n: int) -> bool:
        return await committed() >= n

    try:
        await send(0, 5)
        await until(lambda: len(applied) >= 5)
        await until(store.writing.is_set)  # the first segment is being written
        await send(5, 5)
        await until(lambda: len(applied) >= 10)  # applied meanwhile: the loop did not wait
        assert await committed() == 0  # nothing is committed while its segment is not written
        store.release.set()
        await until(lambda: committed_at_least(10))
        archive = worker.writer.archive
        records = [r for segment in archive.segments(worker.log_id or "unknown") for r in archive.read(segment)]
        assert [codec.decode(r[2])["event_id"] for r in records] == [f"e{i}" for i in range(10)]
    finally:
        store.release.set()
        stopping = True
        await loop
        await worker.stop()
        await producer.stop()


async def _value(value):
    return await value if asyncio.iscoroutine(value) else value


class FailingOnceStore(LocalStore):
    """A folder whose first segment write fails (a full disk, once)."""

    failed = False

    def put(self, name: str, data: bytes) -> None:
        if name.endswith(".seg") and not self.failed:
            self.failed = True
            raise OSError(28, "No space left on device")
        super().put(name, data)


async def test_a_failed_write_stops_the_loop_and_its_records_are_sealed_at_stop(settings_for, tmp_path):
    settings = settings_for(partitions=1, archive_segment_s=0.2, batch_wait_ms=50)
    await kafka.ensure_topics(settings)
    store = FailingOnceStore(tmp_path / "archive")
    worker = BatchConsumer(settings, [lambda events: asyncio.sleep(0)], archive=Archive(store, settings.topic))
    producer = kafka.producer(settings)
    await producer.start()
    await worker.start()
    tp = TopicPartition(settings.topic, 0)
    try:
        for i in range(5):
            await producer.send_and_wait(settings.topic, codec.encode({"event_id": f"e{i}"}), key=b"v")
        loop = asyncio.create_task(worker.run(lambda: False))
        await until(lambda: loop.done())
        assert isinstance(loop.exception(), OSError)  # the worker fails, as it did when it waited for the write
        assert await worker.consumer.committed(tp) in (None, 0)
        await worker.stop()  # the records the failed write held are written and committed now
        archive = worker.writer.archive
        records = [r for segment in archive.segments(worker.log_id or "unknown") for r in archive.read(segment)]
        assert [codec.decode(r[2])["event_id"] for r in records] == [f"e{i}" for i in range(5)]
        reader = kafka_consumer(settings, group_id=settings.consumer_group)
        await reader.start()
        try:
            assert await reader.committed(tp) == 5
        finally:
            await reader.stop()
    finally:
        await producer.stop()
