"""Where the worker's batch time goes: the batch path in one process, every handler on, timed per step.

Runs what `clickstream worker` runs for each fetch (decode, every handler of
engine.wiring.batch_handlers with the packaged demo rules: 3 segments and a
model-driven slot, the archive buffer and its sealing) over batches of the mixed
benchmark stream (benchmarks/events.py), against the real Redis, without the broker:
records are built in memory as aiokafka hands them over. Prints events/s, each
step's share of the batch time, and Redis round trips and script calls per batch.

With `--serial` the steps that usually run side by side run one after another, and
the Redis server's CPU time during each step (INFO cpu before and after it) is
printed beside its wall time: the attribution the concurrent run cannot give.

Usage: python benchmarks/worker_profile.py [N] [--batch 10000] [--cprofile] [--serial]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import io
import os
import pstats
import shutil
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from pathlib import Path

from aiokafka.structs import ConsumerRecord, TopicPartition
from redis.asyncio.connection import Connection

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.common import machine  # noqa: E402
from benchmarks.events import VISITORS, collected, make_events  # noqa: E402
from engine.rules.live import LiveRules  # noqa: E402
from engine.settings import Settings  # noqa: E402
from engine.stream import codec  # noqa: E402
from engine.stream.consumer import BatchConsumer  # noqa: E402

try:
    from engine.stream.consumer import tune_garbage_collection  # noqa: E402
except ImportError:  # an engine from before it (for a before/after run)

    def tune_garbage_collection() -> None:
        pass


from engine.wiring import batch_handlers, clear_derived_state, open_stores  # noqa: E402

PARTITIONS = 4


class Wire:
    """Counts what the client sends: writes to the socket (round trips) and script calls."""

    def __init__(self) -> None:
        self.round_trips = 0
        self.scripts = 0
        self.commands = 0
        self.names: dict[str, int] = defaultdict(int)
        send, pack = Connection.send_packed_command, Connection.pack_commands
        wire = self

        async def counted_send(conn, command, check_health=True):
            wire.round_trips += 1
            return await send(conn, command, check_health)

        def counted_pack(conn, commands):
            commands = list(commands)
            wire.commands += len(commands)
            for c in commands:
                wire.names[c[0] if isinstance(c[0], str) else c[0].decode()] += 1
            wire.scripts += sum(1 for c in commands if c and c[0] in ("EVALSHA", b"EVALSHA", "EVAL"))
            return pack(conn, commands)

        Connection.send_packed_command = counted_send
        Connection.pack_commands = counted_pack
        self.restore = lambda: (
            setattr(Connection, "send_packed_command", send),
            setattr(Connection, "pack_commands", pack),
        )


class GcTime:
    """A gc callback: the time spent in collections, and how many of each generation."""

    def __init__(self) -> None:
        self.seconds, self.runs, self._start = 0.0, [0, 0, 0], 0.0

    def __call__(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._start = time.perf_counter()
        else:
            self.seconds += time.perf_counter() - self._start
            self.runs[info["generation"]] += 1


async def redis_usec(redis) -> dict[str, int]:
    """Redis' own time per command (INFO commandstats; the server is shared, so an upper bound)."""
    stats = await redis.info("commandstats")
    return {name.removeprefix("cmdstat_"): int(row["usec"]) for name, row in stats.items()}


