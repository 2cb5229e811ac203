"""Profiles in Redis, written once per event_id.

One hash per visitor id, the id as hash tag so a cluster keeps it on one slot:
    {prefix}:{v:<id>}:p  v = version (a random token per write), d = compressed msgpack profile,
                         s = the 8-byte hashes of its last SEEN_KEPT event_ids,
                         prefs = the visitor's own choices (written by the API),
                         t = tombstone: the profile was erased; its events are dropped,
                             and a replay does not bring it back
Anonymous profiles expire after the retention period; identified ones are kept.

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
import logging
import os
import random
from collections import OrderedDict
from pathlib import Path
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Callable, Iterable

import msgpack
import zstandard
from redis.asyncio import Redis
from redis.cluster import key_slot

from engine.profiles import model

log = logging.getLogger("engine.profiles")

SEEN_KEPT = 2048
ID_BYTES = 8

# KEYS: profiles.  ARGV: the version the worker holds in memory per profile ('' if none).
# Returns per profile: version, data (omitted when the worker's copy is current), seen ids, tombstone.
READ = """
local out = {}
for k = 1, #KEYS do
  local row = redis.call('HMGET', KEYS[k], 'v', 's', 't')
  local data = false
  if row[1] ~= ARGV[k] then data = redis.call('HGET', KEYS[k], 'd') end
  out[k] = {row[1], data, row[2], row[3]}
