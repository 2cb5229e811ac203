"""Profiles in Redis, written once per event_id.

One hash per profile, its id as hash tag so a cluster keeps it on one slot:
    {prefix}:{<id>}:p   v = version, d = msgpack profile,
                        s = the 8-byte hashes of its last SEEN_KEPT event_ids

A batch costs two round trips, whatever its size. The first reads every profile
(version, data, seen ids); pure code drops the events already seen and folds the
rest; then a script writes each profile only if its version is still the one read
and none of the new event_ids is among its seen ids, appending them. So the
duplicate check and the update are one atomic step per profile; a profile changed
in between (a replay, a worker that took over a partition) is re-read and folded
again.

Keeping the seen ids inside the profile's own hash (not a set beside it) halves
the keys and arguments per profile, which is what limits a Python worker, and
keeps a small profile small. Redeliveries and tracker retries are recent, so the
last SEEN_KEPT ids per profile are enough; a replay starts from empty state.

Scripts take many profiles per call. On Redis Cluster a script may only touch one
slot, so `cluster=True` groups profiles by slot instead: same scripts, more calls.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
from collections import defaultdict
from typing import Callable, Iterable

import msgpack
from redis.asyncio import Redis
from redis.cluster import key_slot

from engine.profiles import model

SEEN_KEPT = 2048
ID_BYTES = 8

# KEYS: profiles. Returns per profile: version, data, seen ids.
READ = """
local out = {}
for k = 1, #KEYS do out[k] = redis.call('HMGET', KEYS[k], 'v', 'd', 's') end
return out
"""

# KEYS: profiles.  ARGV[1]: msgpack array, per profile: version, blob, new ids
# (concatenated 8-byte hashes); one argument instead of three per profile keeps
# the client's command packing cheap.
# Returns one character per profile: 1 written, 0 conflict (changed, or an id already seen).
COMMIT = """
local args = cmsgpack.unpack(ARGV[1])
local out, a, keep = {}, 1, %d
for k = 1, #KEYS do
  local version, blob, ids = args[a], args[a + 1], args[a + 2]
  local row = redis.call('HMGET', KEYS[k], 'v', 's')
  local ok = (row[1] or '0') == version
  local seen = row[2] or ''
  if ok and #seen > 0 then
    for i = 1, #ids, 8 do
      local id, from = string.sub(ids, i, i + 7), 1
      while ok do
        local at = string.find(seen, id, from, true)
        if not at then break end
        if at %% 8 == 1 then ok = false end
        from = at + 1
      end
      if not ok then break end
    end
  end
  if ok then
    seen = seen .. ids
    if #seen > keep * 8 then seen = string.sub(seen, -keep * 8) end
    redis.call('HSET', KEYS[k], 'v', tonumber(version) + 1, 'd', blob, 's', seen)
    out[#out + 1] = '1'
  else
    out[#out + 1] = '0'
  end
  a = a + 3
end
return table.concat(out)
""" % SEEN_KEPT

MAX_ATTEMPTS = 12
PROFILES_PER_CALL = 500  # bounds how long one script holds Redis


def event_hash(event_id: str) -> bytes:
    """Fixed-size stand-in for an event_id (collisions at 2^-64 per pair are negligible)."""
    return hashlib.blake2b(event_id.encode(), digest_size=ID_BYTES).digest()


def seen_hashes(packed: bytes | None) -> set[bytes]:
    if not packed:
        return set()
    return {packed[i : i + ID_BYTES] for i in range(0, len(packed), ID_BYTES)}


class ProfileStore:
    def __init__(self, redis: Redis, prefix: str = "cs", cluster: bool = False) -> None:
        self.redis = redis
        self.prefix = prefix
        self.cluster = cluster
        self._read = redis.register_script(READ)
        self._commit = redis.register_script(COMMIT)

    def profile_key(self, profile_id: str) -> str:
        return f"{self.prefix}:{{{profile_id}}}:p"

    async def get(self, profile_id: str) -> dict | None:
        data = await self.redis.hget(self.profile_key(profile_id), "d")
        return None if data is None else msgpack.unpackb(data, raw=False)

    def _chunks(self, ids: list[str]) -> list[list[str]]:
        if self.cluster:
            by_slot: dict[int, list[str]] = defaultdict(list)
            for profile_id in ids:
                by_slot[key_slot(self.profile_key(profile_id).encode())].append(profile_id)
            return list(by_slot.values())
        return [ids[i : i + PROFILES_PER_CALL] for i in range(0, len(ids), PROFILES_PER_CALL)]

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
        ids = list(pending)
        read_chunks = self._chunks(ids)
        async with self.redis.pipeline(transaction=False) as pipe:
            for chunk in read_chunks:
                await self._read(keys=[self.profile_key(vid) for vid in chunk], client=pipe)
            rows = [row for reply in await pipe.execute() for row in reply]
        ids = [vid for chunk in read_chunks for vid in chunk]

        writes: dict[str, tuple[bytes, bytes, bytes, int]] = {}
        for vid, (version, data, seen_packed) in zip(ids, rows):
            seen = seen_hashes(seen_packed)
            fresh, fresh_hashes = [], []
            for event in pending[vid]:
                h = event_hash(event["event_id"])
                if h not in seen:
                    seen.add(h)
                    fresh.append(event)
                    fresh_hashes.append(h)
            if fresh:
                profile = msgpack.unpackb(data, raw=False) if data else model.new_profile(vid)
                fold(profile, fresh)
                writes[vid] = (version or b"0", msgpack.packb(profile), b"".join(fresh_hashes), len(fresh))
        if not writes:
            return [], 0

        chunks = self._chunks(list(writes))
        async with self.redis.pipeline(transaction=False) as pipe:
            for chunk in chunks:
                args: list = []
                for vid in chunk:
                    args += writes[vid][:3]
                packed = msgpack.packb(args, use_bin_type=False)  # Redis' cmsgpack reads str, not bin
                await self._commit(keys=[self.profile_key(vid) for vid in chunk], args=[packed], client=pipe)
            results = await pipe.execute()
        conflicts, applied = [], 0
        for chunk, flags in zip(chunks, results):
            for vid, flag in zip(chunk, flags.decode()):
                if flag == "1":
                    applied += writes[vid][3]
                else:
                    conflicts.append(vid)
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
        """Delete every profile (replay rebuilds them)."""
        removed = 0
        for pattern in (f"{self.prefix}:{{*}}:p",):
            batch = []
            async for key in self.redis.scan_iter(match=pattern, count=1000):
                batch.append(key)
                if len(batch) >= 1000:
                    removed += await self.redis.unlink(*batch)
                    batch = []
            if batch:
                removed += await self.redis.unlink(*batch)
        return removed
