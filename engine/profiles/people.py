"""People: the identified person behind several visitor ids, in Redis.

    {prefix}:{u:<digest>}:links  set   visitor ids linked to the user (capped)
    {prefix}:{u:<digest>}:audit  hash  event_id -> JSON entry: every link and refusal
    {prefix}:{u:<digest>}:prefs  str   the user's preferences (JSON)
    {prefix}:{u:<digest>}:tomb   str   the user was erased: no new links

<digest> is a plain hash of the user id: user ids are often e-mail addresses,
and key names should not carry them (a tombstone outlives the person's data).

A person is read by merging the profiles of every linked visitor id
(engine.profiles.identity.merge_all). Each visitor's profile has one writer (the
worker that owns its partition), so linking never moves data between keys, and
erasure has a fixed list of keys to remove.
"""

from __future__ import annotations

import hashlib
import json
import time
from typing import Awaitable, Callable

from redis.asyncio import Redis

from engine.profiles.identity import merge_all
from engine.profiles.user_ids import is_identity_id
from engine.profiles.store import BatchResult, ProfileStore

# KEYS: links, audit, tomb.  ARGV: visitor id, event id, linked entry, refused entry, cap.
LINK = """
if redis.call('EXISTS', KEYS[3]) == 1 then return 'erased' end
if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 1 then return 'linked' end
if redis.call('SCARD', KEYS[1]) >= tonumber(ARGV[5]) then
  redis.call('HSETNX', KEYS[2], ARGV[2], ARGV[4])
  return 'capped'
end
redis.call('SADD', KEYS[1], ARGV[1])
redis.call('HSETNX', KEYS[2], ARGV[2], ARGV[3])
return 'linked'
"""

ErasureHook = Callable[[str, list[dict]], Awaitable[None]]


