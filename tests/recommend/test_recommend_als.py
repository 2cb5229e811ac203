"""ALS: the training set, structure recovered, artefacts round trip, training from the real topic."""

from __future__ import annotations

import asyncio
import random
from functools import partial

import events as builders
import numpy as np
import pytest

from engine.profiles.store import ProfileStore
from engine.recommend import als_retrain, als_store
from engine.recommend.als_model import AlsModel
from engine.recommend.als_store import ModelHolder
from engine.recommend.als_training import AlsParams, train_from_interactions
from engine.recommend.interactions import Interactions
from engine.redis_client import open_redis
from helpers import wait_until
from purchase_history import T0, grouped_rows, produce, purchase

SMALL = AlsParams(factors=16, iterations=10, regularization=1.0, num_threads=1)


# A product page seen at T0; the last part of its id counts repeat views.
view = partial(builders.product_view, ts=T0, event_id="v-{vid}-{item}-0")


def test_training_recovers_the_hidden_groups():
    model = train_from_interactions(grouped_rows(), SMALL)
    assert model.meta["persons"] == 400 and model.meta["items"] == 40 and model.factors.shape == (40, 16)
    right = 0
    for item in model.item_ids:
        scores = model.scores([item], limit=10)
        scores.pop(item, None)
        nearest = sorted(scores, key=lambda i: -scores[i])[:5]
        right += sum(n.split("-")[0] == item.split("-")[0] for n in nearest)
    assert right / (5 * len(model.item_ids)) > 0.95


def test_shuffled_groups_are_not_found():
    """The same check on rows whose items were reassigned at random: the structure is what the model finds."""
    rows = grouped_rows()
    rng = random.Random(2)
    items = [item for _, item, _ in rows]
    rng.shuffle(items)
    model = train_from_interactions([(p, i, w) for (p, _, w), i in zip(rows, items)], SMALL)
    right = 0
    for item in model.item_ids:
        scores = model.scores([item], limit=10)
        scores.pop(item, None)
        right += sum(n.split("-")[0] == item.split("-")[0] for n in sorted(scores, key=lambda i: -scores[i])[:5])
    assert right / (5 * len(model.item_ids)) < 0.6


def test_interactions_weigh_purchases_merge_users_and_respect_consent():
    history = Interactions({"purchase": 5.0, "product_view": 1.0})
    for event in [
        view("d1", "a"),
        view("d1", "a", event_id="v-d1-a-1"),
        purchase("d1", "o1", ["a", "b"]),
        purchase("d1", "o1", ["a", "b"]) | {"event_id": "retry"},  # the same order again
        {
            "event_id": "i1",
            "type": "identify",
            "visitor_id": "d1",
            "user_id": "ann",
            "ts": T0,
            "props": {},
            "verified": True,
        },
        {
            "event_id": "i2",
            "type": "identify",
            "visitor_id": "d2",
            "user_id": "ann",
            "ts": T0,
            "props": {},
            "verified": True,
        },
        view("d2", "c"),  # ann's second device
        {"event_id": "i3", "type": "identify", "visitor_id": "d5", "user_id": "bob", "ts": T0, "props": {}},
        view("d5", "y") | {"user_id": "bob"},  # an unverified login links nobody
        {"event_id": "c1", "type": "consent", "visitor_id": "d3", "ts": T0, "props": {"consent": {"analytics": False}}},
        view("d3", "secret"),
        {"event_id": "c2", "type": "consent", "visitor_id": "d3", "ts": T0, "props": {"consent": {"analytics": True}}},
        view("d3", "public"),
        view("d4", "x") | {"user_id": "guest"},  # a placeholder id links nobody
    ]:
        history.add(event)
    rows = sorted(history.rows())
    assert rows == [
        ("ann", "a", 7.0),
        ("ann", "b", 5.0),
        ("ann", "c", 1.0),
        ("d3", "public", 1.0),
        ("d4", "x", 1.0),
        ("d5", "y", 1.0),
    ]
    assert sorted(history.rows(skip={"d1"})) == [
        ("ann", "c", 1.0),
        ("d3", "public", 1.0),
        ("d4", "x", 1.0),
        ("d5", "y", 1.0),
    ]


