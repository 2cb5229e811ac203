"""Decide latency with 200 rules and a real Redis.

200 generated rules over 5 slots (context sets, history windows, interests,
segments, value tiers, time of day; a quarter with A/B splits and control), 6
segments, and 2,000 profiles folded through the store. Each request decides 3
slots for a random known visitor with a random context.

- inside the server: DecideService.decide in-process (Redis reads, person merge,
  value and segments, rule evaluation, rendering);
- over HTTP on loopback: POST /v1/decide against `clickstream api --api-only`
  (uvicorn), one request at a time;
- baseline in the same run: the obvious design that loads and compiles the rule
  files on every request instead of keeping a compiled set that hot-reloads.

Usage: python benchmarks/decide_latency.py [REQUESTS]   (default 5000). Starts its
own redis-server.
"""

from __future__ import annotations

import asyncio
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import redis.asyncio as aioredis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.common import machine  # noqa: E402
from benchmarks.profile_memory import visitor_events  # noqa: E402
from engine.embedded import free_port, redis_command, wait_for_port  # noqa: E402
from engine.rules.live import LiveRules  # noqa: E402
from engine.rules.ruleset import load_ruleset  # noqa: E402
from engine.rules.service import DecideService  # noqa: E402
from engine.settings import Settings  # noqa: E402
from engine.wiring import build_stores  # noqa: E402

SLOTS = ["hero", "promo", "sidebar", "footer", "banner"]
CATEGORIES = ["shoes", "coats", "umbrellas", "hats", "bags", "scarves"]
COUNTRIES = ["NO", "SE", "DK", "DE", "FR", "GB", "US", "NL"]
WEATHER = ["rain", "sun", "snow", "clouds"]


def rule_files(rng: random.Random) -> str:
    lines = ["slots:"]
    for slot in SLOTS:
        lines += [f"  {slot}:", f"    default: {slot}-0", "    content:"]
        lines += [
            f'      {slot}-{i}: {{html: "<p>{slot} {i} for {{first_name|you}} in {{city|town}}</p>", topics: [t{i % 5}]}}'
            for i in range(12)
        ]
    lines.append("segments:")
    for category in CATEGORIES:
        lines += [
            f"  - name: likes-{category}",
            f"    when: {{interest: {{category: {category}, min: 1.5}}}}",
            f"    score: {{interest: {category}}}",
        ]
    lines.append("rules:")
    for i in range(200):
        slot = rng.choice(SLOTS)
        leaves = []
        for _ in range(rng.randint(1, 3)):
            kind = rng.choice(["country", "weather", "history", "interest", "segment", "tier", "time", "page"])
            if kind == "country":
                leaves.append(f"{{country: {{in: [{', '.join(rng.sample(COUNTRIES, 2))}]}}}}")
            elif kind == "weather":
                leaves.append(f"{{weather: {{in: [{rng.choice(WEATHER)}]}}}}")
            elif kind == "history":
                leaves.append(
                    f"{{history: {{event: product_view, category: {rng.choice(CATEGORIES)}, min: {rng.randint(1, 3)}, days: 7}}}}"
                )
            elif kind == "interest":
                leaves.append(f"{{interest: {{category: {rng.choice(CATEGORIES)}, min: 1}}}}")
            elif kind == "segment":
                leaves.append(f"{{segment: {{name: likes-{rng.choice(CATEGORIES)}}}}}")
            elif kind == "tier":
                leaves.append("{value_tier: {in: [key, growth]}}")
            elif kind == "time":
                leaves.append(
                    f'{{time_of_day: {{from: "{rng.randint(0, 11):02d}:00", to: "{rng.randint(12, 23):02d}:00"}}}}'
                )
            else:
                leaves.append(f"{{page: {{contains: /{rng.choice(CATEGORIES)}}}}}")
        when = leaves[0] if len(leaves) == 1 else f"{{{rng.choice(['all', 'any'])}: [{', '.join(leaves)}]}}"
        if rng.random() < 0.25:
            then = f"{{{slot}: {{variants: [{{content: {slot}-{rng.randint(1, 11)}, weight: 1}}, {{content: {slot}-{rng.randint(1, 11)}, weight: 1}}], control: 10}}}}"
        else:
            then = f"{{{slot}: {slot}-{rng.randint(1, 11)}}}"
        lines += [
            f"  - id: rule-{i:03d}",
            f"    priority: {rng.randint(0, 1000)}",
            f"    when: {when}",
            f"    then: {then}",
        ]
    return "\n".join(lines) + "\n"