class People:
    def __init__(self, redis: Redis, store: ProfileStore, *, max_visitors: int = 50,
                 blocked_user_ids: tuple[str, ...] = (), half_life_days: float = 14.0) -> None:
        self.redis = redis
        self.store = store
        self.prefix = store.prefix
        self.max_visitors = max_visitors
        self.blocked = blocked_user_ids
        self.half_life_days = half_life_days
        self.erasure_hooks: list[ErasureHook] = []
        self._link = redis.register_script(LINK)

    def _key(self, user_id: str, kind: str) -> str:
        digest = hashlib.sha256(user_id.encode()).hexdigest()[:24]
        return f"{self.prefix}:{{u:{digest}}}:{kind}"

    # --- the worker's side -------------------------------------------------

    async def link(self, events: list[dict], result: BatchResult) -> None:
        """Links each identify event's visitor to its user, or records why not.

        Runs for every identify event of the batch, new or redelivered, so a crash
        between the profile write and this step is repaired by the redelivery.
        """
        for event in events:
            if event["type"] != "identify" or not is_identity_id(event.get("user_id"), self.blocked):
                continue
            vid, uid = event["visitor_id"], event["user_id"]
            profile = result.profiles.get(vid)
            if profile is None:
                continue  # erased, or consent withheld before any profile existed
            base = {"ts": event["ts"], "visitor_id": vid, "event_id": event["event_id"]}
            if profile.get("user_id") != uid:
                if profile.get("user_id") is not None:
                    entry = dict(base, action="refused", reason="the visitor id belongs to another user")
                    await self.redis.hsetnx(self._key(uid, "audit"), event["event_id"], json.dumps(entry))
                continue
            linked = json.dumps(dict(base, action="linked"))
            refused = json.dumps(dict(base, action="refused", reason=f"more than {self.max_visitors} visitor ids"))
            await self._link(keys=[self._key(uid, "links"), self._key(uid, "audit"), self._key(uid, "tomb")],
                             args=[vid, event["event_id"], linked, refused, self.max_visitors])

    # --- the API's side ----------------------------------------------------

    async def links(self, user_id: str) -> list[str]:
        return sorted(v.decode() for v in await self.redis.smembers(self._key(user_id, "links")))

    async def audit(self, user_id: str) -> list[dict]:
        entries = [json.loads(raw) for raw in (await self.redis.hgetall(self._key(user_id, "audit"))).values()]
        return sorted(entries, key=lambda e: (e["ts"], e["event_id"]))

    async def linked_user(self, visitor_id: str) -> str | None:
        """The user id this visitor id is linked to (the access check's "own person"), or None."""
        piece = await self.store.get(visitor_id)
        if piece is None or not piece.get("user_id"):
            return None
        user_id, _ = await self._resolve(visitor_id, piece)
        return user_id

    async def resolve(self, profile_id: str) -> tuple[str | None, list[str]]:
        """(user id or None, visitor ids) of the person a visitor id or user id names."""
        return await self._resolve(profile_id, await self.store.get(profile_id))

    async def _resolve(self, profile_id: str, piece: dict | None) -> tuple[str | None, list[str]]:
        """`resolve`, given the profile stored under `profile_id` (None: no such visitor)."""
        if piece is not None and piece.get("user_id"):
            uid = piece["user_id"]
            linked = await self.links(uid)
            if profile_id in linked:
                return uid, linked
        if piece is not None:
            return None, [profile_id]
        linked = await self.links(profile_id)
        return (profile_id, linked) if linked else (None, [])

    async def person(self, profile_id: str) -> dict | None:
        """The merged person; an anonymous visitor, most of a shop's traffic, costs one round trip."""
        piece, own_preferences = await self.store.get_with_preferences(profile_id)
        user_id, visitor_ids = await self._resolve(profile_id, piece)
        others = [vid for vid in visitor_ids if vid != profile_id]
        pieces = list((await self.store.get_many(others)).values()) if others else []
        if piece is not None and profile_id in visitor_ids:
            pieces.append(piece)
        if not pieces:
            return None
        person = merge_all(pieces, self.half_life_days)
        person["id"] = user_id or visitor_ids[0]
        person["visitor_ids"] = visitor_ids
        person["preferences"] = await self.preferences(profile_id, user_id, visitor_ids, {profile_id: own_preferences})
        return person

    async def preferences(self, profile_id: str, user_id: str | None, visitor_ids: list[str],
                          read: dict[str, bytes | None] | None = None) -> dict:
        """The user's choices over the visitor's own (the one asking first); `read`: visitors' raw ones at hand."""
        read = read or {}
        merged: dict = {}
        ordered = sorted(visitor_ids, key=lambda v: v == profile_id)
        for vid in ordered:
            raw = read[vid] if vid in read else await self.store.get_preferences(vid)
            if raw:
                merged.update(json.loads(raw))
        if user_id:
            raw = await self.redis.get(self._key(user_id, "prefs"))
            if raw:
                merged.update(json.loads(raw))
        return merged

    async def set_preferences(self, profile_id: str, preferences: dict) -> dict:
        """Stores the choices where the next decide reads them: the user's, else the visitor's."""
        user_id, visitor_ids = await self.resolve(profile_id)
        current = await self.preferences(profile_id, user_id, visitor_ids or [profile_id])
        current.update(preferences)
        payload = json.dumps(current)
        if user_id:
            await self.redis.set(self._key(user_id, "prefs"), payload)
        else:
            await self.store.set_preferences(profile_id, payload.encode())
        return current

    async def export(self, profile_id: str) -> dict | None:
        user_id, visitor_ids = await self.resolve(profile_id)
        pieces = await self.store.get_many(visitor_ids)
        if not pieces and not user_id:
            return None
        return {
            "id": user_id or profile_id,
            "user_id": user_id,
            "person": await self.person(profile_id),
            "profiles": pieces,
            "visitor_ids": visitor_ids,
            "audit": await self.audit(user_id) if user_id else [],
            "preferences": await self.preferences(profile_id, user_id, visitor_ids),
        }

    async def erase(self, profile_id: str) -> dict:
        """Removes every trace of the person; tombstones stop the stream and replays bringing them back."""
        user_id, visitor_ids = await self.resolve(profile_id)
        visitor_ids = visitor_ids or [profile_id]
        pieces = list((await self.store.get_many(visitor_ids)).values())
        person_id = user_id or profile_id
        for hook in self.erasure_hooks:
            await hook(person_id, pieces)
        now_ms = int(time.time() * 1000)
        for vid in visitor_ids:
            await self.store.erase(vid, now_ms)
        if user_id:
            await self.redis.delete(self._key(user_id, "links"), self._key(user_id, "audit"), self._key(user_id, "prefs"))
            await self.redis.set(self._key(user_id, "tomb"), now_ms)
        return {"erased": person_id, "visitor_ids": visitor_ids}