end
return out
"""

# KEYS: profiles.  ARGV[1]: msgpack array, per profile: version read, new version,
# blob, new ids (concatenated 8-byte hashes), ttl in seconds (0: keep); one argument
# instead of five per profile keeps the client's command packing cheap.
# Returns one character per profile: 1 written, 0 conflict (changed, or an id
# already seen), 2 erased (tombstone: nothing written).
COMMIT = """
local args = cmsgpack.unpack(ARGV[1])
local out, a, keep = {}, 1, %d
for k = 1, #KEYS do
  local version, new_version, blob, ids, ttl = args[a], args[a + 1], args[a + 2], args[a + 3], tonumber(args[a + 4])
  local row = redis.call('HMGET', KEYS[k], 'v', 's', 't')
  local ok = (row[1] or '') == version
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
  if row[3] then
    out[#out + 1] = '2'
  elseif ok then
    seen = seen .. ids
    if #seen > keep * 8 then seen = string.sub(seen, -keep * 8) end
    redis.call('HSET', KEYS[k], 'v', new_version, 'd', blob, 's', seen)
    if ttl > 0 then redis.call('EXPIRE', KEYS[k], ttl) else redis.call('PERSIST', KEYS[k]) end
    out[#out + 1] = '1'
  else
    out[#out + 1] = '0'
  end
  a = a + 5
end
return table.concat(out)
""" % SEEN_KEPT

MAX_ATTEMPTS = 12
PROFILES_PER_CALL = 500  # bounds how long one script holds Redis


ERASE = """
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 't', ARGV[1])
return 1
"""


class _StaleCopy(Exception):
    """The worker's in-memory copy cannot be trusted any more; read the profile again."""


@dataclass
class BatchResult:
    applied: int = 0
    failed: int = 0
    profiles: dict[str, dict | None] = field(default_factory=dict)  # visitor id -> profile now (None: erased)


ZDICT_V1 = b"\x01"  # blob compressed with profile-v1.zdict; never the first byte of a msgpack map
_zdict = zstandard.ZstdCompressionDict((Path(__file__).parent / "profile-v1.zdict").read_bytes())
_compress = zstandard.ZstdCompressor(level=1, dict_data=_zdict, write_content_size=True).compress
_decompress = zstandard.ZstdDecompressor(dict_data=_zdict).decompress


def pack_profile(profile: dict) -> bytes:
    """msgpack, compressed with a dictionary of the profile's own structure (about 5x smaller)."""
    return ZDICT_V1 + _compress(msgpack.packb(profile))


def unpack_profile(blob: bytes) -> dict:
    if blob[:1] == ZDICT_V1:
        blob = _decompress(blob[1:])
    return msgpack.unpackb(blob, raw=False)


def event_hash(event_id: str) -> bytes:
    """Fixed-size stand-in for an event_id (collisions at 2^-64 per pair are negligible)."""
    return hashlib.blake2b(event_id.encode(), digest_size=ID_BYTES).digest()


def seen_hashes(packed: bytes | None) -> set[bytes]:
    if not packed:
        return set()
    return {packed[i : i + ID_BYTES] for i in range(0, len(packed), ID_BYTES)}


class ProfileStore:
    def __init__(self, redis: Redis, prefix: str = "cs", cluster: bool = False, anonymous_ttl_s: int = 0,
                 cache_size: int = 0) -> None:
        self.redis = redis
        # The worker keeps the profiles it wrote last, with their version: while Redis
        # still holds that version, the read skips the data and the decode.
        self.cache: OrderedDict[str, tuple[bytes, dict]] = OrderedDict()
        self.cache_size = cache_size
        self.prefix = prefix
        self.cluster = cluster
        self.anonymous_ttl_s = anonymous_ttl_s
        self._read = redis.register_script(READ)
        self._commit = redis.register_script(COMMIT)
        self._erase = redis.register_script(ERASE)

    def profile_key(self, profile_id: str) -> str:
        return f"{self.prefix}:{{v:{profile_id}}}:p"

    async def get(self, profile_id: str) -> dict | None:
        data = await self.redis.hget(self.profile_key(profile_id), "d")
        return None if data is None else unpack_profile(data)

    async def get_with_preferences(self, profile_id: str) -> tuple[dict | None, bytes | None]:
        """The profile and the visitor's own preferences, in one round trip."""
        data, preferences = await self.redis.hmget(self.profile_key(profile_id), ["d", "prefs"])
        return (None if data is None else unpack_profile(data)), preferences

    async def get_many(self, profile_ids: list[str]) -> dict[str, dict]:
        """The profiles that exist among profile_ids, in one round trip."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for profile_id in profile_ids:
                pipe.hget(self.profile_key(profile_id), "d")
            blobs = await pipe.execute()
        return {pid: unpack_profile(blob) for pid, blob in zip(profile_ids, blobs) if blob}

    async def erase(self, profile_id: str, now_ms: int) -> None:
        """Delete the profile and leave a tombstone, so neither the stream nor a replay brings it back."""
        await self._erase(keys=[self.profile_key(profile_id)], args=[now_ms])

    async def is_erased(self, profile_id: str) -> bool:
        return bool(await self.redis.hexists(self.profile_key(profile_id), "t"))

    async def set_preferences(self, profile_id: str, preferences: bytes) -> None:
        await self.redis.hset(self.profile_key(profile_id), "prefs", preferences)

    async def get_preferences(self, profile_id: str) -> bytes | None:
        return await self.redis.hget(self.profile_key(profile_id), "prefs")

    def _chunks(self, ids: list[str]) -> list[list[str]]:
        if self.cluster:
            by_slot: dict[int, list[str]] = defaultdict(list)
            for profile_id in ids:
                by_slot[key_slot(self.profile_key(profile_id).encode())].append(profile_id)
            return list(by_slot.values())
        return [ids[i : i + PROFILES_PER_CALL] for i in range(0, len(ids), PROFILES_PER_CALL)]

    async def apply(self, events: Iterable[dict], fold: Callable[[dict, list[dict]], dict] = model.fold) -> int:
        """Fold a batch into the profiles; returns how many events were new."""
        return (await self.apply_batch(events, fold)).applied

    async def apply_batch(self, events: Iterable[dict], fold: Callable[[dict, list[dict]], dict] = model.fold) -> BatchResult:
        pending: dict[str, list[dict]] = defaultdict(list)
        for event in events:
            pending[event["visitor_id"]].append(event)
        result = BatchResult()
        for attempt in range(MAX_ATTEMPTS):
            conflicts = await self._apply_once(pending, fold, result)
            pending = {vid: pending[vid] for vid in conflicts}
            if not pending:
                return result
            await asyncio.sleep(random.uniform(0, 0.002 * 2**attempt))
        raise RuntimeError(f"profiles kept changing under the worker: {sorted(pending)[:5]}")

    async def _apply_once(self, pending: dict[str, list[dict]], fold, result: BatchResult) -> list[str]:
        ids = list(pending)
        read_chunks = self._chunks(ids)
        cache = self.cache
        async with self.redis.pipeline(transaction=False) as pipe:
            for chunk in read_chunks:
                held = [cache[vid][0] if vid in cache else b"" for vid in chunk]
                await self._read(keys=[self.profile_key(vid) for vid in chunk], args=held, client=pipe)
            rows = [row for reply in await pipe.execute() for row in reply]
        ids = [vid for chunk in read_chunks for vid in chunk]

        writes: dict[str, tuple] = {}
        conflicts = []
        for vid, (version, data, seen_packed, tombstone) in zip(ids, rows):
            cached = cache.pop(vid, None)  # back in only once written: a failed write must not leave a folded copy
            if tombstone:
                result.profiles[vid] = None
                continue
            seen = seen_hashes(seen_packed)
            fresh, fresh_hashes = [], []
            for event in pending[vid]:
                h = event_hash(event["event_id"])
                if h not in seen:
                    seen.add(h)
                    fresh.append(event)
                    fresh_hashes.append(h)
            from_cache = not data and version is not None and cached is not None and cached[0] == version
            profile = unpack_profile(data) if data else cached[1] if from_cache else None
            if not fresh and from_cache:
                cache[vid] = cached
            if fresh:
                try:
                    profile = self._fold(fold, profile, data, vid, fresh, result)
                except _StaleCopy:
                    conflicts.append(vid)  # read again, with the data this time
                    continue
                ttl = 0 if profile.get("user_id") else self.anonymous_ttl_s
                writes[vid] = (version or b"", os.urandom(8).hex().encode(), pack_profile(profile),
                               b"".join(fresh_hashes), ttl, len(fresh), profile)
            if profile is not None:
                result.profiles[vid] = profile
        if not writes:
            return conflicts

        chunks = self._chunks(list(writes))
        async with self.redis.pipeline(transaction=False) as pipe:
            for chunk in chunks:
                args: list = []
                for vid in chunk:
                    args += writes[vid][:5]
                packed = msgpack.packb(args, use_bin_type=False)  # Redis' cmsgpack reads str, not bin
                await self._commit(keys=[self.profile_key(vid) for vid in chunk], args=[packed], client=pipe)
            results = await pipe.execute()
        for chunk, flags in zip(chunks, results):
            for vid, flag in zip(chunk, flags.decode()):
                if flag == "1":
                    result.applied += writes[vid][5]
                    if self.cache_size:
                        cache[vid] = (writes[vid][1], writes[vid][6])
                        if len(cache) > self.cache_size:
                            cache.popitem(last=False)
                elif flag == "2":
                    result.profiles[vid] = None
                else:
                    conflicts.append(vid)
        return conflicts

    @staticmethod
    def _fold(fold, profile: dict | None, data: bytes | None, vid: str, events: list[dict], result: "BatchResult") -> dict:
        """Folds the events; one that breaks the fold is skipped and counted, never a stuck stream."""
        try:
            return fold(profile or model.new_profile(vid), events)
        except Exception:
            if profile is not None and data is None:
                raise _StaleCopy() from None  # the in-memory copy was changed part way
            profile = unpack_profile(data) if data else model.new_profile(vid)
            for event in events:
                before = msgpack.packb(profile)  # a failing event may have changed part of it
                try:
                    profile = fold(profile, [event])
                except Exception as exc:
                    profile = msgpack.unpackb(before, raw=False)
                    result.failed += 1
                    log.warning("event %s (%s) of visitor %s not applied: %r",
                                event.get("event_id"), event.get("type"), vid, exc)
            return profile

    async def scan_ids(self) -> list[str]:
        """Every profile id in the store (for replay and exports)."""
        ids = []
        async for key in self.redis.scan_iter(match=f"{self.prefix}:{{v:*}}:p", count=1000):
            key = key.decode() if isinstance(key, bytes) else key
            ids.append(key[len(self.prefix) + 4 : -3])
        return ids

    async def clear_all(self) -> int:
        """Delete every profile's data for a rebuild; tombstones and the visitors' own preferences stay."""
        cleared = 0
        batch = []
        async for key in self.redis.scan_iter(match=f"{self.prefix}:{{v:*}}:p", count=1000):
            batch.append(key)
            if len(batch) >= 1000:
                cleared += await self._clear(batch)
                batch = []
        if batch:
            cleared += await self._clear(batch)
        return cleared

    async def _clear(self, keys: list) -> int:
        async with self.redis.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.hdel(key, "v", "d", "s")
            return sum(await pipe.execute())
