"""A batch is spooled under the log it was sent to: a real broker, the collector's publisher and spool.

When the collector finds the broker's log reset, batches already under way went to the
old log (or to a broker that had just lost it). Labelled with the new log, their small
offsets would seem covered once the new log's archive passes them, and the spool would
drop them unsent; labelled with the old one, they are sent again."""

from __future__ import annotations

import asyncio

from engine.ingest.collector import Batch
from engine.ingest.publisher import Publisher
from engine.ingest.spool import Spool
from engine.stream import codec, kafka
from engine.stream.logid import ensure_log


def batch(n: int) -> Batch:
    events = [{"visitor_id": f"v{i}", "event_id": f"e{i}", "type": "page_view"} for i in range(n)]
    return Batch(accepted=events, encoded=[codec.encode(e) for e in events])


async def test_a_batch_under_way_when_the_log_changes_keeps_the_old_label(settings_for, tmp_path):
    settings = settings_for()
    old = await ensure_log(settings)
    producer = kafka.producer(settings)
    await producer.start()
    spool = Spool(tmp_path)
    spool.open()
    try:
        publisher = Publisher(producer, settings.topic, settings.rejected_topic, spool=spool)
        publisher.log_id = old
        under_way = asyncio.create_task(publisher.publish(batch(20)))
        await asyncio.sleep(0)  # the batch is sent
        publisher.log_id = "0000000000000-new"  # the log was found reset meanwhile
        await under_way
        await publisher.publish(batch(5))  # sent after the change
        spool.rotate()
        labels = sorted(log for spool_file in spool.files() for log in spool_file.ends)
        assert labels == sorted([old, "0000000000000-new"])
        assert publisher.fresh == 5  # only what went to the current log counts toward its rotation
    finally:
        spool.close()
        await producer.stop()
