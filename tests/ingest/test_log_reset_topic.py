"""On a memory-only broker a reset log gets a new events topic, once, however many collectors notice (real broker).

A restarted Tansu keeps the batches it took for the topic before the reset was noticed and
numbers new ones among them, so later batches can be acknowledged and never read: the
collector deletes the topic and starts a log marked fresh; a second collector that finds a
fresh log joins it instead of deleting the topic again."""

from __future__ import annotations

from aiokafka import TopicPartition

from engine.ingest.publisher import LogWatch, Publisher
from engine.stream import kafka
from engine.stream.consumer import kafka_consumer
from engine.stream.logid import LogIdentity, ensure_log, is_fresh

from test_publisher_labels import batch


async def records_on(settings) -> int:
    consumer = kafka_consumer(settings, group_id=None)
    await consumer.start()
    try:
        parts = [TopicPartition(settings.topic, p) for p in sorted(consumer.partitions_for_topic(settings.topic))]
        return sum((await kafka.end_offsets(consumer, parts)).values())
    finally:
        await consumer.stop()


async def collector(settings, log_id: str):
    producer = kafka.producer(settings)
    await producer.start()
    publisher = Publisher(producer, settings.topic, settings.rejected_topic)
    publisher.log_id = log_id
    identity = LogIdentity(settings)
    await identity.start()
    watch = LogWatch(
        publisher,
        identity,
        admin_delete=lambda topic: kafka.delete_topic(settings, topic),
        memory_only=True,
    )
    return publisher, watch


async def test_a_reset_replaces_the_topic_once_and_a_second_collector_joins_the_fresh_log(settings_for):
    settings = settings_for()
    old = await ensure_log(settings)
    first, first_watch = await collector(settings, old)
    second, second_watch = await collector(settings, old)
    try:
        await first.publish(batch(30))  # what the broker took before the reset was noticed
        assert await records_on(settings) == 30
        await first_watch._reset("the broker holds no log id")
        assert is_fresh(first.log_id) and first.log_id != old
        assert await records_on(settings) == 0  # a new topic: nothing of before can hide what comes
        await first.publish(batch(12))

        await second_watch._reset(f"the broker holds log {first.log_id}")
        assert second.log_id == first.log_id  # joined, not deleted again
        assert await records_on(settings) == 12
    finally:
        for publisher, watch in ((first, first_watch), (second, second_watch)):
            await watch.identity.stop()
            await publisher.producer.stop()
