"""Events per second through the pipeline, against the naive per-event faust agent, same run.

1. worker: N events put on the topic, then one `clickstream worker` drains them
   into Redis profiles; timed from its first processed event to its last.
2. baseline: the same N events drained by benchmarks/naive_worker.py (a faust agent,
   one event and one Redis round trip at a time), timed the same way.
3. end to end: N events POSTed to the HTTP collector in batches of 500 (8 concurrent
   clients) with a worker running; timed from the first request until the last
   event is in Redis.

Usage: python benchmarks/pipeline_throughput.py [N]   (default 200000)
Starts its own Tansu broker; uses the Redis at 127.0.0.1:6379 (else starts one).
"""

from __future__ import annotations

import asyncio
import json
import os
import uuid
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import httpx
import redis.asyncio as aioredis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.common import machine  # noqa: E402
from engine.stream import codec, kafka  # noqa: E402
from engine.embedded import broker_command, free_port, redis_command, wait_for_port  # noqa: E402
from engine.settings import Settings  # noqa: E402
from engine.wiring import workers_key  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
VISITORS = 10_000
VISITOR_IDS = [str(uuid.UUID(int=i, version=4)) for i in range(VISITORS)]  # the engine's form of a visitor id


def make_events(n: int, tag: str) -> list[dict]:
    """~150-byte events, 10,000 visitors, a realistic mix of types."""
    kinds = ("page_view", "page_view", "page_ping", "product_view")
    return [
        {"event_id": f"{tag}{i:09d}", "type": kinds[i % 4], "visitor_id": VISITOR_IDS[i % VISITORS],
         "session_id": f"s{i // 50_000}", "ts": 1_795_400_000_000 + i, "url": f"https://shop.example/p/{i % 997}",
         "props": {"product": {"id": f"sku-{i % 997}", "category": "shoes", "price": 9.5}} if i % 4 == 3 else {}}
        for i in range(n)
    ]


async def produce(settings: Settings, events: list[dict]) -> float:
    await kafka.ensure_topics(settings)
    producer = kafka.producer(settings, linger_ms=20)
    await producer.start()
    started = time.perf_counter()
    futures = [await producer.send(settings.topic, codec.encode(e), key=e["visitor_id"].encode()) for e in events]
    await asyncio.gather(*futures)
    elapsed = time.perf_counter() - started
    await producer.stop()
    return elapsed


async def time_until(count, total: int, timeout: float = 900) -> tuple[float, float]:
    """Seconds from the first processed event to the last, polling count()."""
    first = None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = await count()
        now = time.perf_counter()
        if done > 0 and first is None:
            first = now
        if done >= total:
            return first, now
        await asyncio.sleep(0.01)
    raise TimeoutError(f"only {await count()} of {total} processed")


def spawn(args: list[str], env: dict, log: Path) -> subprocess.Popen:
    return subprocess.Popen(args, env=env, cwd=ROOT, stdout=open(log, "wb"), stderr=subprocess.STDOUT)


async def worker_count(redis, settings: Settings):
    async def count():
        total = 0
        for raw in (await redis.hgetall(workers_key(settings))).values():
            total += json.loads(raw)["events"]
        return total
    return count


