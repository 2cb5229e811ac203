"""Also-bought latency at a fixed request rate, against baselines measured in the same run.

Data: the groceries baskets (../shared/data/groceries.csv, 9,835 orders, 169 items)
loaded through the store as purchase events (CooccurrenceUpdater, the worker's step),
their categories (level2) and availability put in the catalog, and an ALS model
trained on them and published (ModelHolder). Seeds are drawn from the basket lines,
so popular items, which have the most neighbours, are asked for most often.

Open loop: requests start every 1/RATE s whatever the earlier ones do, so a slow
handler shows up as queueing in the percentiles instead of a lower request rate.

1. in-process: RecommendService.also_bought (the handler's work: the seed's normalized
   neighbours, cached per process for RecommendConfig.neighbours_cache_s, else one Lua
   call; popularity, catalog and categories, ALS, blend, filters), the same with the
   cache off (every request runs the script), and baselines: the raw pair counts of the
   seed (HGETALL, sort, top k: no normalization, no model, no filters), and a naive
   per-request scan (read every order record and count the seed's partners; closed
   loop, it cannot keep the rate).
2. over HTTP on loopback: the engine's API app (create_app, role api) in one uvicorn
   process, as `clickstream api --api-only` serves it, asked by a minimal keep-alive
   client in this process (32 connections); also-bought and a raw-counts route added
   to the same app. "server" columns: from the request's arrival in the app to its
   last byte sent (an outermost ASGI layer), what the 5 ms goal is about; the other
   columns are the client's, loopback and client queueing included.
3. also-bought with a cart, in-process and over HTTP: 2,000 shoppers, each with a
   random basket of 2 or more items in the cart (add_to_cart through the profile
   store, the worker's step), ask for one item of it with their visitor_id: a profile
   read, the item's and the cart's neighbours, ALS, the item-item regression, blend;
   at the target rate and at --cart-rate.

Usage: python benchmarks/recommend_latency.py [--rate 1000] [--cart-rate 500] [--seconds 10] [--data PATH]
Uses the Redis at 127.0.0.1:6379 (CLICKSTREAM_REDIS to change) under a key prefix of
its own, deleted at the end.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import asyncio  # noqa: E402
import csv  # noqa: E402
import dataclasses  # noqa: E402
import gc  # noqa: E402
import json  # noqa: E402
import multiprocessing  # noqa: E402
import random  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from pathlib import Path  # noqa: E402
from urllib.parse import quote  # noqa: E402

import msgpack  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.common import machine  # noqa: E402
from engine.embedded import free_port, wait_for_port  # noqa: E402
from engine.profiles.model import new_profile  # noqa: E402
from engine.profiles.people import People  # noqa: E402
from engine.profiles.store import BatchResult, ProfileStore  # noqa: E402
from engine.recommend.als_store import ModelHolder, publish  # noqa: E402
from engine.recommend.als_training import AlsParams, train_from_interactions  # noqa: E402
from engine.recommend.catalog import Catalog, CatalogItem  # noqa: E402
from engine.recommend.config import RecommendConfig  # noqa: E402
from engine.recommend.service import RecommendService  # noqa: E402
from engine.recommend.store import CooccurrenceStore, CooccurrenceUpdater  # noqa: E402
from redis.asyncio import BlockingConnectionPool, Redis  # noqa: E402

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "groceries.csv"
TS = 1_795_400_000_000
K = 10


def open_redis(url: str) -> Redis:
    """Like engine.redis_client.open_redis, but a burst waits for a connection instead of failing:
    redis-py's default pool raises MaxConnectionsError past 100 connections."""
    return Redis(connection_pool=BlockingConnectionPool.from_url(url, max_connections=100, timeout=30))


def load_orders(path: Path) -> tuple[list[list[str]], dict[str, str]]:
    baskets: dict[int, dict[str, None]] = {}
    category = {}
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            baskets.setdefault(int(row["basket"]), {})[row["item"]] = None
            category[row["item"]] = row["level2"]
    return [list(baskets[b]) for b in sorted(baskets)], category


async def load(redis, prefix: str, orders: list[list[str]], category: dict[str, str]) -> float:
    """Orders through the worker's step (500 per batch, as the worker would), catalog, ALS model."""
    updater = CooccurrenceUpdater(redis, prefix)
    started = time.perf_counter()
    for start in range(0, len(orders), 500):
        events, result = [], BatchResult()
        for n, items in enumerate(orders[start : start + 500], start):
            vid = f"v{n}"
            result.profiles[vid] = new_profile(vid)
            events.append(
                {
                    "event_id": f"e{n}",
                    "type": "purchase",
                    "visitor_id": vid,
                    "ts": TS + n,
                    "props": {
                        "order": {"id": f"o{n}", "items": [{"id": i, "qty": 1, "category": category[i]} for i in items]}
                    },
                }
            )
        await updater(events, result)
    load_s = time.perf_counter() - started
    await Catalog(redis, prefix).put([CatalogItem(item, cat, available=True) for item, cat in category.items()])
    rows = [(f"o{n}", item, 1.0) for n, items in enumerate(orders) for item in items]
    await publish(redis, prefix, train_from_interactions(rows, AlsParams(factors=64, regularization=10.0)))
    return load_s


