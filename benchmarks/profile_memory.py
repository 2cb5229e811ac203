"""Redis memory per profile: 100,000 typical anonymous visitors folded through the store.

A typical anonymous visitor here: one or two sessions, 4 to 8 page views with real
looking URLs and titles, 1 to 3 product views, sometimes an add to cart, pings.
Baseline in the same run: the same profiles stored the obvious way, as a JSON
string plus a Redis set of the full event_ids beside it.

Usage: python benchmarks/profile_memory.py [N]   (default 100000). Starts its own
redis-server so the figure is the engine's alone.
"""

from __future__ import annotations

import asyncio
import json
import random
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import redis.asyncio as aioredis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.common import machine  # noqa: E402
from engine.embedded import free_port, redis_command, wait_for_port  # noqa: E402
from engine.profiles.model import fold, new_profile  # noqa: E402
from engine.profiles.store import ProfileStore  # noqa: E402

CATEGORIES = ["shoes", "coats", "umbrellas", "hats", "bags", "scarves"]


def visitor_events(rng: random.Random, vid: str, t0: int) -> list[dict]:
    events, ts = [], t0
    for session in range(rng.choice((1, 1, 2))):
        sid = uuid.UUID(int=rng.getrandbits(128)).hex
        for _ in range(rng.randint(4, 8) // (session + 1)):
            ts += rng.randint(5_000, 90_000)
            category = rng.choice(CATEGORIES)
            events.append(
                {
                    "type": "page_view",
                    "url": f"https://shop.example/{category}/{rng.randint(1, 400)}",
                    "title": f"{category.title()} - Shop",
                    "session_id": sid,
                    "ts": ts,
                }
            )
            events.append({"type": "page_ping", "session_id": sid, "ts": ts + 10_000, "props": {"engaged_ms": 10_000}})
        for _ in range(rng.randint(1, 3)):
            ts += 20_000
            category = rng.choice(CATEGORIES)
            product = {"id": f"sku-{rng.randint(1, 5000)}", "category": category, "price": 19.9}
            events.append({"type": "product_view", "session_id": sid, "ts": ts, "props": {"product": product}})
            if rng.random() < 0.2:
                events.append({"type": "add_to_cart", "session_id": sid, "ts": ts + 1, "props": {"product": product}})
    for event in events:
        event.update(event_id=uuid.UUID(int=rng.getrandbits(128)).hex, visitor_id=vid)
        event.setdefault("props", {})
    return events


async def used_memory(redis) -> int:
    return (await redis.info("memory"))["used_memory"]


async def main(n: int) -> None:
    print(f"machine: {machine()}")
    rng = random.Random(7)
    port = free_port()
    workdir = tempfile.mkdtemp()
    server = subprocess.Popen(redis_command(port, Path(workdir)), stdout=subprocess.DEVNULL)
    wait_for_port(port, 30, server)
    redis = aioredis.Redis.from_url(f"redis://127.0.0.1:{port}/0")
    try:
        store = ProfileStore(redis, "cs", anonymous_ttl_s=180 * 86400)
        t0 = 1_795_400_000_000
        visitors = [(uuid.UUID(int=rng.getrandbits(128)).hex, visitor_events(rng, f"v{i}", t0)) for i in range(n)]
        for vid, events in visitors:
            for e in events:
                e["visitor_id"] = vid
        total_events = sum(len(e) for _, e in visitors)
        print(f"data: {n:,} anonymous visitors, {total_events:,} events ({total_events / n:.1f} per visitor)")

        before = await used_memory(redis)
        batch = []
        for _, events in visitors:
            batch.extend(events)
            if len(batch) >= 10_000:
                await store.apply(batch)
                batch = []
        await store.apply(batch)
        engine_bytes = (await used_memory(redis) - before) / n

        await redis.flushdb()
        before = await used_memory(redis)
        async with redis.pipeline(transaction=False) as pipe:
            for i, (vid, events) in enumerate(visitors):
                profile = fold(new_profile(vid), events)
                pipe.set(f"json:{vid}", json.dumps(profile))
                pipe.sadd(f"seen:{vid}", *[e["event_id"] for e in events])
                if i % 5000 == 4999:
                    await pipe.execute()
            await pipe.execute()
        baseline_bytes = (await used_memory(redis) - before) / n
    finally:
        await redis.aclose()
        server.terminate()
    print(f"engine (one hash: zstd-compressed msgpack + 8-byte seen ids): {engine_bytes:,.0f} bytes per profile")
    print(f"baseline (JSON string + set of full event_ids):       {baseline_bytes:,.0f} bytes per profile")
    print(f"ratio: {baseline_bytes / engine_bytes:.2f}x smaller")


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 100_000))
