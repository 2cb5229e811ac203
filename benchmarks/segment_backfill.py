"""Backfill of a new segment over N stored profiles, against the naive path in the same run.

N anonymous profiles (3 to 6 product views each, over the last 10 days, mixed
categories) are written to the shared Redis under a key prefix of their own; then:
  backfill   engine.profiles.backfill: profiles read in chunks of 500 (one round trip each),
             memberships of the new segment written by one script per person, pipelined
  naive      the per-person path (SegmentEvaluator.reevaluate: one read per person), on the
             first M profiles only (it is the slow one), figures per profile
Prints the machine, N, the time and the segment's size; the keys are deleted after.

Usage: python benchmarks/segment_backfill.py [N] [M]   (default 100000 10000)
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from benchmarks.common import machine
from engine.profiles.backfill import SegmentBackfill
from engine.profiles.derived import SegmentEvaluator
from engine.profiles.model import DAY_MS, fold, new_profile
from engine.profiles.people import People
from engine.profiles.segments_index import SegmentIndex
from engine.profiles.store import ProfileStore, pack_profile
from engine.profiles.value_store import ValueStore
from engine.rules.ruleset import build_ruleset

SEGMENT = b"""\
segments:
  - name: shoe-lovers
    when: {history: {event: product_view, category: shoes, min: 3, days: 7}}
    score: {interest: shoes}
"""


class Rules:
    def __init__(self, rs):
        self.current = rs


def profile(vid: str, n: int, now: int) -> dict:
    cats = ("shoes", "hats", "bags")
    events = [
        {
            "event_id": f"{vid}-{i}",
            "type": "product_view",
            "visitor_id": vid,
            "session_id": "s",
            "ts": now - ((n * 7 + i * 3) % 10) * DAY_MS - i,
            "props": {"product": {"id": f"p{i}", "category": cats[(n + i) % 3 if i % 2 else 0]}},
        }
        for i in range(3 + n % 4)
    ]
    return fold(new_profile(vid), events)


async def main(n: int, m: int) -> None:
    from redis.asyncio import Redis

    redis = Redis.from_url(os.environ.get("CLICKSTREAM_REDIS", "redis://127.0.0.1:6379/0"))
    prefix = f"bench{uuid.uuid4().hex[:8]}"
    store = ProfileStore(redis, prefix)
    now = int(time.time() * 1000)
    rules = Rules(build_ruleset([("s.yaml", SEGMENT)], half_life_days=14.0))
    index = SegmentIndex(redis, prefix)

    async def clock():
        return now

    evaluator = SegmentEvaluator(People(redis, store), ValueStore(redis, store, 14.0), index, rules, 14.0, clock=clock)
    print(machine())
    try:
        started = time.perf_counter()
        ids = [str(uuid.uuid4()) for _ in range(n)]
        for start in range(0, n, 2000):
            async with redis.pipeline(transaction=False) as pipe:
                for i, vid in enumerate(ids[start : start + 2000], start):
                    pipe.hset(store.profile_key(vid), mapping={"v": b"x", "d": pack_profile(profile(vid, i, now))})
                await pipe.execute()
        print(f"wrote {n:,} profiles in {time.perf_counter() - started:.1f}s")

        naive_n = min(m, n)
        started = time.perf_counter()
        for start in range(0, naive_n, 500):
            await evaluator.reevaluate(ids[start : start + 500], reason="backfill", emit=False)
        naive_s = time.perf_counter() - started
        naive_size = await redis.zcard(index.key("shoe-lovers"))
        await index.clear()

        backfill = SegmentBackfill(evaluator)
        started = time.perf_counter()
        evaluated = await backfill.run_once()
        backfill_s = time.perf_counter() - started
        size = await redis.zcard(index.key("shoe-lovers"))
        print(
            f"backfill: {evaluated:,} profiles in {backfill_s:.2f}s ({evaluated / backfill_s:,.0f}/s), "
            f"segment size {size:,}"
        )
        print(
            f"naive (one read per person): {naive_n:,} profiles in {naive_s:.2f}s ({naive_n / naive_s:,.0f}/s), "
            f"size {naive_size:,} of them; backfill is {(evaluated / backfill_s) / (naive_n / naive_s):.1f}x faster per profile"
        )
    finally:
        keys = [k async for k in redis.scan_iter(match=f"{prefix}:*", count=5000)]
        for start in range(0, len(keys), 5000):
            await redis.delete(*keys[start : start + 5000])
        await redis.aclose()


if __name__ == "__main__":
    args = [int(a) for a in sys.argv[1:]]
    asyncio.run(main(*(args + [100_000, 10_000][len(args) :])))