async def load_carts(
    redis, prefix: str, orders: list[list[str]], category: dict[str, str], shoppers: int = 2000, seed: int = 3
) -> list[tuple[str, str]]:
    """Shoppers with a random basket in the cart, through the profile store; (item asked about, visitor id) each."""
    rng = random.Random(seed)
    baskets = [b for b in orders if len(b) >= 2]
    events, asks = [], []
    for n in range(shoppers):
        basket = rng.choice(baskets)
        events += [
            {
                "event_id": f"cart{n}-{m}",
                "type": "add_to_cart",
                "visitor_id": f"shopper{n}",
                "ts": TS + m,
                "props": {"product": {"id": item, "category": category[item]}, "qty": 1},
            }
            for m, item in enumerate(basket)
        ]
        asks.append((rng.choice(basket), f"shopper{n}"))
    await ProfileStore(redis, prefix).apply_batch(events)
    return asks


async def load_sessions(
    redis,
    prefix: str,
    orders: list[list[str]],
    category: dict[str, str],
    visitors: int = 2000,
    seed: int = 4,
    cart: bool = False,
) -> list[tuple[str, list[str]]]:
    """A pool of view sessions (each order's items viewed in a random order, oldest first) and `visitors`
    anonymous visitors mid-session (1 or 2 of 2 items drawn from a basket viewed); (visitor id, the 2 items).
    With `cart`, each visitor also has a third item of another basket in the cart (the session and the
    cart together, the heaviest also-bought with a visitor)."""
    from engine.recommend.sessions import SessionStore, session_key

    rng = random.Random(seed)
    pool = SessionStore(redis, prefix)
    views = [
        [f"viewer{n}", session_key(f"viewer{n}", "s"), item, TS]
        for n, basket in enumerate(orders)
        for item in rng.sample(basket, len(basket))
    ]
    for start in range(0, len(views), 5000):
        await pool.add(views[start : start + 5000])
    baskets = [b for b in orders if len(b) >= 2]
    events, ids = [], []
    for n in range(visitors):
        vid = f"browser{n}"
        basket = rng.sample(rng.choice(baskets), 2)
        seen = basket[: rng.randint(1, len(basket))]
        events += [
            {
                "event_id": f"view{n}-{m}",
                "type": "product_view",
                "visitor_id": vid,
                "session_id": "s",
                "ts": TS + m,
                "props": {"product": {"id": item, "category": category[item]}},
            }
            for m, item in enumerate(seen)
        ]
        if cart:
            held = rng.choice([i for i in rng.choice(baskets) if i not in basket] or [basket[0]])
            events.append(
                {
                    "event_id": f"cart-{n}",
                    "type": "add_to_cart",
                    "visitor_id": vid,
                    "session_id": "s",
                    "ts": TS + len(seen),
                    "props": {"product": {"id": held, "category": category[held]}, "qty": 1},
                }
            )
        ids.append((vid, basket))
    result = await ProfileStore(redis, prefix).apply_batch(events)
    await pool(events, result)
    return ids


def service_for(redis, prefix: str, config: RecommendConfig = RecommendConfig()) -> RecommendService:
    holder = ModelHolder(redis, prefix)
    return RecommendService(
        CooccurrenceStore(redis, prefix),
        Catalog(redis, prefix),
        holder,
        People(redis, ProfileStore(redis, prefix)),
        config,
    )


async def raw_counts(store: CooccurrenceStore, item: str) -> list[tuple[str, int]]:
    """Baseline: the seed's raw pair counts, best first (best sellers win; no filters, no model)."""
    pairs = await store.neighbours(item)
    return sorted(pairs.items(), key=lambda p: (-p[1], p[0]))[:K]


async def naive_scan(store: CooccurrenceStore, item: str) -> list[tuple[str, int]]:
    """Baseline: no counts kept; read every order and count the seed's partners per request."""
    counts: dict[str, int] = {}
    for record in (await store.redis.hgetall(store.base + "order")).values():
        items = msgpack.unpackb(record, raw=False)[3]
        if item in items:
            for other in items:
                if other != item:
                    counts[other] = counts.get(other, 0) + 1
    return sorted(counts.items(), key=lambda p: (-p[1], p[0]))[:K]


