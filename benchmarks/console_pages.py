"""Console page load times with 100,000 profiles in Redis.

100,000 anonymous visitors (benchmarks.profile_memory's typical visitor, ~12 events each)
folded through the profile store, their recent events kept by the worker's step, a
third of them in segments, an hour of per-minute flow and decision counts, 50
refusals. Each page is asked for REQUESTS times, one request at a time, signed in,
through the whole app (routing, access check, session, views, templates) in process:
httpx's ASGI transport, no network. Baseline in the same run: the JSON routes the
pages read the same data through (GET /v1/profiles/{id}, GET /v1/segments,
GET /v1/segments/{name}, GET /v1/recommendations/also-bought).

Usage: python benchmarks/console_pages.py [PROFILES] [REQUESTS]   (100000, 200). Starts its own redis-server.
"""

from __future__ import annotations

import asyncio
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.common import machine  # noqa: E402
from benchmarks.profile_memory import visitor_events  # noqa: E402
from engine.console.session import COOKIE, Sessions  # noqa: E402
from engine.embedded import free_port, redis_command, wait_for_port  # noqa: E402
from engine.minute_counts import KEPT_S, minute_of  # noqa: E402
from engine.settings import Settings  # noqa: E402
from engine.wiring import create_app  # noqa: E402

KEY = "bench-key"
SEGMENTS = ("shoe-lovers", "cart-abandoners")


async def fill(app, settings: Settings, n: int, rng: random.Random) -> list[str]:
    stores = app.state.services.stores
    t0 = int(time.time() * 1000) - 3 * 86_400_000
    vids, batch = [], []
    started = time.perf_counter()
    for i in range(n):
        vid = f"{rng.getrandbits(128):032x}"
        vids.append(vid)
        events = visitor_events(rng, vid, t0 + i)
        for event in events:
            event["visitor_id"] = vid
        batch.extend(events)
        if len(batch) >= 10_000 or i == n - 1:
            result = await stores.profiles.apply_batch(batch)
            await stores.recent(batch, result)
            await stores.segments.update(
                {
                    v: {name: rng.random() * 10 for name in SEGMENTS if rng.random() < 0.3}
                    for v in {e["visitor_id"] for e in batch}
                },
                list(SEGMENTS),
            )
            batch = []
    redis, prefix, now = stores.redis, settings.redis_prefix, int(time.time() * 1000)
    async with redis.pipeline(transaction=False) as pipe:
        for back in range(60):
            minute = minute_of(now) - back
            pipe.hset(
                f"{prefix}:flow:{minute}",
                mapping={
                    "accepted": rng.randint(500, 3000),
                    "rejected": rng.randint(0, 40),
                    "bot": rng.randint(0, 100),
                },
            )
            pipe.hset(
                f"{prefix}:served:{minute}",
                mapping={
                    "hero|shoe-fans|hero-shoes": rng.randint(10, 90),
                    "hero|(default)|hero-welcome": rng.randint(50, 500),
                    "promo|(model)|promo-discount": rng.randint(10, 90),
                },
            )
            pipe.expire(f"{prefix}:flow:{minute}", KEPT_S)
            pipe.expire(f"{prefix}:served:{minute}", KEPT_S)
        pipe.lpush(
            f"{prefix}:flow:refused",
            *(json.dumps({"at": now, "type": "page_view", "error": "url: expected text"}) for _ in range(50)),
        )
        await pipe.execute()
    print(f"data: {n:,} profiles, {await redis.dbsize():,} Redis keys, filled in {time.perf_counter() - started:.0f}s")
    return vids


async def timed(client: httpx.AsyncClient, urls, requests: int, expect: str | None) -> tuple[float, float]:
    times = []
    for index in range(requests):
        url = urls(index)
        start = time.perf_counter()
        response = await client.get(url)
        times.append((time.perf_counter() - start) * 1000)
        assert response.status_code == 200, (url, response.status_code, response.text[:300])
        if expect:
            assert expect in response.text, (url, response.text[:300])
    times.sort()
    return statistics.median(times), times[int(len(times) * 0.95) - 1]


async def main(n: int, requests: int) -> None:
    print(f"machine: {machine()}")
    rng = random.Random(11)
    port = free_port()
    workdir = Path(tempfile.mkdtemp())
    server = subprocess.Popen(redis_command(port, workdir, durable=False), stdout=subprocess.DEVNULL)
    wait_for_port(port, 30, server)
    settings = Settings(
        redis=f"redis://127.0.0.1:{port}/0",
        api_keys=(KEY,),
        console_secret="bench-console-secret",
        data_dir=workdir,
        archive="off",
    )
    app = create_app(settings, {"api"})
    services = app.state.services
    await services.start()
    try:
        vids = await fill(app, settings, n, rng)
        sessions = Sessions(settings.console_secret, settings.api_keys)
        cookie = sessions.serializer.dumps(sessions.fresh(settings.api_keys[0]))
        pages = [
            ("overview  /console/", lambda i: "/console/", "Events per minute"),
            (
                "people    /console/people?q=<visitor>",
                lambda i: f"/console/people?q={vids[rng.randrange(n)]}",
                "Recent events",
            ),
            ("segments  /console/segments", lambda i: "/console/segments", "shoe-lovers"),
            ("segment   /console/segments/shoe-lovers", lambda i: "/console/segments/shoe-lovers", "Top members"),
            ("rules     /console/rules", lambda i: "/console/rules", "shoe-fans"),
            (
                "recs      /console/recommendations?item=<sku>",
                lambda i: f"/console/recommendations?item=sku-{rng.randint(1, 5000)}",
                "also bought",
            ),
        ]
        baselines = [
            ("GET /v1/profiles/<visitor>", lambda i: f"/v1/profiles/{vids[rng.randrange(n)]}"),
            ("GET /v1/segments", lambda i: "/v1/segments"),
            ("GET /v1/segments/shoe-lovers", lambda i: "/v1/segments/shoe-lovers"),
            (
                "GET /v1/recommendations/also-bought?item=<sku>",
                lambda i: f"/v1/recommendations/also-bought?item=sku-{rng.randint(1, 5000)}",
            ),
        ]
        transport = httpx.ASGITransport(app=app)
        async with (
            httpx.AsyncClient(transport=transport, base_url="http://console.test", cookies={COOKIE: cookie}) as client,
            httpx.AsyncClient(
                transport=transport, base_url="http://console.test", headers={"Authorization": f"Bearer {KEY}"}
            ) as api,
        ):
            for _, urls, expect in pages:  # warm: templates compiled, caches as a running console has them
                await timed(client, urls, 5, expect)
            print(f"{requests} requests per page, one at a time")
            print(f"{'page':<52} {'p50 ms':>8} {'p95 ms':>8}")
            for name, urls, expect in pages:
                p50, p95 = await timed(client, urls, requests, expect)
                print(f"{name:<52} {p50:8.1f} {p95:8.1f}")
            print("baseline: the JSON routes over the same data")
            for name, urls in baselines:
                p50, p95 = await timed(api, urls, requests, None)
                print(f"{name:<52} {p50:8.1f} {p95:8.1f}")
    finally:
        await services.stop()
        server.terminate()


if __name__ == "__main__":
    asyncio.run(
        main(int(sys.argv[1]) if len(sys.argv) > 1 else 100_000, int(sys.argv[2]) if len(sys.argv) > 2 else 200)
    )