def request_context(rng: random.Random) -> dict:
    return {
        "country": rng.choice(COUNTRIES),
        "weather": rng.choice(WEATHER),
        "city": "Bergen",
        "url": f"https://shop.example/{rng.choice(CATEGORIES)}/{rng.randint(1, 99)}",
        "timezone": "Europe/Oslo",
    }


def percentiles(samples_ms: list[float]) -> tuple[float, float, float]:
    q = statistics.quantiles(samples_ms, n=100)
    return q[49], q[98], statistics.fmean(samples_ms)


async def main(requests: int) -> None:
    rng = random.Random(7)
    workdir = Path(tempfile.mkdtemp(prefix="decide-bench-"))
    (workdir / "rules").mkdir()
    (workdir / "rules" / "bench.yaml").write_text(rule_files(rng))
    port = free_port()
    server = subprocess.Popen(redis_command(port, workdir), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    api = None
    try:
        wait_for_port(port, 20, server)
        settings = Settings(
            redis=f"redis://127.0.0.1:{port}/0", rules=workdir / "rules", api_keys=("bench",), redis_prefix="bench"
        )
        rs = load_ruleset(settings.rules, half_life_days=settings.interest_half_life_days)
        assert not rs.errors, rs.errors[:3]
        redis = aioredis.from_url(settings.redis)
        stores = build_stores(settings, redis)
        visitors = [f"visitor-{i}" for i in range(2000)]
        t0 = int(time.time() * 1000) - 3 * 86_400_000
        events = [e for vid in visitors for e in visitor_events(rng, vid, t0)]
        for start in range(0, len(events), 5000):
            await stores.profiles.apply(events[start : start + 5000])
        rules = LiveRules(settings.rules, half_life_days=settings.interest_half_life_days)
        rules.refresh()
        service = DecideService(settings, stores.people, stores.values, rules)

        async def timed(call) -> list[float]:
            out = []
            for _ in range(requests):
                vid, ctx = rng.choice(visitors), request_context(rng)
                started = time.perf_counter()
                await call(vid, ctx)
                out.append((time.perf_counter() - started) * 1000)
            return out

        slots = ["hero", "promo", "sidebar"]
        await timed(lambda v, c: service.decide(v, None, slots, dict(c)))  # warm up
        compiled = await timed(lambda v, c: service.decide(v, None, slots, dict(c)))

        class Reloading(LiveRules):
            @property
            def current(self):
                return load_ruleset(self.path, half_life_days=self.half_life_days)

            @current.setter
            def current(self, value):
                pass

        naive = DecideService(
            settings,
            stores.people,
            stores.values,
            Reloading(settings.rules, half_life_days=settings.interest_half_life_days),
        )
        saved = requests
        requests = max(200, requests // 20)
        baseline = await timed(lambda v, c: naive.decide(v, None, slots, dict(c)))
        requests = saved

        http_port = free_port()
        env = {**os.environ, **settings.environ(), "CLICKSTREAM_LOG_LEVEL": "warning"}
        api = subprocess.Popen(
            [sys.executable, "-m", "engine.cli", "api", "--api-only", "--port", str(http_port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port(http_port, 30, api)
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{http_port}", headers={"Authorization": "Bearer bench"}
        ) as client:

            async def over_http(vid, ctx):
                r = await client.post("/v1/decide", json={"visitor_id": vid, "slots": slots, "context": ctx})
                assert r.status_code == 200, r.text

            for _ in range(300):
                await over_http(rng.choice(visitors), request_context(rng))
            http = await timed(over_http)
        await redis.aclose()
    finally:
        if api:
            api.terminate()
            api.wait()
        server.terminate()
        server.wait()

    print(f"machine: {machine()}")
    print(
        f"data: {len(rs.rules)} rules over {len(SLOTS)} slots, {len(rs.segments)} segments, {len(visitors):,} profiles "
        f"({len(events):,} events); 3 slots per request; {requests:,} requests per row"
    )
    print()
    print("| decide | p50 ms | p99 ms | mean ms |")
    print("|---|---|---|---|")
    for name, samples in (
        ("inside the server: compiled rule set (hot reload)", compiled),
        ("baseline: load and compile the rule files per request", baseline),
        ("over HTTP on loopback (uvicorn, sequential)", http),
    ):
        p50, p99, mean = percentiles(samples)
        print(f"| {name} | {p50:.2f} | {p99:.2f} | {mean:.2f} |")
    print()
    print(f"compiled vs per-request loading: {percentiles(baseline)[0] / percentiles(compiled)[0]:.0f}x faster at p50")


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 5000))
