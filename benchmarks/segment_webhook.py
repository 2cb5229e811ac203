"""Event to webhook latency: POSTed events -> collector -> Kafka -> worker -> segment entry
in the outbox -> signed POST to a receiver on this machine.

A worker and an HTTP app on a broker and a Redis of their own, one rules folder with a
"three shoe views in 7 days" segment and one analytics webhook. Senders POST batches of
99 product views (33 new visitors x 3 views) plus one page view, paced to RATE events/s,
for SECONDS; each visitor enters the segment once, and the latency is from the start of
the POST that carried its third view to the webhook's arrival at the receiver.
Two phases in the same run: a light load (30 events/s, the baseline: the pipeline's own
latency, no queueing) and the target load.

With --separate, delivery runs as `clickstream deliver` beside the worker
(CLICKSTREAM_WORKER_DELIVERY=false) instead of inside it.

Usage: python benchmarks/segment_webhook.py [RATE] [SECONDS] [--separate]   (default 1000 20)
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from benchmarks.common import machine
from engine.embedded import broker_command, free_port, redis_command, wait_for_port
from engine.settings import Settings

RULES = """\
segments:
  - name: shoe-lovers
    when: {{history: {{event: product_view, category: shoes, min: 3, days: 7}}}}
destinations:
  - name: bench
    url: {url}
    secret: benchmark-signing-secret
    segments: [shoe-lovers]
    events: [entered]
    purpose: analytics
"""
PER_POST = 33  # visitors per POST, three views each


def percentile(values, q):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def receiver():
    arrived: dict[str, float] = {}

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as a production receiver would

        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
            arrived.setdefault(body["person"], time.perf_counter())
            self.send_response(204)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    class Server(ThreadingHTTPServer):
        request_queue_size = 128  # a receiver's usual backlog, not the standard library's 5
        daemon_threads = True

    server = Server(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, arrived


TRACED = (
    "clickstream_worker_events_total",
    "clickstream_segment_changes_total",
    "clickstream_webhook",
    "clickstream_consumer_lag",
)


async def trace(client) -> None:
    """With BENCH_TRACE set: the engine's counters that tell where the events are."""
    text = (await client.get("/metrics")).text
    print([line for line in text.splitlines() if line.startswith(TRACED)])


async def phase(client, rate: float, seconds: float, arrived: dict) -> dict:
    posts_per_s = rate / (PER_POST * 3 + 1)
    sent: dict[str, float] = {}
    started = time.perf_counter()
    n = 0
    pending = []

    async def post(events, visitors):
        t0 = time.perf_counter()
        response = await client.post("/v1/events", json={"events": events})
        assert response.status_code == 202, response.text
        for vid in visitors:
            sent[vid] = t0

    while time.perf_counter() - started < seconds:
        due = started + n / posts_per_s
        await asyncio.sleep(max(0.0, due - time.perf_counter()))
        visitors = [str(uuid.uuid4()) for _ in range(PER_POST)]
        events = [
            {
                "type": "product_view",
                "visitor_id": vid,
                "session_id": "s",
                "props": {"product": {"id": f"p{i}", "category": "shoes"}},
            }
            for vid in visitors
            for i in range(3)
        ]
        events.append({"type": "page_view", "visitor_id": visitors[0], "url": "/"})
        pending.append(asyncio.create_task(post(events, visitors)))
        n += 1
    await asyncio.gather(*pending)
    elapsed = time.perf_counter() - started
    if os.environ.get("BENCH_TRACE"):
        await trace(client)
    deadline = time.monotonic() + 60
    while len([v for v in sent if v in arrived]) < len(sent) and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    if os.environ.get("BENCH_TRACE"):
        await trace(client)
    latencies = [arrived[v] - sent[v] for v in sent if v in arrived]
    return {
        "rate": n * (PER_POST * 3 + 1) / elapsed,
        "visitors": len(sent),
        "delivered": len(latencies),
        "p50": percentile(latencies, 0.5),
        "p95": percentile(latencies, 0.95),
        "p99": percentile(latencies, 0.99),
        "max": max(latencies),
    }


