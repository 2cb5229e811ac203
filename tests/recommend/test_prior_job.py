"""The prior-strength job against the real Redis: it chooses from exactly the stored counts, and scoring reads it."""

from __future__ import annotations

import json
import random
import uuid
from functools import partial

import events as builders
import pytest
from helpers import worker_steps

from engine.recommend import prior_choice, prior_job, shrink
from engine.recommend.cooccur import CoCounts

T0 = 1_795_400_000_000
purchase = partial(builders.purchase, session_id="s", price=1.0, total=True)


def skewed_orders(rng: random.Random, n: int, n_items: int = 40) -> list[list[str]]:
    """Items drawn from one skewed popularity: the truth is popularity, so a large m should win."""
    items = [f"p{i:02d}" for i in range(n_items)]
    weights = [1.0 / (i + 1) for i in range(n_items)]
    return [list(dict.fromkeys(rng.choices(items, weights, k=rng.randint(2, 4)))) for _ in range(n)]


async def test_the_job_chooses_from_the_stored_counts_and_leaves_erased_orders_out(world):
    profiles, people, updater = world
    store = updater.store
    rng = random.Random(3)
    orders = skewed_orders(rng, 400)
    visitors = [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(40)]
    events = [purchase(visitors[n % 40], f"o{n}", items, T0 + n) for n, items in enumerate(orders)]
    await worker_steps(world, events)
    await people.erase(visitors[0])  # their orders are 'x' now, and subtracted from the counts
    kept = [items for n, items in enumerate(orders) if n % 40 != 0]

    record = await prior_job.choose_once(store)

    ref = CoCounts()
    for items in kept:
        ref.add_order(items)
    popular = [b for b, _ in await store.popular(prior_job.POPULAR)]
    expected = prior_choice.choose(kept, ref.pairs, ref.counts, ref.orders, popular)
    assert record["sample"] == len(kept)
    assert (record["queries"], record["orders"]) == (expected.queries, expected.orders)
    assert json.loads(record["hits"]) == {f"{m:g}": h for m, h in expected.hits.items()}
    assert float(record["m"]) == expected.strength
    stored = await prior_job.info(store.redis, store.base)
    assert stored["m"] == expected.strength and stored["queries"] == expected.queries
    assert stored["hit_rates"] == pytest.approx(expected.hit_rates())


async def test_also_bought_scoring_uses_the_stored_m_and_falls_back_without_one(world):
    _, _, updater = world
    store = updater.store
    orders = skewed_orders(random.Random(5), 120)
    await worker_steps(world, [purchase(str(uuid.uuid4()), f"o{n}", items, T0 + n) for n, items in enumerate(orders)])
    ref = CoCounts()
    for items in orders:
        ref.add_order(items)
    popular = [b for b, _ in await store.popular(prior_job.POPULAR)]
    seed = "p07"

    def expected(m):
        ranked = shrink.rank(ref.pairs[seed], ref.counts[seed], ref.counts, ref.orders, m, {seed}, popular)
        return dict(ranked[:50])

    async def served():
        found = await store.similar_counted([seed], "purchase", "shrunk", 1, 50, 16.0, popular, stored_strength=True)
        return found[seed].scores

    assert expected(16.0) != expected(1024.0)
    assert await served() == pytest.approx(expected(16.0), rel=1e-12)  # none stored: the strength given
    await store.redis.hset(prior_job.key(store), "m", "1024.0")
    assert await served() == pytest.approx(expected(1024.0), rel=1e-12)
    unstored = await store.similar_counted([seed], "purchase", "shrunk", 1, 50, 16.0, popular)
    assert unstored[seed].scores == pytest.approx(expected(16.0), rel=1e-12)  # only when asked to


def test_the_chooser_process_exits_when_its_worker_is_killed(tmp_path):
    """A worker killed outright (SIGKILL: no shutdown) leaves no chooser process behind."""
    import os
    import signal
    import subprocess
    import sys
    import time

    script = (
        "import os, sys, time\n"
        "from engine.recommend import prior_job\n"
        "print(prior_job.chooser().submit(os.getpid).result(), flush=True)\n"
        "time.sleep(120)\n"
    )
    worker = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        child = int(worker.stdout.readline())
        os.kill(child, 0)  # the chooser runs
        worker.send_signal(signal.SIGKILL)
        worker.wait(10)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                os.kill(child, 0)
            except ProcessLookupError:
                return
            time.sleep(0.1)
        os.kill(child, signal.SIGKILL)
        raise AssertionError("the chooser outlived its worker by 10 s")
    finally:
        worker.kill()
