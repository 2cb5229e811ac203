"""Profiles in Redis, written once per event_id.

One hash per visitor id, the id as hash tag so a cluster keeps it on one slot:
    {prefix}:{v:<id>}:p     v = version: a hash of what the write stored (data and seen ids),
                            d = compressed msgpack profile,
                            s = the 8-byte hashes of its latest event_ids (at most SEEN_KEPT),
                            prefs, prefs_at = the visitor's own choices and when they were made
                                (engine.profiles.people; written by the API and by the worker
                                from the log, the latest by `prefs_at` wins),
                            e = an erasure accepted by the API and not yet applied from the log:
                                the profile reads as erased already,
                            t = tombstone: the profile was erased; its events are dropped,
                                and a replay does not bring it back
    {prefix}:{v:<id>}:seen  older seen ids, only for visitors with more than SEEN_KEPT events:
                            i = the live chunks "k:stamp,...", n = chunks moved so far,
                            <k> = CHUNK sorted 8-byte hashes moved out of `s` together
Anonymous profiles expire after the retention period; identified ones are kept.

A batch costs two round trips, whatever its size. The first reads every profile
(version, data, seen ids); pure code drops the events already seen and folds the
rest; then a script writes each profile only if its version is still the one read
and none of the new event_ids has been seen, appending them. So the duplicate check
and the update are one atomic step per profile; a profile changed in between (a
replay, a worker that took over a partition) is re-read and folded again. An event
that breaks the fold is left out (and not marked seen): the batch's result lists it
with the reason, for the dead-letter topic. A profile the worker wrote last (its
cache holds the version, the profile and, up to SEEN_CACHED, its seen ids) is not
read at all: the commit's version check is the same guard, and a profile written by
anything else since is read and folded again. In a steady stream most batches thus
cost one round trip.

De-duplication: an event_id is applied once if it comes again within `dedup_days`
of being applied, whatever the number of events in between. The latest SEEN_KEPT
ids live in the profile's own hash (read with it: a typical visitor's whole
history, so a typical profile stays small and costs no second key). Past that, the
oldest CHUNK ids move, sorted, to the visitor's `:seen` hash, stamped with the
collector's clock of the event that pushed them out; a chunk is dropped once a newer
chunk is stamped `dedup_days` after it (the guarantee: its ids were applied before
that stamp). The commit script checks new ids against those chunks by binary search
only for visitors that have them, and returns the ones it finds, which the worker
then leaves out. Chunks follow positions in the visitor's history, not batches, so
a replay rebuilds the same keys.

Scripts take many profiles per call. On Redis Cluster a script may only touch one
slot, so `cluster=True` groups profiles by slot instead: same scripts, more calls.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import random
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import msgpack
from cachetools import FIFOCache
import msgspec
import zstandard
from redis.asyncio import Redis
from redis.cluster import key_slot

from engine.errors import Unavailable
from engine.profiles import model
from engine.redis_scripts import lua

log = logging.getLogger("engine.profiles")

SEEN_KEPT = 2048  # seen ids kept in the profile's own hash
SEEN_CACHED = 256  # the worker keeps a written profile's seen ids in memory up to this many (2 KiB)
CHUNK = 1024  # ids moved together to the visitor's :seen hash once SEEN_KEPT is passed
ID_BYTES = 8
DAY_MS = 86_400_000
DEDUP_DAYS = 30

# KEYS: profiles.  ARGV: the version the worker holds in memory per profile ('' if none).
# Returns per profile: version, data (omitted when the worker's copy is current), seen ids, tombstone.
READ = lua("profiles", "read.lua")

# KEYS: profiles (each one's :seen hash is its key with `seen` for the final `p`: the same
# hash tag, so the same slot; not passed, to keep the call as cheap as before it existed).
# ARGV[1]: msgpack array, per profile:
# version read, new version, blob, new ids (concatenated 8-byte hashes), ttl in seconds
# (0: keep), moves (flat: stamp, CHUNK sorted ids, ...); one argument instead of six per
# profile keeps the client's command packing cheap.  ARGV[2]: the de-duplication horizon
# (ms), ARGV[3]: the :seen hash's ttl (s).
# Returns {flags, found}: one character per profile: 1 written, 0 conflict (changed, or an
# id in `s`), 2 erased (tombstone: nothing written), 3 some ids are in older chunks; found:
# for each 3, the profile's position and those ids.
COMMIT = """
local args = cmsgpack.unpack(ARGV[1])
local horizon, chunk_ttl = tonumber(ARGV[2]), tonumber(ARGV[3])
local keep, chunk = %d, %d
local function before(a, b)
  for i = 1, 8 do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then return x < y end
  end
  return false
