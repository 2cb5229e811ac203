"""Profiles in Redis, written once per event_id.

Layout, one hash tag per profile so a cluster keeps its keys on one slot:
    {prefix}:{<id>}:p      hash  v = version, d = msgpack profile
    {prefix}:{<id>}:seen   set   62-bit hashes of the event_ids already applied

A batch costs two round trips, whatever its size: one pipeline reads every
profile and which event_ids it has seen; pure code folds the new events; one
pipeline of a small Lua script per profile writes it back. The script checks
the version it was read at and that none of the event_ids is in `seen`, then
writes the profile and marks the ids, atomically. So the duplicate check and
the update are one step; a profile changed in between (a replay, a worker that
took over a partition) is re-read and folded again.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
from collections import defaultdict
from typing import Callable, Iterable

import msgpack
from redis.asyncio import Redis

from engine.profiles import model

COMMIT = """
local current = redis.call('HGET', KEYS[1], 'v') or '0'
if current ~= ARGV[1] then return 0 end
local n = tonumber(ARGV[4])
if n > 0 then
  local seen = redis.call('SMISMEMBER', KEYS[2], unpack(ARGV, 5, 4 + n))
  for i = 1, n do if seen[i] == 1 then return 0 end end
  redis.call('SADD', KEYS[2], unpack(ARGV, 5, 4 + n))
  redis.call('EXPIRE', KEYS[2], ARGV[3])
end
redis.call('HSET', KEYS[1], 'v', tonumber(ARGV[1]) + 1, 'd', ARGV[2])
return 1
"""

MAX_ATTEMPTS = 12


def event_hash(event_id: str) -> int:
    """Small integer stand-in for an event_id: Redis keeps sets of these as compact intsets."""
    return int.from_bytes(hashlib.blake2b(event_id.encode(), digest_size=8).digest(), "big") >> 2


class ProfileStore:
    def __init__(self, redis: Redis, prefix: str = "cs", dedup_ttl_s: int = 30 * 86400) -> None:
        self.redis = redis
        self.prefix = prefix
        self.dedup_ttl_s = dedup_ttl_s
        self._commit = redis.register_script(COMMIT)

    def profile_key(self, profile_id: str) -> str:
        return f"{self.prefix}:{{{profile_id}}}:p"

    def seen_key(self, profile_id: str) -> str:
        return f"{self.prefix}:{{{profile_id}}}:seen"

    async def get(self, profile_id: str) -> dict | None:
        data = await self.redis.hget(self.profile_key(profile_id), "d")
        return None if data is None else msgpack.unpackb(data, raw=False)

    async def apply(self, events: Iterable[dict], fold: Callable[[dict, list[dict]], dict] = model.fold) -> int:
        """Fold a batch into the profiles; returns how many events were new."""
        pending: dict[str, list[dict]] = defaultdict(list)
        for event in events:
            pending[event["visitor_id"]].append(event)
        applied = 0
        for attempt in range(MAX_ATTEMPTS):
            conflicts, count = await self._apply_once(pending, fold)
            applied += count
            pending = {vid: pending[vid] for vid in conflicts}
            if not pending:
                return applied
            await asyncio.sleep(random.uniform(0, 0.002 * 2**attempt))
        raise RuntimeError(f"profiles kept changing under the worker: {sorted(pending)[:5]}")

    async def _apply_once(self, pending: dict[str, list[dict]], fold) -> tuple[list[str], int]:
        visitors = list(pending)
        hashes = {vid: [event_hash(e["event_id"]) for e in pending[vid]] for vid in visitors}
        async with self.redis.pipeline(transaction=False) as pipe:
            for vid in visitors:
                pipe.hmget(self.profile_key(vid), "v", "d")
                pipe.smismember(self.seen_key(vid), hashes[vid])
            replies = await pipe.execute()

        writes = []
        for i, vid in enumerate(visitors):
            (version, data), seen = replies[2 * i], replies[2 * i + 1]
            fresh, fresh_hashes, batch_seen = [], [], set()
            for event, h, was_seen in zip(pending[vid], hashes[vid], seen):
                if was_seen or h in batch_seen:
                    continue
                batch_seen.add(h)
                fresh.append(event)
                fresh_hashes.append(h)
            if not fresh:
                continue
            profile = msgpack.unpackb(data, raw=False) if data else model.new_profile(vid)
            fold(profile, fresh)
            writes.append((vid, version or b"0", msgpack.packb(profile), fresh_hashes, len(fresh)))

        if not writes:
            return [], 0
        async with self.redis.pipeline(transaction=False) as pipe:
            for vid, version, blob, fresh_hashes, _ in writes:
                await self._commit(
                    keys=[self.profile_key(vid), self.seen_key(vid)],
                    args=[version, blob, self.dedup_ttl_s, len(fresh_hashes), *fresh_hashes],
                    client=pipe,
                )
            results = await pipe.execute()
        conflicts = [w[0] for w, ok in zip(writes, results) if not ok]
        applied = sum(w[4] for w, ok in zip(writes, results) if ok)
        return conflicts, applied

    async def scan_ids(self) -> list[str]:
        """Every profile id in the store (for replay and exports)."""
        ids = []
        pattern = f"{self.prefix}:{{*}}:p"
        async for key in self.redis.scan_iter(match=pattern, count=1000):
            key = key.decode() if isinstance(key, bytes) else key
            ids.append(key[len(self.prefix) + 2 : -3])
        return ids

    async def clear_all(self) -> int:
        """Delete every profile and its dedup set (replay rebuilds them)."""
        removed = 0
        for pattern in (f"{self.prefix}:{{*}}:p", f"{self.prefix}:{{*}}:seen"):
            batch = []
            async for key in self.redis.scan_iter(match=pattern, count=1000):
                batch.append(key)
                if len(batch) >= 1000:
                    removed += await self.redis.unlink(*batch)
                    batch = []
            if batch:
                removed += await self.redis.unlink(*batch)
        return removed
