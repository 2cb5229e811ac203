"""The collector's publishing, per CPU second: several code states, same run.

Each code state (a folder holding a checkout of the engine: this one, and any given with
--other) runs its own `clickstream collector` against one Tansu broker, no worker. The
rows take turns (`--rounds` times) so load on the machine falls on all of them alike.
Requests of 500 events (a back end's batch), 8 concurrent clients. Small requests (a
browser's 5 events) are not measured here: with many concurrent connections the load
generator's HTTP client, not the collector, sets their rate (the collector's own time per
request stayed near 10 ms at 64 clients while the client saw 850 ms).
Prints events/s (wall) and events per CPU second of the collector process, the median
of the rounds, the ratio to the first state, and the requests refused (a 503 when the
broker's acknowledgement timed out).

Usage: python benchmarks/collector_publish.py [N] [--other PATH]... [--rounds 3]
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
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.common import machine  # noqa: E402
from benchmarks.events import make_events  # noqa: E402
from benchmarks.pipeline_throughput import AUTH, commit_id, cpu_seconds  # noqa: E402
from engine.embedded import broker_command, free_port, wait_for_port  # noqa: E402
from engine.settings import Settings  # noqa: E402
from engine.stream import kafka  # noqa: E402

SHAPES = {"large": (500, 8)}


async def post_all(port: int, events: list[dict], size: int, clients: int, pid: int) -> tuple[float, float, int]:
    """Wall seconds, collector CPU seconds, and requests not answered 202 (the broker timed out: 503)."""
    bodies = [json.dumps({"events": events[i : i + size]}).encode() for i in range(0, len(events), size)]
    queue = list(reversed(bodies))
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=60, limits=limits) as client:
        refused = 0

        async def sender():
            nonlocal refused
            while queue:
                body = queue.pop()
                response = await client.post("/v1/events", content=body, headers=AUTH)
                if response.status_code != 202:
                    refused += 1
                else:
                    assert not response.json()["rejected"], response.text

        started, cpu = time.perf_counter(), cpu_seconds(pid)
        await asyncio.gather(*(sender() for _ in range(clients)))
        return time.perf_counter() - started, cpu_seconds(pid) - cpu, refused


async def main(n: int, others: list[Path], rounds: int) -> None:
    here = Path(__file__).resolve().parent.parent
    states = [here, *others]
    print(f"machine: {machine()}; load average {os.getloadavg()[0]:.1f} at the start")
    for state in states:
        print(f"state {state}: commit {commit_id() if state == here else _commit(state)}")
    logs = Path("/tmp") / f"bench-{uuid.uuid4().hex[:6]}"
    logs.mkdir()
    broker_port = free_port()
    broker = subprocess.Popen(broker_command(broker_port), stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    wait_for_port(broker_port, 30, broker)
    processes = []
    try:
        collectors = []
        for number, state in enumerate(states):
            settings = Settings(
                kafka=f"127.0.0.1:{broker_port}",
                redis="redis://127.0.0.1:6379/0",
                api_keys=("bench",),
                partitions=4,
                topic=f"publish-{number}-{uuid.uuid4().hex[:6]}",
                data_dir=logs / str(number),
                log_level="warning",
            )
            await kafka.ensure_topics(settings)
            port = free_port()
            env = dict(os.environ, **settings.environ(), PYTHONPATH=str(state))
            process = subprocess.Popen(
                [sys.executable, "-m", "engine.cli", "collector", "--port", str(port)],
                env=env,
                cwd=state,
                stdout=open(logs / f"collector-{number}.log", "wb"),
                stderr=subprocess.STDOUT,
            )
            processes.append(process)
            wait_for_port(port, 30, process)
            collectors.append((state, port, process))
        results: dict[tuple[str, int], list[tuple[float, float]]] = {}
        for shape, (size, clients) in SHAPES.items():
            for round_ in range(rounds + 1):  # the first round warms up and is not counted
                for number, (state, port, process) in enumerate(collectors):
                    events = make_events(n, f"p{number}{round_}{shape}", now_ms=int(time.time() * 1000))
                    wall, cpu, refused = await post_all(port, events, size, clients, process.pid)
                    if round_:
                        results.setdefault((shape, number), []).append((n / wall, n / cpu, refused))
        print(f"{n:,} events per row and round, median of {rounds} rounds")
        print("| requests | state | events/s | events per CPU second | vs first | requests refused (503) |")
        print("|---|---|---|---|---|---|")
        for shape, (size, clients) in SHAPES.items():
            first = statistics.median(c for _, c, _ in results[(shape, 0)])
            for number, (state, _, _) in enumerate(collectors):
                wall = statistics.median(w for w, _, _ in results[(shape, number)])
                per_cpu = statistics.median(c for _, c, _ in results[(shape, number)])
                refused = sum(r for _, _, r in results[(shape, number)])
                print(
                    f"| {size} events, {clients} clients | {state.name} | {wall:,.0f} | {per_cpu:,.0f} | "
                    f"{per_cpu / first:.2f}x | {refused:,} |"
                )
    finally:
        for process in processes:
            process.terminate()
        broker.terminate()
    print(f"load average {os.getloadavg()[0]:.1f} at the end")


def _commit(folder: Path) -> str:
    return subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=folder, capture_output=True, text=True
    ).stdout.strip()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("n", type=int, nargs="?", default=20_000)
    parser.add_argument("--other", type=Path, action="append", default=[])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    asyncio.run(main(args.n, [p.resolve() for p in args.other], args.rounds))