async def main(n: int) -> None:
    print(f"machine: {machine()}")
    print(f"data: {n:,} msgpack events (~150 bytes), {VISITORS:,} visitors; broker (Tansu) and Redis on the same machine")
    logs = Path("/tmp") / f"bench-{uuid.uuid4().hex[:6]}"
    logs.mkdir()
    broker_port = free_port()
    broker = subprocess.Popen(broker_command(broker_port), stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    wait_for_port(broker_port, 30, broker)
    redis_url = "redis://127.0.0.1:6379/0"
    redis_process = None
    try:
        await aioredis.Redis.from_url(redis_url).ping()
    except Exception:
        port = free_port()
        redis_process = subprocess.Popen(redis_command(port, logs), stdout=subprocess.DEVNULL)
        wait_for_port(port, 30, redis_process)
        redis_url = f"redis://127.0.0.1:{port}/0"
    redis = aioredis.Redis.from_url(redis_url)
    tag = uuid.uuid4().hex[:6]
    base = Settings(kafka=f"127.0.0.1:{broker_port}", redis=redis_url, api_keys=("bench",), partitions=4,
                    rebalance_timeout_s=1.0, worker_heartbeat_s=0.05, data_dir=logs, log_level="warning")
    results = {}
    processes = []
    try:
        events = make_events(n, tag)

        # 1. the batch worker
        settings = replace(base, topic=f"bench-{tag}", redis_prefix=f"b{tag}", consumer_group=f"b{tag}")
        produce_s = await produce(settings, events)
        print(f"produced {n:,} events with aiokafka in {produce_s:.1f}s ({n / produce_s:,.0f}/s)")
        env = dict(os.environ, **settings.environ())
        processes.append(spawn([sys.executable, "-m", "engine.cli", "worker"], env, logs / "worker.log"))
        first, last = await time_until(await worker_count(redis, settings), n)
        results["worker"] = n / (last - first)
        print(f"batch worker (getmany + 2 Redis round trips per batch): {results['worker']:,.0f} events/s", flush=True)
        processes.pop().terminate()

        # 2. the naive per-event faust agent on the same events
        naive_prefix = f"n{tag}"
        env = dict(os.environ, BENCH_KAFKA=settings.kafka, BENCH_REDIS=redis_url, BENCH_TOPIC=settings.topic, BENCH_PREFIX=naive_prefix)
        processes.append(spawn([sys.executable, str(ROOT / "benchmarks" / "naive_worker.py"), "worker", "-l", "warn", "--without-web"], env, logs / "naive.log"))

        async def naive_count():
            return int(await redis.get(f"{naive_prefix}:processed") or 0)
        first, last = await time_until(naive_count, n)
        results["naive"] = n / (last - first)
        print(f"naive faust agent (1 event, 1 Redis round trip):        {results['naive']:,.0f} events/s", flush=True)
        processes.pop().terminate()

        # 3. end to end through the HTTP collector
        settings = replace(base, topic=f"e2e-{tag}", redis_prefix=f"e{tag}", consumer_group=f"e{tag}")
        await kafka.ensure_topics(settings)
        env = dict(os.environ, **settings.environ())
        processes.append(spawn([sys.executable, "-m", "engine.cli", "worker"], env, logs / "e2e-worker.log"))
        port = free_port()
        processes.append(spawn([sys.executable, "-m", "engine.cli", "collector", "--port", str(port)], env, logs / "collector.log"))
        wait_for_port(port, 30, processes[-1])
        bodies = [json.dumps({"events": events[i : i + 500]}).encode() for i in range(0, n, 500)]
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
            while (await client.get("/healthz")).status_code != 200:
                await asyncio.sleep(0.1)
            count = await worker_count(redis, settings)
            await asyncio.sleep(2.0)  # let the worker join its group before timing
            started = time.perf_counter()
            queue = list(reversed(bodies))

            async def sender():
                while queue:
                    body = queue.pop()
                    response = await client.post("/v1/events", content=body, headers={  # a back end: never limited
                        "Content-Type": "application/json", "Authorization": "Bearer bench"})
                    assert response.status_code == 202 and not response.json()["rejected"], response.text

            await asyncio.gather(*(sender() for _ in range(8)))
            http_done = time.perf_counter()
            _, last = await time_until(count, n)
        results["collector"] = n / (http_done - started)
        results["end_to_end"] = n / (last - started)
    finally:
        for process in processes:
            process.terminate()
        broker.terminate()
        if redis_process:
            redis_process.terminate()
        keys = [k async for k in redis.scan_iter(match=f"*{tag}*", count=5000)]
        for i in range(0, len(keys), 5000):
            await redis.unlink(*keys[i : i + 5000])

    print(f"ratio, batch worker / naive agent: {results['worker'] / results['naive']:.1f}x")
    print(f"HTTP collector alone (POST, 500 per request, 8 clients): {results['collector']:,.0f} events/s")
    print(f"end to end (HTTP -> Kafka -> worker -> Redis):          {results['end_to_end']:,.0f} events/s")


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 200_000))
