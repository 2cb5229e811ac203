"""End to end: orders through the collector and the worker, the worker's job chooses the prior strength m,
and the API's also-bought ranks with the stored m (shrink.rank on the counts in Redis), not the default."""

from __future__ import annotations

import random

import events as builders
from helpers import Engine, started, unique, visitor, wait_until
from redis.asyncio import Redis

from engine.recommend import prior_job, shrink
from engine.recommend.cooccur import order_items
from engine.recommend.store import CooccurrenceStore

AUTH = {"Authorization": "Bearer test-key"}
T0 = 1_795_400_000_000


def skewed_orders(rng: random.Random, n: int, n_items: int = 40) -> list[list[str]]:
    """Every order drawn from one skewed popularity: pairs are noise, so the job should choose a large m."""
    items = [f"p{i:02d}" for i in range(n_items)]
    weights = [1.0 / (i + 1) for i in range(n_items)]
    return [list(dict.fromkeys(rng.choices(items, weights, k=rng.randint(2, 4)))) for _ in range(n)]


async def test_also_bought_ranks_with_the_m_the_worker_chose(settings_for, tmp_session):
    settings = settings_for(recommend_prior_minutes=0.05)  # chosen again every 3 s
    engine = await started(Engine(settings, tmp_session / unique("prior")))
    redis = Redis.from_url(settings.redis)
    store = CooccurrenceStore(redis, settings.redis_prefix)
    try:
        orders = skewed_orders(random.Random(11), 400)
        events = [
            builders.purchase(
                visitor(f"buyer-{n % 50}"), f"o{n}", items, T0 + n, price=2.0, category="c", event_id=None
            )
            for n, items in enumerate(orders)
        ]
        async with engine.client() as client:  # a back end's orders: trusted, many visitors in one request
            response = await client.post("/v1/events", json={"events": events}, headers=AUTH)
        assert response.status_code == 202, response.text

        queries = sum(len(order_items(o)) * (len(order_items(o)) - 1) for o in orders)

        async def chosen_on_every_order():
            stored = await prior_job.info(redis, store.base)
            return stored if stored and stored["queries"] == queries else None

        stored = await wait_until(chosen_on_every_order, timeout=60, message="the prior chosen on all 400 orders")
        assert stored["m"] != shrink.PRIOR_STRENGTH  # popularity is the truth here: a larger m ranks better
        assert stored["hit_rates"][stored["m"]] == max(stored["hit_rates"].values())

        counts, n_orders = await store.counts(), (await store.totals())["orders"]
        popular = [b for b, _ in await store.popular(prior_job.POPULAR)]
        assert n_orders == len(orders)

        async def ranked(seed, m):
            pairs = await store.neighbours(seed)
            return shrink.rank(pairs, counts[seed], counts, n_orders, m, {seed}, popular)[:10]

        seeds = [
            s
            for s in sorted(counts)
            if [b for b, _ in await ranked(s, stored["m"])] != [b for b, _ in await ranked(s, 16.0)]
        ]
        assert seeds, "no item whose list the chosen m changes"
        seed = seeds[0]
        expected = await ranked(seed, stored["m"])

        async def served():
            async with engine.client() as client:
                response = await client.get(
                    "/v1/recommendations/also-bought",
                    params={"item": seed, "k": 10, "max_per_category": 0},
                    headers=AUTH,
                )
            assert response.status_code == 200, response.text
            items = response.json()["items"]
            return items if [i["id"] for i in items] == [b for b, _ in expected] else None

        items = await wait_until(served, timeout=20, message="also-bought ranked with the stored m")
        assert [i["score"] for i in items] == [round(s, 6) for _, s in expected]  # the API rounds to 6 digits
    finally:
        await redis.aclose()
        engine.stop()
