"""An erasure's segment notice on a Redis holding many keys: the list of segment names against a SCAN.

Writes K filler keys and S segment sets (P members each) under a key prefix of its own in the
shared Redis, then removes E people from every set, twice, taking turns:
  list   SegmentIndex.remove_person as served: the sets named by {prefix}:segnames
  scan   the same script over the sets a SCAN of the keyspace finds (how the sets were found before)
Prints the machine, the sizes and the time per erasure; the keys are deleted after.

Usage: python benchmarks/erasure_notice.py [K] [E]   (default 200000 200)
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from benchmarks.common import machine
from engine.profiles.segments_index import SegmentIndex

SEGMENTS, MEMBERS = 20, 1000


class ScanningIndex(SegmentIndex):
    """The sets found by a SCAN of the whole keyspace, as before the list of names."""

    async def segment_keys(self) -> list[bytes]:
        return [key async for key in self.redis.scan_iter(match=f"{self.prefix}:seg:*", count=1000)]


async def fill(redis, prefix: str, filler: int) -> list[str]:
    async with redis.pipeline(transaction=False) as pipe:
        for n in range(filler):
            pipe.set(f"{prefix}:{{v:filler-{n}}}:p", b"x")
            if n % 10_000 == 9_999:
                await pipe.execute()
        await pipe.execute()
    index = SegmentIndex(redis, prefix)
    people = [f"person-{n}" for n in range(MEMBERS)]
    names = [f"segment-{s}" for s in range(SEGMENTS)]
    await index.update({p: {name: 1.0 for name in names} for p in people}, names, emit=False)
    return people


async def erase(index: SegmentIndex, people: list[str]) -> list[float]:
    times = []
    for person in people:
        started = time.perf_counter()
        await index.remove_person(person)
        times.append((time.perf_counter() - started) * 1000)
    return times


async def main(filler: int, erasures: int) -> None:
    from redis.asyncio import Redis

    redis = Redis.from_url("redis://127.0.0.1:6379/0")
    prefix = f"bench-erase-{uuid.uuid4().hex[:6]}"
    print(machine())
    try:
        people = await fill(redis, prefix, filler)
        total = await redis.dbsize()
        print(f"{filler:,} filler keys of this run, {total:,} keys in Redis, {SEGMENTS} segment sets of {MEMBERS:,}")
        ways = {"list": SegmentIndex(redis, prefix), "scan": ScanningIndex(redis, prefix)}
        results: dict[str, list[float]] = {way: [] for way in ways}
        rounds = 2
        per_round = erasures // (rounds * len(ways))
        queue = iter(people)
        for _ in range(rounds):
            for way, index in ways.items():
                results[way] += await erase(index, [next(queue) for _ in range(per_round)])
        for way, times in results.items():
            times.sort()
            print(
                f"{way}: {len(times)} erasures, per erasure p50 {statistics.median(times):.2f} ms, "
                f"p95 {times[int(len(times) * 0.95) - 1]:.2f} ms"
            )
        ratio = statistics.median(results["scan"]) / statistics.median(results["list"])
        print(f"scan / list at the median: {ratio:.0f}x")
    finally:
        keys = [key async for key in redis.scan_iter(match=f"{prefix}:*", count=5000)]
        for start in range(0, len(keys), 10_000):
            await redis.delete(*keys[start : start + 10_000])
        await redis.aclose()


if __name__ == "__main__":
    args = [int(a) for a in sys.argv[1:]]
    asyncio.run(main(*(args + [200_000, 200][len(args) :])))
