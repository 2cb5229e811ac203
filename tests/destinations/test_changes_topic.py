"""The changes topic: every outbox record also on Kafka, keyed by person, in order, once per entry id
(real Redis, a real broker; no webhook destination declared)."""

import asyncio
import json
import uuid
from dataclasses import replace

import pytest
from aiokafka import AIOKafkaConsumer
from helpers import wait_until

from engine.destinations.delivery import Delivery
from engine.destinations.topic import ChangesTopic
from engine.profiles.people import People
from engine.profiles.segments_index import SegmentIndex
from engine.profiles.store import ProfileStore
from engine.rules.ruleset import build_ruleset

AT = 1_795_400_000_000


class Rules:
    def __init__(self, rs):
        self.current = rs


def no_destinations():
    rs = build_ruleset([("s.yaml", b"segments:\n  - name: shoes\n    when: always\n")], half_life_days=14.0)
    assert not rs.errors, rs.problems
    return Rules(rs)


@pytest.fixture
async def parts(redis_client, settings_for):
    settings = settings_for()
    settings = replace(settings, segment_changes_topic=f"{settings.topic}.changes")
    prefix = settings.redis_prefix
    store = ProfileStore(redis_client, prefix)
    index = SegmentIndex(redis_client, prefix)
    people = People(redis_client, store)
    people.erasure_hooks.append(index.forget)
    topic = ChangesTopic(settings, settings.segment_changes_topic)
    delivery = Delivery(redis_client, prefix, no_destinations(), people, block_ms=100, retry_idle_s=0.3, topic=topic)
    await delivery.ensure_groups()
    stop = asyncio.Event()
    task = asyncio.create_task(delivery.run(stop.is_set))
    consumer = AIOKafkaConsumer(
        settings.segment_changes_topic,
        bootstrap_servers=settings.kafka,
        auto_offset_reset="earliest",
        group_id=f"reader-{uuid.uuid4().hex[:6]}",
    )
    yield index, people, delivery, consumer
    stop.set()
    await task
    await consumer.stop()
    keys = [k async for k in redis_client.scan_iter(match=f"{prefix}:*")]
    if keys:
        await redis_client.delete(*keys)


async def read(consumer, records, until):
    async def enough():
        for batch in (await consumer.getmany(timeout_ms=200)).values():
            records.extend((r.key.decode(), json.loads(r.value)) for r in batch)
        return until(records)

    await wait_until(enough, 30, message="records on the changes topic")


async def test_every_change_is_on_the_topic_keyed_by_person_in_order_and_erasure_leaves_the_outbox(parts):
    index, people, delivery, consumer = parts
    ada, bob = "ada", "bob"
    await index.update({ada: {"shoes": 2.0}, bob: {"shoes": 1.0}}, ["shoes"], at=AT)
    await index.update({ada: {}}, ["shoes"], at=AT + 1)  # ada leaves
    await consumer.start()
    records = []
    await read(consumer, records, lambda rs: len(rs) >= 3)
    assert all(key == doc["person"] for key, doc in records)
    assert [(d["person"], d["change"]) for _, d in records if d["person"] == ada] == [(ada, "entered"), (ada, "exited")]
    assert [(d["person"], d["change"], d["score"]) for _, d in records if d["person"] == bob] == [(bob, "entered", 1.0)]
    assert len({d["id"] for _, d in records}) == len(records)  # one delivery id per outbox entry
    assert all("traits" not in d for _, d in records)

    await index.forget(bob, [{"id": bob}])  # erasure: bob leaves "shoes", and the topic is told
    await read(consumer, records, lambda rs: any(d.get("reason") == "erased" for _, d in rs))
    told = [d for _, d in records if d.get("reason") == "erased"]
    assert [(d["person"], d["segment"], d["change"]) for d in told] == [(bob, "shoes", "exited")]

    async def nothing_of_bob_left():
        return not [f for _, f in await index.redis.xrange(index.outbox_key) if f.get(b"person") == bob.encode()]

    await wait_until(nothing_of_bob_left, 10, message="the delivered notice gone from the outbox")
    assert (await delivery.pending())[delivery.topic.name] == 0