async def main(rate: float, seconds: float, separate: bool) -> None:
    folder = Path(tempfile.mkdtemp(prefix="segment-webhook-"))
    server, arrived = receiver()
    (folder / "rules").mkdir()
    (folder / "rules" / "live.yaml").write_text(RULES.format(url=f"http://127.0.0.1:{server.server_port}/hook"))
    broker_port, redis_port, port = free_port(), free_port(), free_port()
    broker = subprocess.Popen(
        broker_command(broker_port), stdout=open(folder / "broker.log", "ab"), stderr=subprocess.STDOUT
    )
    redis = subprocess.Popen(redis_command(redis_port, folder), stdout=subprocess.DEVNULL)
    wait_for_port(broker_port, 30, broker)
    wait_for_port(redis_port, 30, redis)
    settings = replace(
        Settings(),
        kafka=f"127.0.0.1:{broker_port}",
        redis=f"redis://127.0.0.1:{redis_port}/0",
        api_keys=("bench",),
        rebalance_timeout_s=1.0,
        rules=folder / "rules",
        data_dir=folder / "data",
        log_level="warning",
        rate_limit_per_s=0.0,
        worker_delivery=not separate,
    )
    env = dict(os.environ, **settings.environ(), PYTHONPATH=str(ROOT))
    logs = open(folder / "engine.log", "ab")
    worker = subprocess.Popen(
        [sys.executable, "-m", "engine.cli", "worker"], env=env, cwd=ROOT, stdout=logs, stderr=logs
    )
    api = subprocess.Popen(
        [sys.executable, "-m", "engine.cli", "api", "--port", str(port)], env=env, cwd=ROOT, stdout=logs, stderr=logs
    )
    processes = [api, worker]
    if separate:
        processes.append(
            subprocess.Popen(
                [sys.executable, "-m", "engine.cli", "deliver"], env=env, cwd=ROOT, stdout=logs, stderr=logs
            )
        )
    print(machine())
    print("delivery: " + ("`clickstream deliver`, a process of its own" if separate else "inside the worker"))
    print(
        f"broker, Redis, worker, API and receiver on this machine; {PER_POST} new visitors x 3 product views "
        f"+ 1 page view per POST; latency: POST of the third view -> webhook at the receiver"
    )
    try:
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}", timeout=30, headers={"Authorization": "Bearer bench"}
        ) as client:
            deadline = time.monotonic() + 90
            while True:
                try:
                    if (await client.get("/healthz")).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise SystemExit("engine not ready: " + (folder / "engine.log").read_text()[-2000:])
                await asyncio.sleep(0.3)
            await phase(client, 30, 3, arrived)  # warm-up: connections, the group join, the first fetch
            results = [
                ("light (baseline)", await phase(client, 30, 10, arrived)),
                (f"target {rate:,.0f} events/s", await phase(client, rate, seconds, arrived)),
            ]
        print(f"load average at the end: {os.getloadavg()[0]:.1f}")
    finally:
        for process in (*processes, redis, broker):
            process.terminate()
            process.wait(20)
        server.shutdown()
    print("\n| load | events/s sent | visitors entering | delivered | p50 s | p95 s | p99 s | max s |")
    print("|---|---|---|---|---|---|---|---|")
    for label, r in results:
        print(
            f"| {label} | {r['rate']:,.0f} | {r['visitors']:,} | {r['delivered']:,} | {r['p50']:.2f} | {r['p95']:.2f} | "
            f"{r['p99']:.2f} | {r['max']:.2f} |"
        )


if __name__ == "__main__":
    separate = "--separate" in sys.argv
    args = [float(a) for a in sys.argv[1:] if a != "--separate"]
    asyncio.run(main(*(args + [1000.0, 20.0][len(args) :]), separate))
