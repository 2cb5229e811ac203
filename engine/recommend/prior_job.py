"""The worker's job that chooses also-bought's prior strength m from the shop's own orders, and where it keeps it.

    {prefix}:rec:{co}:prior       hash  m, hits (JSON: m -> hits), queries, orders, sample, chosen_at (ms), seconds
    {prefix}:rec:{co}:prior:lock  held by the worker that chooses this interval

Reads a random sample of the stored orders (HRANDFIELD: erased and replaced ones skipped),
their seeds' pair counts (as many orders as prior_choice.BUDGET affords), every item's
count and the served popular list, and runs
engine.recommend.prior_choice on them. The worker runs the whole job (reads included) in a
process of its own at a lower priority (`chooser`, engine.wiring.choose_prior): on the
worker's event loop, with the ranking in a thread, it held the interpreter for seconds
(freshness p99 at 5,000 events/s 1.4-1.5 s against about 0.2 s without it). The SIMILAR script reads the
stored m when it ranks an item's also-bought list; with none stored (a new shop, or
Redis rebuilt by a replay until the next run) it uses shrink.PRIOR_STRENGTH.

The stored choice is a derived cache, not rebuilt by a replay: the worker chooses again
when it is missing or older than CLICKSTREAM_RECOMMEND_PRIOR_MINUTES. It names no person.
"""

from __future__ import annotations

import asyncio
import json
import logging
import multiprocessing
import os
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from typing import Awaitable, Callable

import msgpack

from engine.recommend import prior_choice
from engine.recommend.store import CooccurrenceStore

log = logging.getLogger("engine.recommend.prior")

SAMPLE = 2000  # orders; exact leave-one-out costs one ranking per seed of each, per m of the grid
POPULAR = 100  # the popular list as served competes with the pairs (service: candidates * 2)


_chooser: ProcessPoolExecutor | None = None


def _start_chooser(parent: int) -> None:
    """In the chooser process: a lower priority, and an exit once the worker is gone, however it ended
    (a worker killed outright leaves its pool's process waiting on a queue nobody writes to)."""
    os.nice(10)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def chooser() -> ProcessPoolExecutor:
    """One spawned process, niced, kept for the worker's life (it exits when the worker does)."""
    global _chooser
    if _chooser is None:
        _chooser = ProcessPoolExecutor(
            max_workers=1,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_start_chooser,
            initargs=(os.getpid(),),
        )
    return _chooser


def key(store: CooccurrenceStore) -> str:
    return store.base + "prior"


async def sample_orders(store: CooccurrenceStore, size: int) -> list[list[str]]:
    """Up to `size` distinct stored orders at random (their items), erased and replaced ones left out."""
    flat = await store.redis.hrandfield(store.base + "order", size, withvalues=True)
    out = []
    for raw in flat[1::2]:
        if raw == b"x":
            continue
        items = msgpack.unpackb(raw, raw=False)[3]
        out.append([str(i) for i in items])
    return out


async def read_pairs(store: CooccurrenceStore, seeds: list[str]) -> dict[str, dict[str, int]]:
    async with store.redis.pipeline(transaction=False) as pipe:
        for seed in seeds:
            pipe.hgetall(store.base + "pp:" + seed)
        replies = await pipe.execute()
    return {seed: {k.decode(): int(v) for k, v in raw.items()} for seed, raw in zip(seeds, replies)}


async def read_affordable(
    store: CooccurrenceStore, orders: list[list[str]], popular: int, chunk: int = 100
) -> tuple[list[list[str]], dict[str, dict[str, int]]]:
    """(the orders prior_choice.affordable keeps, their seeds' pair counts), read a chunk of orders at a time."""
    pairs: dict[str, dict[str, int]] = {}
    for end in range(chunk, len(orders) + chunk, chunk):
        new = sorted({i for items in orders[end - chunk : end] for i in items} - pairs.keys())
        pairs.update(await read_pairs(store, new))
        kept = prior_choice.affordable(orders[:end], lambda a: len(pairs[a]), popular)
        if len(kept) < min(end, len(orders)):
            return kept, pairs
    return orders, pairs


async def choose_once(store: CooccurrenceStore, sample: int = SAMPLE, popular_k: int = POPULAR) -> dict | None:
    """Chooses m on a sample of the stored orders and stores it; the stored record, or None without orders."""
    started = time.perf_counter()
    orders = await sample_orders(store, sample)
    if not orders:
        return None
    popular = [b for b, _ in await store.popular(popular_k)]
    orders, pairs = await read_affordable(store, orders, len(popular))
    counts, n_orders = await store.counts("purchase"), (await store.totals())["orders"]
    choice = prior_choice.choose(orders, pairs, counts, n_orders, popular)
    record = {
        "m": repr(float(choice.strength)),
        "hits": json.dumps({f"{m:g}": h for m, h in choice.hits.items()}),
        "queries": choice.queries,
        "orders": choice.orders,
        "sample": len(orders),
        "chosen_at": int(time.time() * 1000),
        "seconds": round(time.perf_counter() - started, 3),
    }
    await store.redis.hset(key(store), mapping=record)
    log.info(
        "also-bought prior m = %g on %d orders (%d queries), HitRate@%d per m: %s",
        choice.strength,
        choice.orders,
        choice.queries,
        prior_choice.K,
        ", ".join(f"{m:g}: {r:.4f}" for m, r in choice.hit_rates().items()),
    )
    return record


async def info(redis, store_base: str) -> dict | None:
    """The stored choice, parsed: m, hit rates per m, queries, orders, chosen_at (ms); None when none is stored."""
    raw = {k.decode(): v.decode() for k, v in (await redis.hgetall(store_base + "prior")).items()}
    if "m" not in raw:
        return None
    queries = int(raw.get("queries", 0))
    hits = {float(m): h for m, h in json.loads(raw.get("hits", "{}")).items()}
    return {
        "m": float(raw["m"]),
        "hit_rates": {m: h / queries if queries else 0.0 for m, h in hits.items()},
        "queries": queries,
        "orders": int(raw.get("orders", 0)),
        "chosen_at": int(raw.get("chosen_at", 0)),
    }


async def choose_periodically(
    store: CooccurrenceStore,
    every_s: float,
    stopping: Callable[[], bool],
    poll_s: float = 5.0,
    choose: Callable[[], Awaitable[dict | None]] | None = None,
) -> None:
    """The worker's task: choose again when the stored choice is missing or older than `every_s` (0: never).

    `choose` runs one choice (default `choose_once` here; the worker's runs it in the chooser process).
    A lock in Redis (expiring after `every_s`) lets one worker of many choose per interval."""
    choose = choose or (lambda: choose_once(store))
    if every_s <= 0:
        return
    poll_s = min(poll_s, every_s)
    while not stopping():
        try:
            current = await info(store.redis, store.base)
            age_s = time.time() - current["chosen_at"] / 1000 if current else float("inf")
            if age_s >= every_s and await store.redis.set(
                key(store) + ":lock", os.getpid(), nx=True, ex=max(int(every_s), 1)
            ):
                if await choose() is None:  # no orders yet: look again at the next poll
                    await store.redis.delete(key(store) + ":lock")
        except Exception as exc:
            log.warning("choosing the also-bought prior failed: %r", exc)
        await asyncio.sleep(poll_s)
