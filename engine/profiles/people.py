"""People: the identified person behind several visitor ids, in Redis.

    {prefix}:{u:<digest>}:links  set   visitor ids linked to the user (capped)
    {prefix}:{u:<digest>}:audit  hash  event_id -> JSON entry: every link and refusal; a refusal
                                     because the cookie is another user's is in both users'
                                     logs, each naming the other by digest (`other`), so both
                                     exports show it and either erasure removes both copies
    {prefix}:{u:<digest>}:prefs  str   the user's preferences (JSON)
    {prefix}:{u:<digest>}:prefs_at  str  when they were set ("<ms> <event id>"): the later write wins
    {prefix}:{u:<digest>}:tomb   str   the user was erased: no new links, no preferences

<digest> is a plain hash of the user id: user ids are often e-mail addresses,
and key names should not carry them (a tombstone outlives the person's data).

Only a verified identify links (engine.ingest.trust: the shop's user_hash, or an API
key); an unverified one is a claim on the visitor's own profile and links nothing.
A person is read by merging the profiles of every linked visitor id
(engine.profiles.identity.merge_all). Each visitor's profile has one writer (the
worker that owns its partition), so linking never moves data between keys, and
erasure has a fixed list of keys to remove.

Preferences and erasures are state changes on the log (engine.profiles.changes):
the API publishes the change, then applies what must show at once (preferences are
written, an erased person's profiles are hidden); the worker applies the same change
when the log reaches it, with the same bytes, and a replay does again. Preference
writes carry a stamp, and the latest stamp wins, so the order in which the API and the
worker write them does not matter.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from typing import Awaitable, Callable

from redis.asyncio import Redis

from engine.errors import NotFound
from engine.ingest.visitor_ids import is_visitor_id
from engine.profiles import changes
from engine.profiles.identity import merge_all
from engine.profiles.user_ids import is_identity_id
from engine.profiles.store import BatchResult, ProfileStore, unpack_profile
from engine.redis_scripts import lua

# KEYS: links, audit, tomb.  ARGV: visitor id, event id, linked entry, refused entry, cap.
LINK = lua("profiles", "link.lua")

# KEYS: the visitor's profile.  ARGV: document, stamp.  An erased visitor keeps no preferences.
VISITOR_PREFS = lua("profiles", "later.lua", "visitor_prefs.lua")

# KEYS: the user's prefs, prefs_at, tomb.  ARGV: document, stamp.
USER_PREFS = lua("profiles", "later.lua", "user_prefs.lua")

# KEYS: the refused user's audit, the owner's audit, their tombstones.  ARGV: event id, the two entries.
# Both or neither: an erased person leaves no trace in the other's log either.
REFUSE = lua("profiles", "refuse.lua")

ErasureHook = Callable[[str, list[dict]], Awaitable[None]]
Publish = Callable[[list[dict]], Awaitable[None]]


def _new_event_id() -> str:
    return uuid.uuid4().hex


class People:
    def __init__(
        self,
        redis: Redis,
        store: ProfileStore,
        *,
        max_visitors: int = 50,
        blocked_user_ids: tuple[str, ...] = (),
        half_life_days: float = 14.0,
    ) -> None:
        self.redis = redis
        self.store = store
        self.prefix = store.prefix
        self.max_visitors = max_visitors
        self.blocked = blocked_user_ids
        self.half_life_days = half_life_days
        self.erasure_hooks: list[ErasureHook] = []
        self.publish: Publish | None = None  # the API's: puts state changes on the log first
        self._link = redis.register_script(LINK)
        self._refuse = redis.register_script(REFUSE)
        self._visitor_prefs = redis.register_script(VISITOR_PREFS)
        self._user_prefs = redis.register_script(USER_PREFS)

    @staticmethod
    def digest(user_id: str) -> str:
        return hashlib.sha256(user_id.encode()).hexdigest()[:24]

    def _key(self, user_id: str, kind: str) -> str:
        return self._digest_key(self.digest(user_id), kind)

    def _digest_key(self, digest: str, kind: str) -> str:
        return f"{self.prefix}:{{u:{digest}}}:{kind}"

    def tombstone_key(self, digest: str) -> str:
        """Where an erased user's tombstone is (set once they are erased; their digest, never their id)."""
        return self._digest_key(digest, "tomb")

    # --- the worker's side -------------------------------------------------

    async def link(self, events: list[dict], result: BatchResult) -> None:
        """Links each identify event's visitor to its user, or records why not.

        Runs for every identify event of the batch, new or redelivered, so a crash
        between the profile write and this step is repaired by the redelivery. Every
        link and refusal of the batch goes in one pipeline, in the batch's order.
        """
        calls = []
        for event in events:
            if (
                event["type"] != "identify"
                or event.get("verified") is not True
                or not is_identity_id(event.get("user_id"), self.blocked)
            ):
                continue  # an unverified identify is a claim on the profile, not a link
            vid, uid = event["visitor_id"], event["user_id"]
            profile = result.profiles.get(vid)
            if profile is None:
                continue  # erased, or consent withheld before any profile existed
            base = {"ts": event["ts"], "visitor_id": vid, "event_id": event["event_id"]}
            if profile.get("user_id") != uid:
                owner = profile.get("user_id")
                if owner is not None:
                    refused = dict(
                        base,
                        action="refused",
                        reason="the visitor id belongs to another user",
                        other=self.digest(owner),
                    )
                    kept = dict(
                        base,
                        action="refused",
                        reason="another user's login on this visitor id was refused",
                        other=self.digest(uid),
                    )
                    calls.append(
                        (
                            self._refuse,
                            [
                                self._key(uid, "audit"),
                                self._key(owner, "audit"),
                                self._key(uid, "tomb"),
                                self._key(owner, "tomb"),
                            ],
                            [event["event_id"], json.dumps(refused), json.dumps(kept)],
                        )
                    )
                continue
            linked = json.dumps(dict(base, action="linked"))
            refused = json.dumps(dict(base, action="refused", reason=f"more than {self.max_visitors} visitor ids"))
            calls.append(
                (
                    self._link,
                    [self._key(uid, "links"), self._key(uid, "audit"), self._key(uid, "tomb")],
                    [vid, event["event_id"], linked, refused, self.max_visitors],
                )
            )
        if not calls:
            return
        async with self.redis.pipeline(transaction=False) as pipe:
            for script, keys, args in calls:
                await script(keys=keys, args=args, client=pipe)
            await pipe.execute()

    # --- the API's side ----------------------------------------------------

    async def links(self, user_id: str) -> list[str]:
        return sorted(v.decode() for v in await self.redis.smembers(self._key(user_id, "links")))

    async def audit(self, user_id: str) -> list[dict]:
        entries = [json.loads(raw) for raw in (await self.redis.hgetall(self._key(user_id, "audit"))).values()]
        return sorted(entries, key=lambda e: (e["ts"], e["event_id"]))

    async def verified(self, claimed: dict[str, str]) -> dict[str, bool]:
        """visitor id -> whether it is linked to the user its profile names (a verified identify), in one round trip."""
        vids = list(claimed)
        async with self.redis.pipeline(transaction=False) as pipe:
            for vid in vids:
                pipe.sismember(self._key(claimed[vid], "links"), vid)
            answers = await pipe.execute()
        return {vid: bool(answer) for vid, answer in zip(vids, answers)}

    async def linked_user(self, visitor_id: str) -> str | None:
        """The user id this visitor id is linked to (the access check's "own person"), or None."""
        piece = await self.store.get(visitor_id)
        if piece is None or not piece.get("user_id"):
            return None
        user_id, _ = await self._resolve(visitor_id, piece)
        return user_id

    async def resolve(self, profile_id: str) -> tuple[str | None, list[str]]:
        """(user id or None, visitor ids) of the person a visitor id or user id names.

        A user with no linked visitor but an audit log (their logins were all refused) is
        still a person: their export shows the refusals, their erasure removes them.
        """
        piece = await self.store.get(profile_id)
        user_id, visitor_ids = await self._resolve(profile_id, piece)
        if user_id is None and piece is None and await self.redis.exists(self._key(profile_id, "audit")):
            return profile_id, []
        return user_id, visitor_ids

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

    async def users(self, user_ids: list[str], known: dict[str, dict | None] | None = None) -> dict[str, dict | None]:
        """`person(uid)` for many user ids in two round trips, whatever their number (the worker's segments).

        `known`: visitor id -> its profile as just written (the batch's own), so only the
        linked pieces the batch did not touch are read and decoded. A user id that is also
        a stored visitor id (never made by the engine) takes `person`'s own path."""
        known = known or {}
        async with self.redis.pipeline(transaction=False) as pipe:
            for uid in user_ids:
                pipe.hmget(self.store.profile_key(uid), ["d", "e"])
                pipe.smembers(self._key(uid, "links"))
                pipe.get(self._key(uid, "prefs"))
            rows = await pipe.execute()
        linked: dict[str, tuple[list[str], bytes | None]] = {}
        out: dict[str, dict | None] = {}
        for n, uid in enumerate(user_ids):
            (own, pending), members, user_prefs = rows[3 * n : 3 * n + 3]
            if own is not None or pending is not None:
                out[uid] = await self.person(uid)
            else:
                linked[uid] = (sorted(v.decode() for v in members), user_prefs)
        wanted = sorted({vid for vids, _ in linked.values() for vid in vids})
        async with self.redis.pipeline(transaction=False) as pipe:
            for vid in wanted:
                pipe.hmget(self.store.profile_key(vid), ["e", "prefs"] if vid in known else ["e", "prefs", "d"])
            stored = dict(zip(wanted, await pipe.execute()))
        for uid, (vids, user_prefs) in linked.items():
            pieces, merged_prefs = [], {}
            for vid in vids:
                pending, prefs, *data = stored[vid]
                if pending is not None:
                    continue  # being erased: neither its profile nor its preferences count
                piece = known.get(vid) if vid in known else (unpack_profile(data[0]) if data[0] else None)
                if piece is not None:
                    pieces.append(piece)
                if prefs:
                    merged_prefs.update(json.loads(prefs))
            if not pieces:
                out[uid] = None
                continue
            person = dict(merge_all(pieces, self.half_life_days))  # a copy: one piece merges to itself
            person["id"] = uid
            person["visitor_ids"] = vids
            if user_prefs:
                merged_prefs.update(json.loads(user_prefs))
            person["preferences"] = merged_prefs
            out[uid] = person
        return out

    async def preferences(
        self, profile_id: str, user_id: str | None, visitor_ids: list[str], read: dict[str, bytes | None] | None = None
    ) -> dict:
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
        """Stores the choices where the next decide reads them (the user's, else the visitor's), through the log."""
        user_id, visitor_ids = await self.resolve(profile_id)
        if user_id is None and not visitor_ids and not is_visitor_id(profile_id):
            # A user id no visitor is linked to yet (a back end's call): the user's choices, kept
            # under the user's digest where their first verified login finds them (none once erased).
            if await self.redis.exists(self.tombstone_key(self.digest(profile_id))):
                raise NotFound("no such profile", {"id": profile_id})
            user_id = profile_id
        if user_id is None and (await self.redis.hmget(self.store.profile_key(profile_id), ["t", "e"])) != [None, None]:
            raise NotFound("no such profile", {"id": profile_id})
        current = await self.preferences(profile_id, user_id, visitor_ids or ([] if user_id else [profile_id]))
        current.update(preferences)
        if user_id:
            stored = await self.redis.get(self._key(user_id, "prefs_at"))
        else:
            stored = await self.redis.hget(self.store.profile_key(profile_id), "prefs_at")
        # After the stored stamp, whatever this host's clock says: a later PUT always wins.
        at = max(int(time.time() * 1000), int(stored.split(b" ")[0]) + 1 if stored else 0)
        change = changes.preferences(
            None if user_id else profile_id,
            self.digest(user_id) if user_id else None,
            json.dumps(current),
            at,
            _new_event_id,
        )
        if self.publish is not None:
            await self.publish([change])
        await self.apply_preferences(change)
        return current

    async def apply_preferences(self, change: dict) -> bool:
        """Writes a server:preferences change unless a later one is stored (or the person is erased)."""
        props = changes.check(change)
        args = [props["document"], props["stamp"]]
        if props.get("user"):
            digest = props["user"]
            keys = [
                self._digest_key(digest, "prefs"),
                self._digest_key(digest, "prefs_at"),
                self.tombstone_key(digest),
            ]
            return bool(await self._user_prefs(keys=keys, args=args))
        return bool(await self._visitor_prefs(keys=[self.store.profile_key(change["visitor_id"])], args=args))

    async def export(self, profile_id: str) -> dict | None:
        user_id, visitor_ids = await self.resolve(profile_id)
        pieces = await self.store.get_many(visitor_ids)
        audit = await self.audit(user_id) if user_id else []
        if not pieces and not audit:  # a user whose logins were all refused still has their log
            return None
        return {
            "id": user_id or profile_id,
            "user_id": user_id,
            "person": await self.person(profile_id),
            "profiles": pieces,
            "visitor_ids": visitor_ids,
            "audit": audit,
            "preferences": await self.preferences(profile_id, user_id, visitor_ids),
        }

    async def erasure(self, profile_id: str) -> tuple[dict, list[dict]]:
        """The answer to erasing a person, and the server:erase changes it takes (one per visitor id)."""
        user_id, visitor_ids = await self.resolve(profile_id)
        visitor_ids = visitor_ids or [profile_id]
        digest = self.digest(user_id) if user_id else None
        now_ms = int(time.time() * 1000)
        events = [changes.erasure(vid, digest, now_ms, _new_event_id) for vid in visitor_ids]
        return {"erased": user_id or profile_id, "visitor_ids": visitor_ids}, events

    async def request_erasure(self, profile_id: str) -> dict:
        """The API's erasure: on the log first, then out of sight at once; the worker erases when the log reaches it.

        At once: the profiles read as erased, and the person leaves segments, buyers and
        the co-occurrence counts (the erasure hooks). The worker runs the hooks again at
        the erasure's place in the log, which also catches events that were in flight.
        """
        outcome, events = await self.erasure(profile_id)
        if self.publish is None:
            for event in events:
                await self.apply_erasure(event)
            return outcome
        pieces = list((await self.store.get_many(outcome["visitor_ids"])).values())
        await self.publish(events)
        for event in events:
            await self.store.hide(event["visitor_id"], event["event_id"])
        digest = events[0]["props"].get("user") if events else None
        if digest:  # the audit logs, both copies of each refusal, out of sight at once too
            await self._forget_refusals(digest)
            await self.redis.delete(self._digest_key(digest, "audit"))
        for hook in self.erasure_hooks:
            await hook(outcome["erased"], pieces)
        return outcome

    async def erase(self, profile_id: str) -> dict:
        """Removes every trace of the person at once (no log: for tests and tools)."""
        outcome, events = await self.erasure(profile_id)
        for event in events:
            await self.apply_erasure(event)
        return outcome

    async def apply_erasure(self, change: dict) -> None:
        """Applies a server:erase: the visitor's traces in every store, its tombstone, and the user's keys.

        Runs in log order after the visitor's earlier events, so a replay subtracts exactly
        what it added; the tombstone stops later events and later replays.
        """
        props = changes.check(change)
        vid, at, digest = change["visitor_id"], props["at"], props.get("user")
        piece = await self.store.get(vid, pending_too=True)
        person_id = piece["user_id"] if piece is not None and piece.get("user_id") else vid
        for hook in self.erasure_hooks:
            await hook(person_id, [piece] if piece is not None else [])
        await self.store.erase(vid, at)
        if digest:
            await self._forget_refusals(digest)
            await self.redis.delete(
                *(self._digest_key(digest, kind) for kind in ("links", "audit", "prefs", "prefs_at"))
            )
            await self.redis.set(self.tombstone_key(digest), at)

    async def _forget_refusals(self, digest: str) -> None:
        """The other user's copies of the refusals that name this one (the entries of both are about both)."""
        for raw in (await self.redis.hgetall(self._digest_key(digest, "audit"))).values():
            entry = json.loads(raw)
            if entry.get("action") == "refused" and entry.get("other"):
                await self.redis.hdel(self._digest_key(entry["other"], "audit"), entry["event_id"])
