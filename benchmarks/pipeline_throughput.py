"""Events per second through the pipeline, against the naive per-event faust agent, same run.

1. worker: N events of the mixed stream (benchmarks/events.py: views, pings, product
   views, carts, impressions, logins, purchases) put on a 4-partition topic, then one
   `clickstream worker` (every handler on: profiles, identity, segments of the packaged
   demo rules, value, bandit, co-occurrence, archive) drains them; timed from the moment
   it holds its partitions to its last event.
2. baseline: the same N events drained by benchmarks/naive_worker.py (a faust agent,
   one event and one Redis round trip at a time), timed the same way.
3. scale-out: two `clickstream worker` processes in one consumer group on another copy
   of the events; their combined rate from the moment both hold partitions.
4. end to end: N events POSTed to the HTTP collector in batches of 500 (8 concurrent
   clients, an API key) with a worker running; timed from the first request until the
   last event is in Redis. The collector's CPU seconds give its events per core.
5. freshness: events POSTed at 1,000 and 5,000 events/s in batches every 20 ms, each
   batch with one probe visitor; the time from the collector's 202 to the probe's
   profile being readable in Redis: p50, p95, p99. Then the same with a decide that
   depends on it: each probe views three pairs of shoes, which puts it in the demo
   rules' shoe-lovers segment, and the time runs from the 202 until POST /v1/decide
   (an API process of its own, `clickstream api --api-only`) answers its hero slot
   with the segment's rule (hero-shoes).

Usage: python benchmarks/pipeline_throughput.py [N] [--quick] [--no-scale-out] [--parts worker,naive,scale,e2e,freshness,decide]
   (default N 200,000; --quick: 20,000 events, 5 s of freshness per rate, about a minute)
Starts its own Tansu broker; uses the Redis at 127.0.0.1:6379 (else starts one).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from dataclasses import replace
from pathlib import Path

import httpx
import redis.asyncio as aioredis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.common import machine  # noqa: E402
from benchmarks.events import VISITORS, collected, make_events  # noqa: E402
from engine.stream import codec, kafka  # noqa: E402
from engine.embedded import broker_command, free_port, redis_command, wait_for_port  # noqa: E402
from engine.settings import Settings  # noqa: E402
from engine.wiring import workers_key  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
AUTH = {"Content-Type": "application/json", "Authorization": "Bearer bench"}  # a back end: never rate limited


def commit_id() -> str:
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "engine", "benchmarks"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
        return head + ("+changes" if dirty else "") if head else "unknown"
    except OSError:
        return "unknown"


async def produce(settings: Settings, events: list[dict]) -> float:
    await kafka.ensure_topics(settings)
    producer = kafka.producer(settings, linger_ms=20, request_timeout_ms=30000)  # a loaded broker may be slow
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


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def heartbeats(redis, settings: Settings) -> list[dict]:
    return [json.loads(raw) for raw in (await redis.hgetall(workers_key(settings))).values()]


async def drain_time(redis, settings: Settings, total: int, timeout: float = 900) -> float:
    """Seconds from the worker holding its partitions (its heartbeat says ready) to its last event.

    Not from its first processed event: a batch holds up to 50,000 events, so the first
    count comes only once a whole batch is done."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        bodies = await heartbeats(redis, settings)
        if any(b.get("ready") or b["events"] for b in bodies):
            break
        await asyncio.sleep(0.005)
    else:
        raise TimeoutError("the worker never got its partitions")
    first = time.perf_counter()
    _, last = await time_until(await worker_count(redis, settings), total, timeout)
    return last - first


async def worker_count(redis, settings: Settings):
    async def count():
        return sum(body["events"] for body in await heartbeats(redis, settings))

    return count


def worker_env(settings: Settings) -> dict:
    return dict(os.environ, **settings.environ())


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]