async def open_loop(call, seeds: list[str], rate: float, seconds: float) -> tuple[list[float], float]:
    """Starts one call every 1/rate s; returns each call's latency (ms) and the rate achieved."""
    n = int(rate * seconds)
    latencies: list[float] = []
    errors = []
    gc.collect()
    gc.freeze()  # the load generator's own collections would stall it, then send a burst

    async def one(seed):
        t = time.perf_counter()
        try:
            await call(seed)
        except Exception as exc:  # counted, reported
            errors.append(exc)
        latencies.append((time.perf_counter() - t) * 1000)

    tasks = []
    start = time.perf_counter()
    for i in range(n):
        delay = start + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(seeds[i % len(seeds)])))
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - start
    if errors:
        raise RuntimeError(f"{len(errors)} errors, first: {errors[0]!r}")
    return latencies, n / elapsed


async def closed_loop(call, seeds: list[str], n: int) -> tuple[list[float], float]:
    latencies = []
    start = time.perf_counter()
    for i in range(n):
        t = time.perf_counter()
        await call(seeds[i % len(seeds)])
        latencies.append((time.perf_counter() - t) * 1000)
    return latencies, n / (time.perf_counter() - start)


class LoopbackClient:
    """A minimal HTTP/1.1 keep-alive client: httpx costs more CPU per request than the server
    it measures, on the same 2 cores. A request waits for a free connection (counted in its latency)."""

    def __init__(self, host: str, port: int, connections: int) -> None:
        self.host, self.port, self.n = host, port, connections
        self.idle: asyncio.Queue = asyncio.Queue()

    async def start(self) -> None:
        for _ in range(self.n):
            self.idle.put_nowait(await asyncio.open_connection(self.host, self.port))

    async def get(self, path: str) -> bytes:
        reader, writer = await self.idle.get()
        try:
            writer.write(f"GET {path} HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer bench\r\n\r\n".encode())
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head.split(b" ", 2)[1])
            length = int(head.lower().split(b"content-length:", 1)[1].split(b"\r\n", 1)[0])
            body = await reader.readexactly(length)
        finally:
            self.idle.put_nowait((reader, writer))
        if status != 200:
            raise RuntimeError(f"HTTP {status}: {body[:200]!r}")
        return body

    async def close(self) -> None:
        while not self.idle.empty():
            _, writer = self.idle.get_nowait()
            writer.close()


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def row(label: str, latencies: list[float], achieved: float, inside: list[float] | None = None) -> str:
    server = f"{statistics.median(inside):.2f} | {pct(inside, 0.99):.2f}" if inside else "- | -"
    return (
        f"| {label} | {len(latencies):,} | {achieved:,.0f} | {statistics.median(latencies):.2f} | "
        f"{pct(latencies, 0.99):.2f} | {max(latencies):.2f} | {server} |"
    )


class ServerTimer:
    """Outermost ASGI layer: the time from a request's arrival in the app to its last byte sent,
    per path, so "inside the server" excludes the client and the loopback. GET /__timings hands
    over (and clears) what it holds."""

    def __init__(self, app) -> None:
        self.app, self.times = app, {}

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        if scope["path"] == "/__timings":
            body = json.dumps(self.times).encode()
            self.times = {}
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
                }
            )
            return await send({"type": "http.response.body", "body": body})
        start = time.perf_counter()
        await self.app(scope, receive, send)
        self.times.setdefault(scope["path"], []).append((time.perf_counter() - start) * 1000)


