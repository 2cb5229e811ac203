"""Backfill against the real Redis: a new, edited or removed definition over the stored profiles."""

import uuid

import pytest

from engine.profiles.backfill import SegmentBackfill
from engine.profiles.derived import SegmentEvaluator
from engine.profiles.model import DAY_MS
from engine.profiles.people import People
from engine.profiles.segments_index import SegmentIndex
from engine.profiles.store import ProfileStore
from engine.profiles.value_store import ValueStore
from engine.rules.ruleset import build_ruleset
from segment_inputs import NOW, Clock, Rules, views


def ruleset(text: bytes):
    rs = build_ruleset([("s.yaml", text)], half_life_days=14.0)
    assert not rs.errors, rs.problems
    return rs


THREE = b"segments:\n  - name: shoes\n    when: {history: {event: product_view, category: shoes, min: 3, days: 7}}\n"
TWO = b"segments:\n  - name: shoes\n    when: {history: {event: product_view, category: shoes, min: 2, days: 7}}\n"


@pytest.fixture
async def parts(redis_client):
    prefix = f"t{uuid.uuid4().hex[:8]}"
    store = ProfileStore(redis_client, prefix)
    index = SegmentIndex(redis_client, prefix)
    rules = Rules(build_ruleset([], half_life_days=14.0))
    evaluator = SegmentEvaluator(
        People(redis_client, store), ValueStore(redis_client, store, 14.0), index, rules, 14.0, clock=Clock(NOW)
    )
    yield store, index, rules, SegmentBackfill(evaluator, chunk=7)
    keys = [k async for k in redis_client.scan_iter(match=f"{prefix}:*")]
    if keys:
        await redis_client.delete(*keys)


async def test_new_edited_and_removed_definitions_are_backfilled_from_the_profiles(parts):
    store, index, rules, backfill = parts
    three = [str(uuid.uuid4()) for _ in range(12)]
    two = [str(uuid.uuid4()) for _ in range(9)]
    for vid in three:
        await store.apply(views(vid, "shoes", [0, 1, 2]))
    for vid in two:
        await store.apply(views(vid, "shoes", [0, 1]))
    assert await backfill.run_once() == 0  # no segments yet

    rules.current = ruleset(THREE)
    assert await backfill.run_once() == 21
    assert (await index.sizes(["shoes"]))["shoes"] == 12
    assert await index.redis.xlen(index.outbox_key) == 0  # a rebuild records no changes
    progress = await backfill.progress()
    assert progress["done"] == progress["total"] == "21" and float(progress["finished"]) > 0
    assert await index.redis.zscore(index.due_key, three[0]) == (NOW // DAY_MS - 2 + 7) * DAY_MS
    assert await backfill.run_once() == 0  # built with this definition already

    rules.current = ruleset(TWO)  # edited: the same name, a lower bar
    assert await backfill.run_once() == 21
    assert (await index.sizes(["shoes"]))["shoes"] == 21

    rules.current = ruleset(b"segments: []\n")
    await backfill.run_once()
    assert await index.redis.exists(index.key("shoes")) == 0