async def redis_cpu_usec(redis) -> float:
    """The Redis server's CPU time so far (a script's inner commands are not counted twice, as in commandstats)."""
    cpu = await redis.info("cpu")
    return (float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"])) * 1e6


def timed(name: str, fn, spent: dict, redis_spent: dict | None = None, redis=None, wire=None, sent=None):
    """`fn`, adding its wall time to spent[name] (and, given `redis`, Redis' CPU time to redis_spent[name]
    and the commands it sent, by name, to sent[name])."""

    async def probe() -> float:
        usec = await redis_cpu_usec(redis)
        if wire is not None:
            wire.round_trips -= 1  # the probe's own: not the step's
        return usec

    async def wrapper(*args):
        before = await probe() if redis is not None else 0
        names = dict(wire.names) if wire is not None else {}
        started = time.perf_counter()
        try:
            return await fn(*args)
        finally:
            spent[name] += time.perf_counter() - started
            if redis is not None:
                redis_spent[name] += await probe() - before
            if wire is not None:
                for command, count in wire.names.items():
                    if command != "INFO" and count > names.get(command, 0):
                        sent[name][command] += count - names.get(command, 0)

    return wrapper


def records_of(events: list[dict], offsets: dict[int, int]) -> dict:
    fetched: dict[TopicPartition, list] = defaultdict(list)
    for event in events:
        partition = hash(event["visitor_id"]) % PARTITIONS
        tp = TopicPartition("bench", partition)
        value = codec.encode(event)
        offset = offsets[partition]
        offsets[partition] += 1
        fetched[tp].append(
            ConsumerRecord(
                "bench", partition, offset, 0, 0, event["visitor_id"].encode(), value, None, 36, len(value), ()
            )
        )
    return fetched


async def run(n: int, batch: int, profile: bool, redis_url: str, serial: bool = False) -> dict:
    tag = uuid.uuid4().hex[:6]
    data = Path(tempfile.mkdtemp(prefix="worker-profile-"))
    settings = Settings(redis=redis_url, redis_prefix=f"wp{tag}", data_dir=data, topic="bench", log_level="warning")
    stores = open_stores(settings, profile_cache=settings.profile_cache_size)
    rules = LiveRules(settings.rules, half_life_days=settings.interest_half_life_days)
    rules.refresh()
    handlers = batch_handlers(settings, stores, rules)
    processor = handlers[0]
    spent: dict[str, float] = defaultdict(float)
    redis_spent: dict[str, float] = defaultdict(float)  # Redis' CPU usec, with --serial
    sent: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))  # commands by step, with --serial
    wire = Wire()
    attribute = {"redis_spent": redis_spent, "redis": stores.redis, "wire": wire, "sent": sent} if serial else {}

    def step_name(step) -> str:
        return type(step).__name__ if not hasattr(step, "__self__") else step.__name__

    processor.store.apply_batch = timed("profiles: read, fold, commit", processor.store.apply_batch, spent, **attribute)
    processor.people.link = timed("identity links", processor.people.link, spent, **attribute)
    processor.orders.mark = timed("order trust", processor.orders.mark, spent, **attribute)
    # Steps beside the ordered ones run concurrently with them: their times overlap (getattr: an engine from
    # before them, for a before/after run, has none). With --serial they run after the ordered ones.
    processor_beside = getattr(processor, "beside_batch", None) or []
    if serial:
        processor.after_batch = processor.after_batch + processor_beside
        processor_beside = processor.beside_batch = []
    processor.after_batch = [timed(step_name(step), step, spent, **attribute) for step in processor.after_batch]
    if processor_beside:
        processor.beside_batch = [timed(f"{step_name(step)} (beside)", step, spent) for step in processor_beside]
    if getattr(processor, "after_all", None):
        processor.after_all = [timed(step_name(step), step, spent, **attribute) for step in processor.after_all]
    for n_handler, handler in enumerate(handlers[1:], 1):  # an engine from before after_all: credit was one
        handlers[n_handler] = timed(step_name(handler), handler, spent, **attribute)
    from engine.stream.archive import open_archive

    consumer = BatchConsumer(settings, handlers, archive=open_archive(settings))
    tune_garbage_collection()  # as the worker does once started
    # the stream's events, each visitor's in order, timed a month before now so segments see them
    now_ms = int(time.time() * 1000)
    events = collected(make_events(n + batch, tag, now_ms=now_ms - n - batch - 60_000))
    offsets = defaultdict(int)
    warm, rest = events[:batch], events[batch:]
    try:
        await consumer._handle(records_of(warm, offsets), lambda: False)  # first sight of every visitor
        spent.clear()
        redis_spent.clear()
        sent.clear()
        fetches = [records_of(rest[i : i + batch], offsets) for i in range(0, len(rest), batch)]
        wire.round_trips = wire.scripts = wire.commands = 0
        wire.names.clear()
        redis_before = await redis_usec(stores.redis)
        profiler = cProfile.Profile() if profile else None
        collecting = GcTime()
        gc.callbacks.append(collecting)
        started, cpu = time.perf_counter(), time.process_time()
        seal_s = 0.0
        if profiler:
            profiler.enable()
        for fetched in fetches:
            await consumer._handle(fetched, lambda: False)
            if consumer.writer.due() or fetched is fetches[-1]:  # as the worker: every 10 s or 50,000 events
                sealing = time.perf_counter()
                consumer.writer.seal("bench-log")
                seal_s += time.perf_counter() - sealing
        if profiler:
            profiler.disable()
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
        gc.callbacks.remove(collecting)
        redis_after = await redis_usec(stores.redis)
    finally:
        wire.restore()
        await clear_derived_state(stores, settings)
        keys = [k async for k in stores.redis.scan_iter(match=f"wp{tag}*", count=5000)]
        for i in range(0, len(keys), 5000):
            await stores.redis.unlink(*keys[i : i + 5000])
        await stores.close()
        shutil.rmtree(data, ignore_errors=True)
    handled = sum(v for k, v in spent.items() if not k.endswith("(beside)"))  # overlapping ones aside
    spent["archive: seal"] = seal_s
    spent["decode, archive buffer, the rest"] = elapsed - handled - seal_s
    out = {
        "events_per_s": n / elapsed,
        "elapsed": elapsed,
        "per_cpu_s": n / cpu,
        "gc_s": collecting.seconds,
        "gc_runs": collecting.runs,
        "spent": dict(spent),
        "redis_spent": {k: v / 1000 / len(fetches) for k, v in redis_spent.items()},
        "sent": {k: {c: n / len(fetches) for c, n in v.items()} for k, v in sent.items()},
        "batches": len(fetches),
        "redis_ms": {
            k: (redis_after.get(k, 0) - v) / 1000 / len(fetches)
            for k, v in redis_before.items()
            if redis_after.get(k, 0) - v > 0
        },
        "round_trips": wire.round_trips / len(fetches),
        "scripts": wire.scripts / len(fetches),
        "commands": wire.commands / len(fetches),
        "by_name": {k: v / len(fetches) for k, v in sorted(wire.names.items(), key=lambda kv: -kv[1])},
    }
    if profiler:
        text = io.StringIO()
        stats = pstats.Stats(profiler, stream=text)
        stats.sort_stats("tottime").print_stats(30)
        if os.environ.get("WORKER_PROFILE_DUMP"):
            profiler.dump_stats(os.environ["WORKER_PROFILE_DUMP"])
        stats.sort_stats("cumulative").print_stats("engine", 30)
        out["profile"] = text.getvalue()
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("n", type=int, nargs="?", default=100_000)
    parser.add_argument(
        "--batch", type=int, default=Settings().batch_size, help="events per fetch (default: the worker's)"
    )
    parser.add_argument("--cprofile", action="store_true")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--serial", action="store_true", help="every step in turn, with its share of Redis' own time")
    args = parser.parse_args()
    print(f"machine: {machine()}")
    print(
        f"data: {args.n:,} mixed events ({VISITORS:,} visitors), batches of {args.batch:,}, demo rules "
        f"(3 segments, a model slot), archive on, Redis on the same machine"
    )
    out = asyncio.run(run(args.n, args.batch, args.cprofile, args.redis, args.serial))
    print(
        f"batch path: {out['events_per_s']:,.0f} events/s ({out['elapsed']:.2f} s); "
        f"{out['per_cpu_s']:,.0f} events per CPU second of this process (Redis not included)"
    )
    print(
        f"per batch: {out['round_trips']:.1f} Redis round trips, {out['scripts']:.1f} script calls, "
        f"{out['commands']:.1f} commands ("
        + ", ".join(f"{k} {v:.0f}" for k, v in list(out["by_name"].items())[:6])
        + ")"
    )
    print(
        f"garbage collection: {out['gc_s'] / out['batches'] * 1000:.1f} ms per batch "
        f"({100 * out['gc_s'] / out['elapsed']:.1f}%), collections by generation {out['gc_runs']}"
    )
    busiest = sorted(out["redis_ms"].items(), key=lambda kv: -kv[1])[:6]
    print(
        f"Redis' own time per batch: {sum(out['redis_ms'].values()):.1f} ms ("
        + ", ".join(f"{k} {v:.1f}" for k, v in busiest)
        + ")"
    )
    total = out["elapsed"]
    for name, seconds in sorted(out["spent"].items(), key=lambda kv: -kv[1]):
        redis_ms = out["redis_spent"].get(name)
        in_redis = f"  (Redis CPU {redis_ms:6.1f} ms)" if redis_ms is not None else ""
        commands = sorted(out["sent"].get(name, {}).items(), key=lambda kv: -kv[1])
        if commands:
            in_redis += "  " + ", ".join(f"{c} {n:.0f}" for c, n in commands[:4])
        print(f"  {name:<40} {seconds / out['batches'] * 1000:8.1f} ms/batch  {100 * seconds / total:5.1f}%{in_redis}")
    if "profile" in out:
        print(out["profile"])


if __name__ == "__main__":
    main()
