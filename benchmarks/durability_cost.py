"""What each durability step costs, against the same engine with the step off, in one run.

Three configurations of a worker and an HTTP app on a broker of their own:
  baseline   no archive, no spool (a 202 means only that the broker acknowledged)
  archive    the worker seals applied events into the archive before it commits
  + spool    also the collector's spool, fsynced before each 202 (the default)
For each: N events POSTed by 8 concurrent clients in batches of 100, as fast as they
go; collector throughput, POST latency, and the time until the worker applied all.

The configurations take turns, ROUNDS times (a shared machine's load moves); the
table gives each one's median.

Usage: python benchmarks/durability_cost.py [N] [ROUNDS]   (default 40000 3)
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import replace
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from benchmarks.common import machine  # noqa: E402
from engine.embedded import broker_command, free_port, redis_command, wait_for_port  # noqa: E402
from engine.settings import Settings  # noqa: E402

CLIENTS, BATCH = 8, 100
CONFIGS = (
    ("baseline (no archive, no spool)", {"archive": "off", "spool": False}),
    ("archive", {"spool": False}),
    ("archive + spool (default)", {}),
)


def percentile(values, q):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def metric(client, name) -> float:
    text = (await client.get("/metrics")).text
    return sum(float(l.rsplit(" ", 1)[1]) for l in text.splitlines() if l.startswith(name))


async def run(base: Settings, label: str, overrides: dict, total: int, folder: Path) -> dict:
    tag = uuid.uuid4().hex[:8]
    settings = replace(
        base,
        topic=f"cost-{tag}",
        rejected_topic=f"cost-rej-{tag}",
        consumer_group=f"cost-{tag}",
        redis_prefix=f"cost{tag}",
        data_dir=folder / tag,
        log_level="warning",
        **overrides,
    )
    env = dict(os.environ, **settings.environ(), PYTHONPATH=str(ROOT))
    port = free_port()
    logs = open(folder / f"{tag}.log", "ab")
    worker = subprocess.Popen(
        [sys.executable, "-m", "engine.cli", "worker"], env=env, cwd=ROOT, stdout=logs, stderr=logs
    )
    api = subprocess.Popen(
        [sys.executable, "-m", "engine.cli", "api", "--port", str(port)], env=env, cwd=ROOT, stdout=logs, stderr=logs
    )
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            deadline = time.monotonic() + 90
            while True:
                try:
                    if (await client.get("/healthz")).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise SystemExit(f"{label}: engine not ready")
                await asyncio.sleep(0.3)
            visitors = [str(uuid.uuid4()) for _ in range(2000)]
            latencies = []
            per_client = total // CLIENTS // BATCH

            async def sender(index):
                for n in range(per_client):
                    events = [
                        {
                            "type": "page_view",
                            "visitor_id": visitors[(index * 7919 + n * BATCH + i) % len(visitors)],
                            "url": "/x",
                        }
                        for i in range(BATCH)
                    ]
                    while True:
                        t0 = time.perf_counter()
                        response = await client.post("/v1/events", json={"events": events})
                        latencies.append(time.perf_counter() - t0)
                        if response.status_code == 202:
                            break
                        await asyncio.sleep(0.2)

            started = time.monotonic()
            await asyncio.gather(*(sender(i) for i in range(CLIENTS)))
            posted = time.monotonic() - started
            sent = per_client * CLIENTS * BATCH
            while await metric(client, "clickstream_worker_events_total") < sent:
                await asyncio.sleep(0.1)
            applied = time.monotonic() - started
        return {
            "label": label,
            "events": sent,
            "collector": sent / posted,
            "end_to_end": sent / applied,
            "p50": percentile(latencies, 0.5) * 1000,
            "p99": percentile(latencies, 0.99) * 1000,
        }
    finally:
        for process in (api, worker):
            process.terminate()
            process.wait(20)


async def main() -> None:
    total = int(sys.argv[1]) if len(sys.argv) > 1 else 40_000
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    folder = Path(tempfile.mkdtemp(prefix="durability-cost-"))
    broker_port = free_port()
    broker = subprocess.Popen(
        broker_command(broker_port), stdout=open(folder / "broker.log", "ab"), stderr=subprocess.STDOUT
    )
    wait_for_port(broker_port, 30, broker)
    redis_port = free_port()
    redis = subprocess.Popen(redis_command(redis_port, folder, durable=True), stdout=subprocess.DEVNULL)
    wait_for_port(redis_port, 30, redis)
    base = Settings(
        kafka=f"127.0.0.1:{broker_port}",
        redis=f"redis://127.0.0.1:{redis_port}/0",
        api_keys=("cost",),
        rebalance_timeout_s=1.0,
    )
    print(machine())
    print(
        f"{total:,} events per configuration, {CLIENTS} clients, {BATCH} events per POST; broker and Redis "
        f"(append-only file, fsync every second) on this machine; data folder on {folder}"
    )
    try:
        runs = {label: [] for label, _ in CONFIGS}
        for round_ in range(rounds):
            for label, overrides in CONFIGS:
                result = await run(base, label, overrides, total, folder)
                runs[label].append(result)
                print(
                    f"  round {round_ + 1} {label}: collector {result['collector']:,.0f}/s, end to end "
                    f"{result['end_to_end']:,.0f}/s, POST p99 {result['p99']:.0f} ms",
                    flush=True,
                )
        results = [
            {
                key: (label if key == "label" else percentile([r[key] for r in runs[label]], 0.5))
                for key in runs[label][0]
            }
            for label, _ in CONFIGS
        ]
        print(f"load average at the end: {os.getloadavg()[0]:.1f}")
    finally:
        for process in (redis, broker):
            process.terminate()
            process.wait(10)
    base_rate = results[0]["collector"]
    print(
        f"\nmedians of {rounds} rounds\n| configuration | collector events/s | vs baseline | end to end events/s | POST p50 ms | POST p99 ms |"
    )
    print("|---|---|---|---|---|---|")
    for r in results:
        print(
            f"| {r['label']} | {r['collector']:,.0f} | {r['collector'] / base_rate:.2f}x | {r['end_to_end']:,.0f} | "
            f"{r['p50']:.1f} | {r['p99']:.1f} |"
        )


if __name__ == "__main__":
    asyncio.run(main())
