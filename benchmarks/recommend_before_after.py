"""Latency of the recommendation routes before and after a change, in the same run, on the same data.

Two API processes (create_app, role api, one uvicorn process each, as `clickstream api
--api-only` runs it) serve the same Redis keys: one runs the code of a base commit (`git
archive BASE` unpacked in a temporary folder), the other this checkout. One load generator
sends each request to both, alternately, at a fixed rate (open loop), so both see the same
machine load, the same seeds and the same data.

Data: the groceries baskets (9,835 orders, 169 items) through the worker's step, the
catalog and an ALS model (benchmarks/recommend_latency.load), and 2,000 shoppers with a
basket in the cart (load_carts). Routes:
  GET /v1/recommendations/also-bought?item=SEED&k=10     seeds drawn from basket lines
  GET /v1/recommendations/for-you?visitor_id=SHOPPER&k=10  the shoppers (their cart is the seed)
With --sessions, instead: a pool of view sessions (each order's items viewed in a random
order) and 2,000 anonymous visitors who viewed 1 or 2 items of a basket in their current
session (benchmarks/recommend_latency.load_sessions); for-you for them, and also-bought of
the second of the basket's two items (viewed last, or not yet viewed) with them as the visitor;
with --cart as well, each of them also has an item of another basket in the cart.
"server" percentiles: from a request's arrival in the app to its last byte (ServerTimer).

Usage: python benchmarks/recommend_before_after.py [--base 7d750c1] [--rate 500] [--for-you-rate 100] [--seconds 10]
       [--sessions [--cart]]
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import asyncio  # noqa: E402
import json  # noqa: E402
import random  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from pathlib import Path  # noqa: E402
from urllib.parse import quote  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from benchmarks.common import machine  # noqa: E402
from benchmarks.recommend_latency import (  # noqa: E402
    LoopbackClient,
    load,
    load_carts,
    load_orders,
    load_sessions,
    open_redis,
    pct,
)
from benchmarks.recommend_robust import DATA  # noqa: E402
from engine.embedded import free_port, wait_for_port  # noqa: E402

K = 10


def start_server(code: Path, redis_url: str, prefix: str, port: int) -> subprocess.Popen:
    program = (
        "import sys; sys.path.insert(0, sys.argv[1]); from benchmarks.recommend_latency import serve; "
        "serve(sys.argv[2], sys.argv[3], int(sys.argv[4]))"
    )
    env = dict(os.environ, PYTHONPATH=str(code))
    return subprocess.Popen([sys.executable, "-c", program, str(code), redis_url, prefix, str(port)], cwd=code, env=env)


async def paired_loop(clients: dict, paths: list[str], rate: float, seconds: float) -> dict[str, list[float]]:
    """Each path to every client in turn, one request every 1/rate s per client; latencies (ms) per client."""
    names = list(clients)
    latencies: dict[str, list[float]] = {name: [] for name in names}
    errors: list[Exception] = []

    async def one(name, path):
        t = time.perf_counter()
        try:
            await clients[name].get(path)
        except Exception as exc:  # counted, reported
            errors.append(exc)
        latencies[name].append((time.perf_counter() - t) * 1000)

    n, tasks, start = int(rate * seconds), [], time.perf_counter()
    for i in range(n * len(names)):
        delay = start + i / (rate * len(names)) - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        name = names[(i + i // len(names)) % len(names)]  # alternate which one goes first
        tasks.append(asyncio.create_task(one(name, paths[(i // len(names)) % len(paths)])))
    await asyncio.gather(*tasks)
    if errors:
        raise RuntimeError(f"{len(errors)} errors, first: {errors[0]!r}")
    return latencies


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--base", default="7d750c1", help="the commit measured as 'before'")
    ap.add_argument("--rate", type=float, default=500.0, help="requests/s to each of the two processes")
    ap.add_argument("--for-you-rate", type=float, default=100.0, help="requests/s to each process for for-you")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument(
        "--sessions", action="store_true", help="also-bought and for-you of anonymous visitors mid-session only"
    )
    ap.add_argument("--cart", action="store_true", help="with --sessions: each of those visitors has a cart too")
    args = ap.parse_args()
    redis_url = os.environ.get("CLICKSTREAM_REDIS", "redis://127.0.0.1:6379/0")
    prefix = f"bench{uuid.uuid4().hex[:8]}"
    redis = open_redis(redis_url)
    orders, category = load_orders(DATA)
    rng = random.Random(1)
    seeds = [rng.choice(rng.choice(orders)) for _ in range(10_000)]
    servers, clients = [], {}
    with tempfile.TemporaryDirectory() as before:
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", args.base], check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", before], input=archive, check=True)
        try:
            await load(redis, prefix, orders, category)
            carts = await load_carts(redis, prefix, orders, category)
            browsing = await load_sessions(redis, prefix, orders, category, cart=args.cart) if args.sessions else []
            head = subprocess.run(
                ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
            ).stdout.strip()
            for name, code in ((f"before ({args.base})", Path(before)), (f"after ({head} + working tree)", ROOT)):
                port = free_port()
                servers.append(start_server(code, redis_url, prefix, port))
                wait_for_port(port, 60, servers[-1])
                clients[name] = LoopbackClient("127.0.0.1", port, connections=16)
            for client in clients.values():  # after both are up: an idle connection closes after 5 s
                await client.start()
            print(f"Machine: {machine()}")
            print(
                f"Data: {len(orders):,} groceries orders, {len(category)} items, ALS 64 factors, "
                f"{len(carts):,} shoppers with a cart; {args.seconds:g} s per route, open loop, requests "
                f"alternating between the two processes.\n"
            )
            mid = "mid-session, a cart too" if args.cart else "mid-session"
            routes = {
                f"GET /v1/recommendations/also-bought with a visitor ({mid})": (
                    [f"/v1/recommendations/also-bought?item={quote(b[1])}&visitor_id={v}&k={K}" for v, b in browsing],
                    args.rate,
                ),
                f"GET /v1/recommendations/for-you ({mid})": (
                    [f"/v1/recommendations/for-you?visitor_id={v}&k={K}" for v, _ in browsing],
                    args.for_you_rate,
                ),
            }
            routes = (
                routes
                if args.sessions
                else {
                    "GET /v1/recommendations/also-bought": (
                        [f"/v1/recommendations/also-bought?item={quote(s)}&k={K}" for s in seeds],
                        args.rate,
                    ),
                    "GET /v1/recommendations/for-you": (
                        [f"/v1/recommendations/for-you?visitor_id={v}&k={K}" for _, v in carts],
                        args.for_you_rate,
                    ),
                }
            )
            print(
                "| route | code | requests/s | requests | client p50 ms | client p95 ms | server p50 ms | server p95 ms | "
                "server p99 ms |"
            )
            print("|---|---|---|---|---|---|---|---|---|")
            for label, (paths, rate) in routes.items():
                for path in paths[:200]:  # warm up both, alternately (scripts loaded, caches filled)
                    for client in clients.values():
                        await client.get(path)
                for client in clients.values():
                    await client.get("/__timings")
                lat = await paired_loop(clients, paths, rate, args.seconds)
                for name, client in clients.items():
                    inside = sorted(ms for times in json.loads(await client.get("/__timings")).values() for ms in times)
                    print(
                        f"| {label} | {name} | {rate:,.0f} | {len(lat[name]):,} | {pct(lat[name], 0.5):.2f} | "
                        f"{pct(lat[name], 0.95):.2f} | {pct(inside, 0.5):.2f} | {pct(inside, 0.95):.2f} | "
                        f"{pct(inside, 0.99):.2f} |"
                    )
        finally:
            for client in clients.values():
                await client.close()
            for server in servers:
                server.terminate()
                server.wait(10)
            keys = [k async for k in redis.scan_iter(match=f"{prefix}:*", count=1000)]
            for start in range(0, len(keys), 1000):
                await redis.delete(*keys[start : start + 1000])
            await redis.aclose()


if __name__ == "__main__":
    asyncio.run(main())
