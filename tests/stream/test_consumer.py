"""The batch consumer's failure policy: what it retries, what it sets aside (pure: handlers are plain functions)."""

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError, ResponseError

from engine.errors import Unavailable
from engine.profiles.store import BatchResult
from engine.settings import Settings
from engine.stream.consumer import BatchConsumer, is_outage


def consumer(*handlers) -> BatchConsumer:
    return BatchConsumer(Settings(), list(handlers))


def events(n):
    return [{"event_id": str(i), "n": i} for i in range(n)]


async def test_an_event_that_makes_a_handler_raise_is_found_and_set_aside_the_rest_applied():
    applied = []

    async def handler(batch):
        if any(e["n"] == 5 for e in batch):
            raise KeyError("props")
        applied.extend(e["n"] for e in batch)

    rejected = {}
    await consumer(handler)._apply(events(12), rejected, lambda: False)
    assert sorted(applied) == [n for n in range(12) if n != 5]
    assert [(e["n"], reason) for e, reason in rejected.values()] == [(5, "KeyError: 'props'")]
    assert applied == sorted(applied)  # in order: a partition's earlier events are applied first


async def test_what_a_handler_returns_as_rejected_is_collected_once():
    async def handler(batch):
        result = BatchResult()
        result.malformed = [(e, "ts: expected integer milliseconds") for e in batch if e["n"] % 4 == 0]
        return result

    async def fragile(batch):
        if any(e["n"] == 3 for e in batch):
            raise TypeError("boom")

    rejected = {}
    await consumer(handler, fragile)._apply(events(8), rejected, lambda: False)  # the split reruns `handler`
    assert sorted(e["n"] for e, _ in rejected.values()) == [0, 3, 4]


async def test_an_outage_is_retried_never_set_aside():
    calls = []

    async def handler(batch):
        calls.append(len(batch))
        if len(calls) < 3:
            raise RedisConnectionError("Redis is away")

    rejected = {}
    worker = consumer(handler)
    await worker._apply(events(4), rejected, lambda: False)
    assert calls == [4, 4, 4] and rejected == {} and worker.stats.handler_errors == 2


@pytest.mark.parametrize(
    "exc, outage",
    [
        (RedisConnectionError(), True),
        (Unavailable("retry later"), True),
        (TimeoutError(), True),
        (ResponseError("OOM command not allowed"), True),
        (ResponseError("ERR user_script:12: attempt to index a nil value script: abc"), False),
        (KeyError("x"), False),
        (ValueError("cannot convert float NaN to integer"), False),
    ],
)
def test_outages_are_told_from_errors_the_data_causes(exc, outage):
    assert is_outage(exc) is outage


def fetched_records(n: int) -> dict:
    from aiokafka.structs import ConsumerRecord, TopicPartition

    from engine.stream import codec

    tp = TopicPartition("events", 0)
    records = []
    for offset, event in enumerate(events(n)):
        value = codec.encode(event)
        records.append(ConsumerRecord("events", 0, offset, 0, 0, b"v", value, None, 1, len(value), ()))
    return {tp: records}


@pytest.mark.parametrize("reset_meanwhile", [False, True])
async def test_a_batch_applied_across_a_reset_of_the_log_is_neither_archived_nor_committed(tmp_path, reset_meanwhile):
    """A rebalance can seal (and find the log reset) while a batch is in the handlers: that batch's offsets
    belong to the old log, and archived or committed under the new one they would cover records never read."""
    from engine.stream.archive import Archive, open_store

    worker = BatchConsumer(Settings(), [], archive=Archive(open_store(tmp_path), "events"))
    epoch = worker.epoch

    async def handler(batch):
        if reset_meanwhile:
            worker._forget_old_log()  # what `_reset` does first, here from "another task"

    worker.handlers = [handler]
    await worker._handle(fetched_records(5), lambda: False, epoch)
    assert worker.writer.pending() == (0 if reset_meanwhile else 5)
    assert worker.applied == ({} if reset_meanwhile else {tp: 5 for tp in fetched_records(1)})
    assert (worker.epoch == epoch) is (not reset_meanwhile)