def serve(redis_url: str, prefix: str, port: int) -> None:
    """The engine's own API app (create_app, role api: its middleware, auth, metrics, model holder),
    one uvicorn process as `clickstream api --api-only` runs it, plus a raw-counts route."""
    import uvicorn
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from engine.wiring import create_app
    from engine.settings import Settings

    store = CooccurrenceStore(open_redis(redis_url), prefix)

    async def raw(request):
        item = request.query_params["item"]
        return JSONResponse(
            {"item": item, "items": [{"id": i, "score": c} for i, c in await raw_counts(store, item)], "source": "raw"}
        )

    app = create_app(Settings(redis=redis_url, redis_prefix=prefix, api_keys=("bench",)), {"api"})
    app.router.routes.append(Route("/raw", raw))
    uvicorn.run(ServerTimer(app), host="127.0.0.1", port=port, log_level="warning", access_log=False, lifespan="on")


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--rate", type=float, default=1000.0)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--cart-rate", type=float, default=500.0, help="a second, lower rate for the rows with a cart")
    ap.add_argument("--data", type=Path, default=DATA)
    args = ap.parse_args()
    redis_url = os.environ.get("CLICKSTREAM_REDIS", "redis://127.0.0.1:6379/0")
    prefix = f"bench{uuid.uuid4().hex[:8]}"
    redis = open_redis(redis_url)
    orders, category = load_orders(args.data)
    rng = random.Random(1)
    seeds = [rng.choice(rng.choice(orders)) for _ in range(10_000)]
    server = None
    try:
        load_s = await load(redis, prefix, orders, category)
        carts = await load_carts(redis, prefix, orders, category)
        service = service_for(redis, prefix)
        await service.models.refresh()
        print(f"Machine: {machine()}")
        print(
            f"\nData: {len(orders):,} groceries orders, {len(category)} items, loaded through the store in "
            f"{load_s:.2f} s ({len(orders) / load_s:,.0f} orders/s); ALS 64 factors. k={K}; target rate "
            f"{args.rate:,.0f} requests/s for {args.seconds:g} s, open loop.\n"
        )
        uncached = service_for(redis, prefix, dataclasses.replace(RecommendConfig(), neighbours_cache_s=0))
        await uncached.models.refresh()
        for seed in seeds[:200]:  # warm up: scripts loaded, connections open
            await service.also_bought(seed)
            await uncached.also_bought(seed)
        cfg = RecommendConfig()
        print(
            f"Served: similarity {cfg.method}, ALSO_BOUGHT_WEIGHTS, neighbours cached {cfg.neighbours_cache_s:g} s "
            f"per process.\n"
        )
        print("| path | requests | achieved req/s | p50 ms | p99 ms | max ms | server p50 ms | server p99 ms |")
        print("|---|---|---|---|---|---|---|---|")
        for label, svc in (("also_bought", service), ("also_bought, neighbours not cached", uncached)):
            lat, got = await open_loop(lambda s, svc=svc: svc.also_bought(s, k=K), seeds, args.rate, args.seconds)
            print(row(f"in-process: {label}", lat, got))
        for item, visitor in carts[:200]:
            await service.also_bought(item, visitor_id=visitor)
        for rate in (args.rate, args.cart_rate):
            lat, got = await open_loop(
                lambda ask: service.also_bought(ask[0], k=K, visitor_id=ask[1]), carts, rate, args.seconds
            )
            print(row(f"in-process: also_bought with a cart (visitor_id), {rate:,.0f}/s", lat, got))
        lat, got = await open_loop(lambda s: raw_counts(service.store, s), seeds, args.rate, args.seconds)
        print(row("in-process baseline: raw pair counts (HGETALL + sort)", lat, got))
        lat, got = await closed_loop(lambda s: naive_scan(service.store, s), seeds, 50)
        print(row("in-process baseline: naive scan of every order per request (closed loop)", lat, got))

        port = free_port()
        server = multiprocessing.get_context("spawn").Process(target=serve, args=(redis_url, prefix, port), daemon=True)
        server.start()
        wait_for_port(port, 30)
        client = LoopbackClient("127.0.0.1", port, connections=32)
        await client.start()
        try:
            cart_paths = [
                f"/v1/recommendations/also-bought?item={quote(item)}&visitor_id={visitor}&k={K}"
                for item, visitor in carts
            ]
            paths = {
                "GET /v1/recommendations/also-bought": [
                    f"/v1/recommendations/also-bought?item={quote(s)}&k={K}" for s in seeds
                ],
                "GET /v1/recommendations/also-bought with a cart (visitor_id)": cart_paths,
                "raw pair counts route": [f"/raw?item={quote(s)}" for s in seeds],
            }
            for asked in paths.values():
                for path in asked[:300]:
                    await client.get(path)
            runs = [(label, asked, args.rate) for label, asked in paths.items()]
            runs.insert(2, (f"{list(paths)[1]}, {args.cart_rate:,.0f}/s", cart_paths, args.cart_rate))
            for label, asked, rate in runs:
                await client.get("/__timings")
                lat, got = await open_loop(client.get, asked, rate, args.seconds)
                inside = [ms for times in json.loads(await client.get("/__timings")).values() for ms in times]
                label = f"HTTP loopback (engine API app, uvicorn, 1 process): {label}"
                print(row(label if "raw" not in label else label.replace("HTTP", "HTTP baseline"), lat, got, inside))
        finally:
            await client.close()
    finally:
        if server is not None:
            server.terminate()
            server.join(10)
        keys = [k async for k in redis.scan_iter(match=f"{prefix}:*", count=1000)]
        for start in range(0, len(keys), 1000):
            await redis.delete(*keys[start : start + 1000])
        await redis.aclose()


if __name__ == "__main__":
    try:  # the client shares 2 cores with the server it measures: the cheaper event loop, as uvicorn's
        import uvloop

        uvloop.run(main())
    except ImportError:
        asyncio.run(main())