async def test_artefacts_round_trip_through_bytes_redis_and_the_holder(redis_client, tmp_path):
    prefix = f"t{random.getrandbits(40):x}"
    try:
        first = train_from_interactions(grouped_rows(persons=40), SMALL)
        again = AlsModel.from_bytes(first.to_bytes())
        assert again.version == first.version and again.item_ids == first.item_ids
        assert np.array_equal(again.factors, first.factors) and again.factors.dtype == np.float32
        assert again.meta["params"] == SMALL.to_json() and again.meta["train_seconds"] >= 0

        holder = ModelHolder(redis_client, prefix)
        assert not await holder.refresh() and holder.current is None
        versions = []
        for n in range(3):
            model = AlsModel(f"v{n}", ["a", "b"], np.eye(2, dtype=np.float32) * (n + 1), {"trained_at": n})
            await als_store.publish(redis_client, prefix, model)
            versions.append(model.version)
            assert await holder.refresh() and holder.current.version == f"v{n}"
            assert holder.current.scores(["a"]) == pytest.approx({"a": (n + 1) ** 2, "b": 0.0})
        assert (await als_store.load_current(redis_client, prefix)).version == "v2"
        assert (await als_store.info(redis_client, prefix))["trained_at"] == 2
        assert await redis_client.exists(f"{prefix}:rec:als:v0") == 0  # older than the last KEEP
        assert await redis_client.exists(f"{prefix}:rec:als:v1", f"{prefix}:rec:als:v2") == 2
    finally:
        keys = [k async for k in redis_client.scan_iter(match=f"{prefix}:*")]
        if keys:
            await redis_client.delete(*keys)


async def test_train_reads_the_topic_skips_erased_visitors_and_publishes(settings_for, tmp_path):
    settings = settings_for()
    rows = grouped_rows(groups=2, per_group=6, persons=60)
    events = [purchase(person, f"o-{person}-{item}", [item]) for person, item, _ in rows]
    events += [view("forgotten", "only-theirs"), purchase("forgotten", "o-f", ["only-theirs", "g0-i1"])]
    await produce(settings, events)
    redis = open_redis(settings.redis)
    try:
        profiles = ProfileStore(redis, settings.redis_prefix)
        await profiles.erase("forgotten", T0)
        model = await als_retrain.train(
            settings, redis, profiles, SMALL, progress=False, out_path=tmp_path / "model.npz"
        )
        assert "only-theirs" not in model and "g0-i1" in model
        assert model.meta["erased_visitors"] == 1 and model.meta["events"] == len(events)
        assert model.meta["persons"] == 60
        assert AlsModel.from_bytes((tmp_path / "model.npz").read_bytes()).version == model.version
        holder = ModelHolder(redis, settings.redis_prefix)
        assert await holder.refresh() and holder.current.version == model.version

        # the worker's periodic task: trains when the model is older than the interval, once per interval
        stop = asyncio.Event()
        await redis.delete(f"{settings.redis_prefix}:rec:als:lock")
        await redis.set(f"{settings.redis_prefix}:rec:als:info", '{"trained_at": 0}')
        task = asyncio.create_task(
            als_retrain.retrain_periodically(
                redis,
                settings.redis_prefix,
                3600,
                stop.is_set,
                lambda: als_retrain.train(settings, redis, profiles, SMALL, progress=False),
                poll_s=0.05,
            )
        )
        newer = await wait_until(
            lambda: _newer(redis, settings.redis_prefix, model.version), timeout=60, message="a retrained model"
        )
        stop.set()
        await asyncio.wait_for(task, 5)
        assert newer != model.version
    finally:
        keys = [k async for k in redis.scan_iter(match=f"{settings.redis_prefix}:*")]
        if keys:
            await redis.delete(*keys)
        await redis.aclose()


async def _newer(redis, prefix, version):
    current = await redis.get(f"{prefix}:rec:als:current")
    return current.decode() if current and current.decode() != version else None
