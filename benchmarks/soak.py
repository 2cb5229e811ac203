"""Soak: `clickstream up` (embedded broker and Redis, spool and archive on) at a steady rate for minutes.

Reports the RSS of every process of the engine at the start, the middle and the end
(and every sample), the consumer lag, the spool, the log rotations, and the POST
/v1/events latency (p50/p99 per minute); at the end, waits for the lag to clear and
checks that every acknowledged event is counted once in its visitor's profile.

Usage: python benchmarks/soak.py [--minutes 10] [--rate 3000] [--batch 50] [--visitors 2000]
CI never runs it. It sends only to 127.0.0.1 and stops by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from benchmarks.common import machine  # noqa: E402
from engine.embedded import free_port  # noqa: E402

KEY = "soak-key"
ROLES = (
    ("tansu", "broker"),
    ("redis-server", "redis"),
    ("engine.cli worker", "worker"),
    ("engine.cli api", "api"),
    ("engine.cli up", "up"),
)


def descendants(pid: int) -> dict[int, str]:
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
    found, frontier = {}, {pid}
    while frontier:
        for child in frontier:
            try:
                found[child] = (Path("/proc") / str(child) / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                pass
        frontier = {c for c, p in parents.items() if p in frontier}
    return found


def rss_by_role(pid: int) -> dict[str, float]:
    out: Counter = Counter()
    for child, command in descendants(pid).items():
        role = next((name for needle, name in ROLES if needle in command), None)
        if role is None:
            continue
        try:
            for line in open(f"/proc/{child}/status"):
                if line.startswith("VmRSS"):
                    out[role] += int(line.split()[1]) / 1024
        except OSError:
            pass
    return dict(out)


def metric(text: str, name: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and not line.startswith("#"):
            total += float(line.rsplit(" ", 1)[1])
    return total


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--rate", type=int, default=3000, help="events per second")
    parser.add_argument("--batch", type=int, default=50, help="events per POST")
    parser.add_argument("--visitors", type=int, default=2000)
    parser.add_argument("--sample-s", type=float, default=15.0)
    args = parser.parse_args()

    data = Path(tempfile.mkdtemp(prefix="soak-"))
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLICKSTREAM_")}
    env.update(
        CLICKSTREAM_DATA_DIR=str(data),
        CLICKSTREAM_API_KEYS=KEY,
        CLICKSTREAM_REBALANCE_TIMEOUT_S="1",
        CLICKSTREAM_LOG_LEVEL="warning",
        PYTHONPATH=str(ROOT),
    )
    up = subprocess.Popen(
        [sys.executable, "-m", "engine.cli", "up", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    banner = []
    while True:
        line = up.stdout.readline()
        if not line:
            raise SystemExit("up did not start:\n" + "".join(banner))
        banner.append(line)
        if line.startswith("Ctrl-C"):
            break
    url = f"http://127.0.0.1:{port}"
    print(machine())
    print(
        f"soak: {args.rate:,} events/s in POSTs of {args.batch}, {args.visitors:,} visitors, {args.minutes:g} min; "
        f"data folder {data}"
    )
    print("".join(banner).rstrip())

    rng = random.Random(1)
    visitors = [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(args.visitors)]
    acked: Counter = Counter()
    statuses: Counter = Counter()
    latencies: list[tuple[float, float]] = []  # (seconds since start, latency)
    behind = 0
    in_flight = asyncio.Semaphore(64)
    started = time.monotonic()
    duration = args.minutes * 60
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)

    headers = {"Authorization": f"Bearer {KEY}"}  # a back end: it posts for many visitors
    async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits, headers=headers) as client:

        async def post(events):
            async with in_flight:
                while True:
                    t0 = time.perf_counter()
                    try:
                        response = await client.post("/v1/events", json={"events": events})
                        status = response.status_code
                    except httpx.HTTPError:
                        status = 0
                    latencies.append((time.monotonic() - started, time.perf_counter() - t0))
                    statuses[status] += 1
                    if status == 202:
                        for event in events:
                            acked[event["visitor_id"]] += 1
                        return
                    if 400 <= status < 500 and status != 429:  # refused: sending it again would not help
                        return
                    await asyncio.sleep(0.5)

        async def load():
            nonlocal behind
            interval = args.batch / args.rate
            tasks = set()
            next_at = time.monotonic()
            while time.monotonic() - started < duration:
                now_ms = int(time.time() * 1000)
                events = [
                    {
                        "type": "page_view",
                        "visitor_id": rng.choice(visitors),
                        "event_id": uuid.uuid4().hex,
                        "url": f"/p/{rng.randrange(500)}",
                        "ts": now_ms,
                    }
                    for _ in range(args.batch)
                ]
                if in_flight.locked():
                    behind += 1
                task = asyncio.create_task(post(events))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                next_at += interval
                await asyncio.sleep(max(0.0, next_at - time.monotonic()))
            await asyncio.gather(*tasks)
            finished["at"] = time.monotonic()

        samples = []
        finished = {"at": None}

        async def sample():
            while time.monotonic() - started < duration + 1:
                try:
                    text = (await client.get("/metrics")).text
                    health = (await client.get("/healthz")).json()
                except httpx.HTTPError:
                    text, health = "", {}
                collector = (health.get("log") or {}).get("collector") or {}
                samples.append(
                    {
                        "t": time.monotonic() - started,
                        "rss": rss_by_role(up.pid),
                        "lag": metric(text, "clickstream_consumer_lag"),
                        "spool": (collector.get("spool") or {}).get("events", 0),
                        "rotations": collector.get("rotations", 0),
                        "resets": collector.get("resets", 0),
                        "acked": sum(acked.values()),
                    }
                )
                s = samples[-1]
                print(
                    f"  t={s['t']:5.0f}s acked {s['acked']:>9,}  lag {s['lag']:>7,.0f}  spool {s['spool']:>6,}  "
                    f"rotations {s['rotations']}  rss MB "
                    + " ".join(f"{k} {v:.0f}" for k, v in sorted(s["rss"].items())),
                    flush=True,
                )
                await asyncio.sleep(args.sample_s)

        await asyncio.gather(load(), sample())
        sent_s = finished["at"] - started

        # Drain, then check every visitor's count.
        async def lag_zero():
            return metric((await client.get("/metrics")).text, "clickstream_consumer_lag") == 0

        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not await lag_zero():
            await asyncio.sleep(1)
        lost = double = 0
        for _ in range(30):
            lost = double = 0
            for vid, want in acked.items():
                r = await client.get(f"/v1/profiles/{vid}", headers={"Authorization": f"Bearer {KEY}"})
                have = r.json().get("counts", {}).get("page_view", 0) if r.status_code == 200 else 0
                lost += max(0, want - have)
                double += max(0, have - want)
            if lost == 0 and double == 0:
                break
            await asyncio.sleep(2)

    up.send_signal(signal.SIGTERM)
    up.wait(60)

    total = sum(acked.values())
    print(
        f"\nsent {total:,} acknowledged events in {sent_s:.0f} s ({total / sent_s:,.0f}/s); statuses {dict(statuses)}; "
        f"{behind} POSTs queued behind 64 in flight"
    )
    print(f"lost {lost}, counted twice {double}")
    third = [samples[0], samples[len(samples) // 2], samples[-1]]
    roles = sorted({r for s in samples for r in s["rss"]})
    print("RSS MB      " + "  ".join(f"{r:>7}" for r in roles))
    for label, s in zip(("start", "middle", "end"), third):
        print(f"{label:<6} {s['t']:4.0f}s " + "  ".join(f"{s['rss'].get(r, 0):7.0f}" for r in roles))
    print("max RSS MB  " + "  ".join(f"{max(s['rss'].get(r, 0) for s in samples):7.0f}" for r in roles))
    print(
        f"consumer lag: max {max(s['lag'] for s in samples):,.0f}, at the end {samples[-1]['lag']:,.0f}; "
        f"spool max {max(s['spool'] for s in samples):,} events; log rotations {samples[-1]['rotations']}"
    )
    print("POST /v1/events latency per minute (ms): p50 / p99")
    minutes = int(sent_s // 60) + 1
    for minute in range(minutes):
        window = [lat for t, lat in latencies if minute * 60 <= t < (minute + 1) * 60]
        if window:
            print(
                f"  minute {minute + 1:2d}: {percentile(window, 0.5) * 1000:6.1f} / {percentile(window, 0.99) * 1000:6.1f}"
                f"  ({len(window)} POSTs)"
            )
    everything = [lat for _, lat in latencies]
    print(f"  overall:   {percentile(everything, 0.5) * 1000:6.1f} / {percentile(everything, 0.99) * 1000:6.1f}")


if __name__ == "__main__":
    asyncio.run(main())