async def scale_out(redis, settings: Settings, events: list[dict], logs: Path, processes: list) -> float:
    """Two workers in one group: events/s from when both hold partitions and the events are sent, to the last.

    The events go out only once both workers hold partitions: sent before, the first
    worker to join could drain them alone before the second is assigned any."""
    await kafka.ensure_topics(settings)
    env = worker_env(settings)
    for n in range(2):
        processes.append(spawn([sys.executable, "-m", "engine.cli", "worker"], env, logs / f"scale-{n}.log"))
    count = await worker_count(redis, settings)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        bodies = await heartbeats(redis, settings)
        if len(bodies) == 2 and all(b["partitions"] for b in bodies):
            break
        await asyncio.sleep(0.01)
    else:
        raise TimeoutError("the two workers did not both get partitions")
    started, done = time.perf_counter(), await count()
    await produce(settings, events)
    _, last = await time_until(count, done + len(events))
    for _ in range(2):
        processes.pop().terminate()
    return len(events) / (last - started)


SHOES = {"id": "probe-sneaker", "category": "shoes"}


async def decided_shoes(api: httpx.AsyncClient, vid: str) -> bool:
    """Whether decide already answers the visitor's hero slot with the shoe-lovers rule."""
    response = await api.post("/v1/decide", content=json.dumps({"visitor_id": vid, "slots": ["hero"]}), headers=AUTH)
    assert response.status_code == 200, response.text
    return response.json()["decisions"]["hero"]["content_id"] == "hero-shoes"