end
local function holds(sorted, id)
  local lo, hi = 1, #sorted / 8
  while lo <= hi do
    local mid = math.floor((lo + hi) / 2)
    local at = string.sub(sorted, mid * 8 - 7, mid * 8)
    if at == id then return true end
    if before(at, id) then lo = mid + 1 else hi = mid - 1 end
  end
  return false
end
local flags, found, a = {}, {}, 1
for k = 1, #KEYS do
  local version, new_version, blob, ids, ttl, moves = args[a], args[a + 1], args[a + 2], args[a + 3], tonumber(args[a + 4]), args[a + 5]
  a = a + 6
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
  local flag = '0'
  if row[3] then
    flag = '2'
  elseif ok then
    local old, older = {}, string.sub(KEYS[k], 1, -2) .. 'seen'  -- the :seen hash, same hash tag
    if #seen > (keep - chunk) * 8 then
      local index = redis.call('HGET', older, 'i')
      if index then
        for n in string.gmatch(index, '(%%d+):%%d+') do
          local sorted = redis.call('HGET', older, n) or ''
          for i = 1, #ids, 8 do
            local id = string.sub(ids, i, i + 7)
            if holds(sorted, id) then old[#old + 1] = id end
          end
        end
      end
    end
    if #old > 0 then
      flag = '3'
      found[#found + 1] = k
      found[#found + 1] = table.concat(old)
    else
      seen = seen .. ids
      if #moves > 0 then
        local meta = redis.call('HMGET', older, 'i', 'n')
        local index, n = meta[1] or '', tonumber(meta[2] or '0')
        for m = 1, #moves, 2 do
          local stamp = tonumber(moves[m])
          n = n + 1
          redis.call('HSET', older, tostring(n), moves[m + 1])
          local kept = {}
          for j, s in string.gmatch(index, '(%%d+):(%%d+)') do
            if tonumber(s) + horizon >= stamp then kept[#kept + 1] = j .. ':' .. s else redis.call('HDEL', older, j) end
          end
          kept[#kept + 1] = n .. ':' .. moves[m]
          index = table.concat(kept, ',')
        end
        seen = string.sub(seen, (#moves / 2) * chunk * 8 + 1)
        redis.call('HSET', older, 'i', index, 'n', tostring(n))
        redis.call('EXPIRE', older, chunk_ttl)
      end
      redis.call('HSET', KEYS[k], 'v', new_version, 'd', blob, 's', seen)
      if ttl > 0 then redis.call('EXPIRE', KEYS[k], ttl) else redis.call('PERSIST', KEYS[k]) end
      flag = '1'
    end
  end
  flags[#flags + 1] = flag
end
return {table.concat(flags), found}
""" % (SEEN_KEPT, CHUNK)

MAX_ATTEMPTS = 12
PROFILES_PER_CALL = 500  # bounds how long one script holds Redis

# KEYS: the profile, its :seen hash.  ARGV: when (ms).
ERASE = lua("profiles", "erase.lua")
HIDDEN = lua("profiles", "hidden.lua")


class _StaleCopy(Exception):
    """The worker's in-memory copy cannot be trusted any more; read the profile again."""


@dataclass
class BatchResult:
    applied: int = 0
    profiles: dict[str, dict | None] = field(default_factory=dict)  # visitor id -> profile now (None: erased)
    malformed: list[tuple[dict, str]] = field(default_factory=list)  # events without a usable envelope
    unapplied: dict[str, list[tuple[dict, str]]] = field(default_factory=dict)  # visitor id -> events the fold refused
    # id() of the events this batch applied for the first time: a later step may skip its own check
    # for a redelivered event on them (the rest were applied before, and may be in its keys already).
    first_time: set[int] = field(default_factory=set)

    @property
    def rejected(self) -> list[tuple[dict, str]]:
        """Events not applied, with the reason: for the dead-letter topic."""
        return self.malformed + [pair for pairs in self.unapplied.values() for pair in pairs]

    @property
    def failed(self) -> int:
        return len(self.rejected)


ZDICT_V1 = b"\x01"  # blob compressed with profile-v1.zdict; never the first byte of a msgpack map
_zdict = zstandard.ZstdCompressionDict((Path(__file__).parent / "profile-v1.zdict").read_bytes())
_compress = zstandard.ZstdCompressor(level=1, dict_data=_zdict, write_content_size=True).compress
_decompress = zstandard.ZstdDecompressor(dict_data=_zdict).decompress


# msgspec writes the same msgpack bytes as msgpack.packb for a profile, in half the time.
_pack = msgspec.msgpack.Encoder().encode
_unpack = msgspec.msgpack.Decoder().decode


def pack_profile(profile: dict) -> bytes:
    """msgpack, compressed with a dictionary of the profile's own structure (about 5x smaller)."""
    return ZDICT_V1 + _compress(_pack(profile))


def unpack_profile(blob: bytes) -> dict:
    if blob[:1] == ZDICT_V1:
        blob = _decompress(blob[1:])
    return _unpack(blob)


def event_hash(event_id: str) -> bytes:
    """Fixed-size stand-in for an event_id (collisions at 2^-64 per pair are negligible)."""
    return hashlib.blake2b(event_id.encode(), digest_size=ID_BYTES).digest()


def seen_hashes(packed: bytes | None) -> set[bytes]:
    if not packed:
        return set()
    return {packed[i : i + ID_BYTES] for i in range(0, len(packed), ID_BYTES)}


def holds_id(packed: bytes, h: bytes) -> bool:
    """Whether the concatenated 8-byte ids hold `h` (a search in C: no set of them is built)."""
    at = packed.find(h)
    while at != -1:
        if at % ID_BYTES == 0:
            return True
        at = packed.find(h, at + 1)
    return False


def version_of(blob: bytes, seen: bytes) -> bytes:
    """A write's version is a hash of what it stored, so a replay writes the same bytes as the live worker."""
    digest = hashlib.blake2b(blob, digest_size=8)
    digest.update(seen)  # the hash of blob + seen, without copying them into one
    return digest.digest()


def envelope_error(event: dict) -> str | None:
    """Why the store cannot even place an event (a record written past the collector), or None."""
    get = event.get
    for name in ("event_id", "visitor_id", "type"):
        if not isinstance(get(name), str) or not get(name):
            return f"{name}: expected a non-empty string"
    ts = event.get("ts")
    return None if type(ts) is int else "ts: expected integer milliseconds"


def stamp_of(event: dict) -> int:
    """The collector's clock when it took the event (the client's if a record lacks it)."""
    for name in ("received_at", "ts"):
        value = event.get(name)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return 0


def next_seen(seen: bytes, ids: bytes, stamps: list[int]) -> tuple[bytes, list]:
    """The profile's seen ids after appending `ids`, and the chunks that move out (flat: stamp, sorted ids).

    Each id that takes the count past SEEN_KEPT moves the oldest CHUNK out, stamped
    with that id's event; the commit script does the same moves, so both agree.
    """
    held, new = len(seen) // ID_BYTES, len(ids) // ID_BYTES
    combined = seen + ids
    if held + new <= SEEN_KEPT:
        return combined, []
    moves, start, count = [], 0, held
    for i in range(new):
        count += 1
        if count > SEEN_KEPT:
            block = combined[start * ID_BYTES : (start + CHUNK) * ID_BYTES]
            ordered = sorted(block[j : j + ID_BYTES] for j in range(0, len(block), ID_BYTES))
            moves += [str(stamps[i]).encode(), b"".join(ordered)]
            start += CHUNK
            count -= CHUNK
    return combined[start * ID_BYTES :], moves


class ProfileStore:
    def __init__(
        self,
        redis: Redis,
        prefix: str = "cs",
        cluster: bool = False,
        anonymous_ttl_s: int = 0,
        cache_size: int = 0,
        dedup_days: float = DEDUP_DAYS,
    ) -> None:
        self.redis = redis
        # The worker keeps the profiles it wrote last, with their version: while Redis
        # still holds that version, the read skips the data and the decode.
        # (version, profile, seen ids or None when there are more than SEEN_CACHED); past
        # cache_size the profile written longest ago goes (a written one is put in anew).
        self.cache: FIFOCache = FIFOCache(max(cache_size, 1))
        self.cache_size = cache_size
        self.prefix = prefix
        self.cluster = cluster
        self.anonymous_ttl_s = anonymous_ttl_s
        self.dedup_ms = int(dedup_days * DAY_MS)
        self.seen_ttl_s = int(dedup_days * 86400) + 86400
        self._read = redis.register_script(READ)
        self._commit = redis.register_script(COMMIT)
        self._erase = redis.register_script(ERASE)
        self._hidden = redis.register_script(HIDDEN)

    def profile_key(self, profile_id: str) -> str:
        return f"{self.prefix}:{{v:{profile_id}}}:p"

    def seen_key(self, profile_id: str) -> str:
        return f"{self.prefix}:{{v:{profile_id}}}:seen"

    async def get(self, profile_id: str, pending_too: bool = False) -> dict | None:
        """The stored profile; None when there is none, or it is erased (or, unless `pending_too`, being erased)."""
        data, pending = await self.redis.hmget(self.profile_key(profile_id), ["d", "e"])
        return None if data is None or (pending is not None and not pending_too) else unpack_profile(data)

    async def get_with_preferences(self, profile_id: str) -> tuple[dict | None, bytes | None]:
        """The profile and the visitor's own preferences, in one round trip."""
        data, preferences, pending = await self.redis.hmget(self.profile_key(profile_id), ["d", "prefs", "e"])
        if pending is not None:
            return None, None
        return (None if data is None else unpack_profile(data)), preferences

    async def get_many(self, profile_ids: list[str]) -> dict[str, dict]:
        """The profiles that exist (and are not being erased) among profile_ids, in one round trip."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for profile_id in profile_ids:
                pipe.hmget(self.profile_key(profile_id), ["d", "e"])
            rows = await pipe.execute()
        return {
            pid: unpack_profile(blob) for pid, (blob, pending) in zip(profile_ids, rows) if blob and pending is None
        }

    async def hidden(self, profile_ids: list[str]) -> set[str]:
        """Those of profile_ids an erasure request hides (what get_many leaves out): one script call per chunk."""
        if not profile_ids:
            return set()
        chunks = self._chunks(profile_ids)
        async with self.redis.pipeline(transaction=False) as pipe:
            for chunk in chunks:
                await self._hidden(keys=[self.profile_key(pid) for pid in chunk], client=pipe)
            replies = await pipe.execute()
        return {chunk[int(at) - 1] for chunk, found in zip(chunks, replies) for at in found}

    async def erase(self, profile_id: str, now_ms: int) -> None:
        """Delete the profile and its seen ids and leave a tombstone, so neither the stream nor a replay brings it back."""
        self.cache.pop(profile_id, None)
        await self._erase(keys=[self.profile_key(profile_id), self.seen_key(profile_id)], args=[now_ms])

    async def hide(self, profile_id: str, erasure_id: str) -> None:
        """Reads treat the profile as erased from now on; the worker erases it when the log reaches the erasure."""
        await self.redis.hset(self.profile_key(profile_id), "e", erasure_id)

    async def is_erased(self, profile_id: str) -> bool:
        return bool(await self.redis.hexists(self.profile_key(profile_id), "t"))

    async def get_preferences(self, profile_id: str) -> bytes | None:
        preferences, pending = await self.redis.hmget(self.profile_key(profile_id), ["prefs", "e"])
        return None if pending is not None else preferences

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

    async def apply_batch(
        self, events: Iterable[dict], fold: Callable[[dict, list[dict]], dict] = model.fold
    ) -> BatchResult:
        result = BatchResult()
        pending: dict[str, list[dict]] = defaultdict(list)
        for event in events:
            try:  # the usual case decided inline; envelope_error only names what is wrong
                vid = event["visitor_id"]
                if (
                    type(vid) is str
                    and vid
                    and type(event["event_id"]) is str
                    and event["event_id"]
                    and type(event["type"]) is str
                    and type(event["ts"]) is int
                ):
                    pending[vid].append(event)
                    continue
            except (KeyError, TypeError, IndexError):
                pass
            result.malformed.append((event, envelope_error(event) if type(event) is dict else "event: expected a map"))
        old: dict[str, set[bytes]] = defaultdict(set)  # ids found in a visitor's older chunks
        for attempt in range(MAX_ATTEMPTS):
            conflicts = await self._apply_once(pending, fold, result, old)
            pending = {vid: pending[vid] for vid in conflicts}
            if not pending:
                return result
            await asyncio.sleep(random.uniform(0, 0.002 * 2**attempt))
        raise Unavailable(f"profiles kept changing under the worker: {sorted(pending)[:5]}")

    async def _apply_once(
        self, pending: dict[str, list[dict]], fold, result: BatchResult, old: dict[str, set[bytes]]
    ) -> list[str]:
        cache = self.cache
        # A profile this worker wrote last, with its seen ids at hand, is not read: the
        # commit's version check finds out if anything wrote it since (then it is read).
        ids, rows, unread = [], [], []
        for vid in pending:
            cached = cache.get(vid)
            if cached is not None and cached[2] is not None:
                ids.append(vid)
                rows.append((cached[0], None, cached[2], None))
            else:
                unread.append(vid)
        if unread:
            read_chunks = self._chunks(unread)
            async with self.redis.pipeline(transaction=False) as pipe:
                for chunk in read_chunks:
                    held = [cache[vid][0] if vid in cache else b"" for vid in chunk]
                    await self._read(keys=[self.profile_key(vid) for vid in chunk], args=held, client=pipe)
                rows += [row for reply in await pipe.execute() for row in reply]
            ids += [vid for chunk in read_chunks for vid in chunk]

        writes: dict[str, tuple] = {}
        conflicts = []
        for vid, (version, data, seen_packed, tombstone) in zip(ids, rows):
            cached = cache.pop(vid, None)  # back in only once written: a failed write must not leave a folded copy
            result.unapplied.pop(vid, None)
            if tombstone:
                result.profiles[vid] = None
                continue
            held = seen_packed or b""
            older = old.get(vid)
            batch: set[bytes] = set()
            fresh, fresh_hashes = [], []
            for event in pending[vid]:
                h = event_hash(event["event_id"])
                if h not in batch and not (older and h in older) and not holds_id(held, h):
                    batch.add(h)
                    fresh.append(event)
                    fresh_hashes.append(h)
            from_cache = not data and version is not None and cached is not None and cached[0] == version
            profile = unpack_profile(data) if data else cached[1] if from_cache else None
            if not fresh and from_cache:
                cache[vid] = cached
            if fresh:
                try:
                    profile, refused = self._fold(fold, profile, data, vid, fresh)
                except _StaleCopy:
                    conflicts.append(vid)  # read again, with the data this time
                    continue
                if refused:
                    result.unapplied[vid] = refused
                    skipped = {id(e) for e, _ in refused}
                    kept = [n for n, e in enumerate(fresh) if id(e) not in skipped]
                    fresh, fresh_hashes = [fresh[n] for n in kept], [fresh_hashes[n] for n in kept]
            if fresh:
                blob = pack_profile(profile)
                new_ids = b"".join(fresh_hashes)
                if len(seen_packed or b"") + len(new_ids) <= SEEN_KEPT * ID_BYTES:
                    seen_after, moves = (seen_packed or b"") + new_ids, []  # the usual case: nothing moves out
                else:
                    seen_after, moves = next_seen(seen_packed or b"", new_ids, [stamp_of(e) for e in fresh])
                ttl = 0 if profile.get("user_id") else self.anonymous_ttl_s
                writes[vid] = (
                    version or b"",
                    version_of(blob, seen_after),
                    blob,
                    new_ids,
                    ttl,
                    moves,
                    fresh,
                    profile,
                    seen_after if len(seen_after) <= SEEN_CACHED * ID_BYTES else None,
                )
            if profile is not None:
                result.profiles[vid] = profile
        if not writes:
            return conflicts

        chunks = self._chunks(list(writes))
        async with self.redis.pipeline(transaction=False) as pipe:
            for chunk in chunks:
                args: list = []
                for vid in chunk:
                    args += writes[vid][:6]
                packed = msgpack.packb(args, use_bin_type=False)  # Redis' cmsgpack reads str, not bin
                await self._commit(
                    keys=[self.profile_key(vid) for vid in chunk],
                    args=[packed, self.dedup_ms, self.seen_ttl_s],
                    client=pipe,
                )
            replies = await pipe.execute()
        for chunk, (flags, found) in zip(chunks, replies):
            for n in range(0, len(found), 2):
                vid = chunk[int(found[n]) - 1]
                old[vid] |= seen_hashes(found[n + 1])
            for vid, flag in zip(chunk, flags.decode()):
                if flag == "1":
                    result.applied += len(writes[vid][6])
                    result.first_time.update(map(id, writes[vid][6]))
                    if self.cache_size:
                        cache[vid] = (writes[vid][1], writes[vid][7], writes[vid][8])
                elif flag == "2":
                    result.profiles[vid] = None
                    result.unapplied.pop(vid, None)
                else:
                    conflicts.append(vid)  # 0: changed meanwhile; 3: some ids were seen long ago
                    result.unapplied.pop(vid, None)
        return conflicts

    @staticmethod
    def _fold(fold, profile: dict | None, data: bytes | None, vid: str, events: list[dict]) -> tuple[dict, list]:
        """Folds the events; one that breaks the fold is left out with its reason, never a stuck stream."""
        try:
            return fold(profile or model.new_profile(vid), events), []
        except Exception:
            if profile is not None and data is None:
                raise _StaleCopy() from None  # the in-memory copy was changed part way
            profile = unpack_profile(data) if data else model.new_profile(vid)
            refused = []
            for event in events:
                before = msgpack.packb(profile)  # a failing event may have changed part of it
                try:
                    profile = fold(profile, [event])
                except Exception as exc:
                    profile = msgpack.unpackb(before, raw=False)
                    refused.append((event, f"the profile fold failed: {type(exc).__name__}: {exc}"[:500]))
                    log.warning(
                        "event %s (%s) of visitor %s not applied: %s",
                        event.get("event_id"),
                        event.get("type"),
                        vid,
                        type(exc).__name__,
                    )
            return profile, refused

    async def scan_ids(self) -> list[str]:
        """Every profile id in the store (for replay and exports)."""
        ids = []
        async for key in self.redis.scan_iter(match=f"{self.prefix}:{{v:*}}:p", count=1000):
            key = key.decode() if isinstance(key, bytes) else key
            ids.append(key[len(self.prefix) + 4 : -3])
        return ids

    async def clear_all(self) -> int:
        """Delete every profile's data and seen ids for a rebuild; tombstones and preferences stay."""
        cleared = 0
        batch = []
        async for key in self.redis.scan_iter(match=f"{self.prefix}:{{v:*}}:*", count=1000):
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
                if key.endswith(b":seen"):
                    pipe.delete(key)
                else:
                    pipe.hdel(key, "v", "d", "s")
            return sum(await pipe.execute())
