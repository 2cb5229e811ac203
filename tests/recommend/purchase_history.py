"""Purchase histories for the ALS tests and the `clickstream train` command: hidden groups, on the topic."""

from __future__ import annotations

import random
from functools import partial

import events as builders

from engine.stream import codec, kafka

T0 = 1_795_400_000_000

# An order as the ALS tests send it: at T0, with the order's id for its event id.
purchase = partial(builders.purchase, ts=T0, event_id="p-{order_id}")


def grouped_rows(groups=4, per_group=10, persons=400, seed=1):
    """Each person buys within one hidden group of items: the model should find the groups."""
    rng = random.Random(seed)
    rows = []
    for p in range(persons):
        g = p % groups
        for item in rng.sample(range(per_group), 4):
            rows.append((f"p{p}", f"g{g}-i{item}", 1.0))
    return rows


async def produce(settings, events):
    """Send the events to the settings' topic, keyed by visitor as the collector does."""
    await kafka.ensure_topics(settings)
    producer = kafka.producer(settings)
    await producer.start()
    try:
        for event in events:
            await producer.send(settings.topic, codec.encode(event), key=event["visitor_id"].encode())
        await producer.flush()
    finally:
        await producer.stop()