async def freshness(
    redis,
    client: httpx.AsyncClient,
    settings: Settings,
    rate: int,
    seconds: float,
    api: httpx.AsyncClient | None = None,
) -> list[float]:
    """Milliseconds from the 202 to the probe's profile in Redis, one probe per 20 ms batch; with `api`,
    to decide answering with the segment the probe's three shoe views put it in."""
    per_batch = max(1, rate // 50)
    background = make_events(int(rate * seconds) + per_batch, f"f{rate}", now_ms=int(time.time() * 1000))
    accepted: dict[str, float] = {}
    latencies: list[float] = []
    sending = True

    async def poll():
        while sending or accepted:
            if accepted:
                keys = list(accepted)
                if api is not None:
                    found = await asyncio.gather(*(decided_shoes(api, vid) for vid in keys))
                else:
                    async with redis.pipeline(transaction=False) as pipe:
                        for vid in keys:
                            pipe.hexists(f"{settings.redis_prefix}:{{v:{vid}}}:p", "d")
                        found = await pipe.execute()
                now = time.perf_counter()
                for vid, there in zip(keys, found):
                    if there:
                        latencies.append((now - accepted.pop(vid)) * 1000)
                        if os.environ.get("BENCH_TRACE") and latencies[-1] > 200:
                            print(f"slow probe at {now - started:.2f}s: {latencies[-1]:.0f} ms")
            await asyncio.sleep(0.002)

    poller = asyncio.create_task(poll())
    started = time.perf_counter()
    sends = []
    for n in range(int(seconds * 50)):
        probe = str(uuid.uuid4())
        now = int(time.time() * 1000)
        if api is not None:  # three shoe views: the shoe-lovers segment's condition
            probes = [
                {
                    "event_id": f"probe-{probe}-{k}",
                    "type": "product_view",
                    "visitor_id": probe,
                    "session_id": "s",
                    "ts": now + k,
                    "url": "https://shop.example/p/probe-sneaker",
                    "props": {"product": SHOES},
                }
                for k in range(3)
            ]
        else:
            probes = [
                {
                    "event_id": f"probe-{probe}",
                    "type": "page_view",
                    "visitor_id": probe,
                    "ts": now,
                    "url": "https://shop.example/probe",
                }
            ]
        batch = background[n * per_batch : (n + 1) * per_batch - len(probes)] + probes

        async def send(batch=batch, probe=probe):
            for attempt in range(3):  # a kept-alive connection the server closed meanwhile: send again
                try:
                    response = await client.post("/v1/events", content=json.dumps({"events": batch}), headers=AUTH)
                    break
                except httpx.TransportError:
                    if attempt == 2:
                        raise
            assert response.status_code == 202 and not response.json()["rejected"], response.text
            accepted[probe] = time.perf_counter()

        sends.append(asyncio.create_task(send()))
        await asyncio.sleep(max(0.0, started + (n + 1) * 0.02 - time.perf_counter()))
    await asyncio.gather(*sends)
    sending = False
    await asyncio.wait_for(poller, 60)
    return latencies


def report_freshness(rate: int, until: str, latencies: list[float]) -> None:
    print(
        f"freshness at {rate:,} events/s (202 -> {until}, {len(latencies)} probes): "
        f"p50 {statistics.median(latencies):.0f} ms, p95 {percentile(latencies, 95):.0f} ms, "
        f"p99 {percentile(latencies, 99):.0f} ms",
        flush=True,
    )


async def main(n: int, quick: bool, with_scale_out: bool, parts: set[str]) -> None:
    print(f"machine: {machine()}; load average {os.getloadavg()[0]:.1f} at the start")
    print(f"commit: {commit_id()}")
    print(
        f"data: {n:,} msgpack events of the mixed stream (~150 bytes), {VISITORS:,} visitors, 4 partitions; "
        f"broker (Tansu) and Redis on the same machine; packaged demo rules (3 segments, a model slot)"
    )
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
    base = Settings(
        kafka=f"127.0.0.1:{broker_port}",
        redis=redis_url,
        api_keys=("bench",),
        partitions=4,
        rebalance_timeout_s=1.0,
        worker_heartbeat_s=0.05,
        data_dir=logs,
        log_level="warning",
    )
    results: dict[str, float] = {}
    processes: list[subprocess.Popen] = []
    now_ms = int(time.time() * 1000)
    try:
        events = make_events(n, tag, now_ms=now_ms - n - 60_000)
        on_topic = collected(events)

        # 1. the batch worker
        settings = replace(base, topic=f"bench-{tag}", redis_prefix=f"b{tag}", consumer_group=f"b{tag}")
        if "worker" in parts:
            produce_s = await produce(settings, on_topic)
            print(f"produced {n:,} events with aiokafka in {produce_s:.1f}s ({n / produce_s:,.0f}/s)")
            processes.append(
                spawn([sys.executable, "-m", "engine.cli", "worker"], worker_env(settings), logs / "worker.log")
            )
            results["worker"] = n / await drain_time(redis, settings, n)
            print(
                f"batch worker, every handler on:                       {results['worker']:,.0f} events/s", flush=True
            )
            processes.pop().terminate()

        if "worker" in parts and "naive" in parts:
            # 2. the naive per-event faust agent on the same events
            naive_prefix = f"n{tag}"
            env = dict(
                os.environ,
                BENCH_KAFKA=settings.kafka,
                BENCH_REDIS=redis_url,
                BENCH_TOPIC=settings.topic,
                BENCH_PREFIX=naive_prefix,
            )
            processes.append(
                spawn(
                    [
                        sys.executable,
                        str(ROOT / "benchmarks" / "naive_worker.py"),
                        "worker",
                        "-l",
                        "warn",
                        "--without-web",
                    ],
                    env,
                    logs / "naive.log",
                )
            )

            async def naive_count():
                return int(await redis.get(f"{naive_prefix}:processed") or 0)

            first, last = await time_until(naive_count, n)
            results["naive"] = n / (last - first)
            print(f"naive faust agent (1 event, 1 Redis round trip):      {results['naive']:,.0f} events/s", flush=True)
            print(f"ratio, batch worker / naive agent: {results['worker'] / results['naive']:.1f}x", flush=True)
            processes.pop().terminate()

        # 3. two workers, one consumer group
        if with_scale_out and "scale" in parts:
            settings = replace(base, topic=f"scale-{tag}", redis_prefix=f"s{tag}", consumer_group=f"s{tag}")
            results["two_workers"] = await scale_out(
                redis, settings, collected(make_events(n, f"s{tag}", now_ms=now_ms - n)), logs, processes
            )
            than_one = f" ({results['two_workers'] / results['worker']:.2f}x one)" if "worker" in results else ""
            print(
                f"two workers, one group, 4 partitions, combined:       {results['two_workers']:,.0f} events/s"
                f"{than_one}",
                flush=True,
            )

        # 4. end to end through the HTTP collector, and 5. freshness
        settings = replace(base, topic=f"e2e-{tag}", redis_prefix=f"e{tag}", consumer_group=f"e{tag}")
        await kafka.ensure_topics(settings)
        env = worker_env(settings)
        processes.append(spawn([sys.executable, "-m", "engine.cli", "worker"], env, logs / "e2e-worker.log"))
        port = free_port()
        collector = spawn(
            [sys.executable, "-m", "engine.cli", "collector", "--port", str(port)], env, logs / "collector.log"
        )
        processes.append(collector)
        wait_for_port(port, 30, collector)
        bodies = [json.dumps({"events": events[i : i + 500]}).encode() for i in range(0, n, 500)]
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
            while (await client.get("/healthz")).status_code != 200:
                await asyncio.sleep(0.1)
            count = await worker_count(redis, settings)
            await asyncio.sleep(2.0)  # let the worker join its group before timing
            if "e2e" in parts:
                started, cpu_before = time.perf_counter(), cpu_seconds(collector.pid)
                queue = list(reversed(bodies))

                async def sender():
                    while queue:
                        body = queue.pop()
                        response = await client.post("/v1/events", content=body, headers=AUTH)
                        assert response.status_code == 202 and not response.json()["rejected"], response.text

                await asyncio.gather(*(sender() for _ in range(8)))
                http_done, collector_cpu = time.perf_counter(), cpu_seconds(collector.pid) - cpu_before
                _, last = await time_until(count, n)
                results["collector"] = n / (http_done - started)
                results["collector_per_core"] = n / collector_cpu
                results["end_to_end"] = n / (last - started)
                print(
                    f"HTTP collector (POST, 500 per request, 8 clients):    {results['collector']:,.0f} events/s, "
                    f"{results['collector_per_core']:,.0f} events per CPU second of the collector",
                    flush=True,
                )
                print(
                    f"end to end (HTTP -> Kafka -> worker -> Redis):        {results['end_to_end']:,.0f} events/s",
                    flush=True,
                )
            if {"freshness", "decide"} & parts:  # a new worker's first second stalls once (cold caches): not measured
                await freshness(redis, client, settings, 1_000, 2.0)
            for rate in (1_000, 5_000) if "freshness" in parts else ():
                latencies = await freshness(redis, client, settings, rate, 5.0 if quick else 20.0)
                report_freshness(rate, "profile in Redis", latencies)
            if "decide" in parts:
                api_port = free_port()
                api_process = spawn(
                    [sys.executable, "-m", "engine.cli", "api", "--api-only", "--port", str(api_port)],
                    env,
                    logs / "api.log",
                )
                processes.append(api_process)
                wait_for_port(api_port, 30, api_process)
                async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{api_port}", timeout=60) as api:
                    await freshness(redis, client, settings, 1_000, 1.0, api)  # the API's cold start: not measured
                    for rate in (1_000, 5_000):
                        latencies = await freshness(redis, client, settings, rate, 5.0 if quick else 20.0, api)
                        report_freshness(rate, "decide answers with the new segment", latencies)
    finally:
        for process in processes:
            process.terminate()
        broker.terminate()
        if redis_process:
            redis_process.terminate()
        keys = [k async for k in redis.scan_iter(match=f"*{tag}*", count=5000)]
        for i in range(0, len(keys), 5000):
            await redis.unlink(*keys[i : i + 5000])
    print(f"load average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("n", type=int, nargs="?", default=None)
    parser.add_argument("--quick", action="store_true", help="20,000 events and 5 s of freshness per rate")
    parser.add_argument("--no-scale-out", action="store_true")
    parser.add_argument(
        "--parts",
        default="worker,naive,scale,e2e,freshness,decide",
        help="which of worker, naive (needs worker), scale, e2e, freshness, decide to run",
    )
    args = parser.parse_args()
    asyncio.run(
        main(
            args.n or (20_000 if args.quick else 200_000), args.quick, not args.no_scale_out, set(args.parts.split(","))
        )
    )
