"""The publisher's two ways of sending, against a real broker: event by event (a small request's
share of a partition) and as record batches (a large one's, RECORD_BATCH_MIN events on).

Each event must land on the partition Kafka's default partitioner gives its key (so any
other sender of a visitor's events agrees), in the order it was accepted, and the
offsets the publisher records for the spool must be the true last offsets, also when
a partition's events fill more than one record batch."""

from __future__ import annotations

from aiokafka.partitioner import DefaultPartitioner

from engine.ingest.collector import Batch
from engine.ingest.publisher import RECORD_BATCH_MIN, Publisher
from engine.ingest.spool import Spool
from engine.stream import codec, kafka
from engine.stream.logid import ensure_log
from tests.helpers import read_topic


def batch(visitors: int, per_visitor: int, start: int = 0) -> Batch:
    events = [
        {"visitor_id": f"v{v}", "event_id": f"e{start + n}-{v}", "type": "page_view", "props": {"n": start + n}}
        for n in range(per_visitor)
        for v in range(visitors)
    ]
    return Batch(accepted=events, encoded=[codec.encode(e) for e in events])


async def test_events_land_on_the_default_partition_in_order_with_true_offsets(settings_for, tmp_path):
    settings = settings_for()
    log_id = await ensure_log(settings)
    producer = kafka.producer(settings, max_batch_size=600)  # a few events per record batch: batches split
    await producer.start()
    spool = Spool(tmp_path)
    spool.open()
    try:
        publisher = Publisher(producer, settings.topic, settings.rejected_topic, spool=spool)
        publisher.log_id = log_id
        await publisher.publish(batch(visitors=30, per_visitor=4))  # under RECORD_BATCH_MIN per partition
        await publisher.publish(batch(visitors=30, per_visitor=3, start=4))
        await publisher.publish(batch(visitors=30, per_visitor=20, start=7))  # record batches, split when full
        records = await read_topic(settings, settings.topic, 30 * 27)
        assert len(records) == 30 * 27

        partitions = sorted(await producer.partitions_for(settings.topic))
        assert len(partitions) > 1
        assert 30 * 4 / len(partitions) < RECORD_BATCH_MIN < 30 * 20 / len(partitions)  # both ways are taken
        ends: dict[int, int] = {}
        order: dict[str, list[int]] = {}
        for record in records:
            assert record.partition == DefaultPartitioner()(record.key, partitions, partitions)
            event = codec.decode(record.value)
            assert event["visitor_id"].encode() == record.key
            order.setdefault(event["visitor_id"], []).append((record.partition, record.offset, event["props"]["n"]))
            ends[record.partition] = max(ends.get(record.partition, -1), record.offset)
        for seen in order.values():
            assert [n for _, _, n in sorted(seen)] == list(range(27))  # a visitor's events in their order

        assert publisher.sent == ends
        spool.rotate()
        spooled: dict[int, int] = {}
        for spool_file in spool.files():
            for partition, offset in spool_file.ends[log_id].items():
                spooled[partition] = max(spooled.get(partition, -1), offset)
        assert spooled == ends
    finally:
        spool.close()
        await producer.stop()
