"""Recent view sessions in Redis: the pool the session-aware for-you reads (engine.recommend.session_rule).

Every key sits under `{prefix}:rec:{ss}:` (S below), one hash tag, so the scripts run on
Redis Cluster too. A session's key is `<len(visitor)>:<visitor><session id>` (unambiguous).

    S s:<session key>     list  the items the session viewed, in first-view order, at most MAX_ITEMS
    S recent              zset  session key -> the time (ms) of its latest new view; at most POOL_SESSIONS
    S by:<item>           zset  session key -> the time (ms) the session first viewed the item; at most PER_ITEM
    S owner               hash  session key -> visitor id
    S vsess:<visitor>     set   the visitor's sessions in the pool (what erasure removes)
    S seen                zset  session key -> its latest view's time (ms, the collector's clock)

The worker's after-batch step adds product views of visitors who are not erased, not
bots and gave analytics consent (as the co-occurrence counts). A view already in its
session's list adds nothing, so a redelivered batch or a replay over live state changes
nothing. When the pool passes POOL_SESSIONS the oldest sessions leave it with their
index entries, and so do sessions last seen longer ago than the anonymous retention
(measured against the batch's latest view, so a replay drops the same ones). Erasure (`forget`) removes every session of the person's visitor ids;
replay clears the pool and rebuilds it from the log.
"""

from __future__ import annotations

from typing import NamedTuple

import msgpack
from redis.asyncio import Redis

from engine.profiles import model
from engine.profiles.store import BatchResult
from engine.recommend import sknn
from engine.recommend.session_rule import EVIDENCE_THRESHOLD
from engine.redis_scripts import lua

POOL_SESSIONS = 20_000
PER_ITEM = sknn.SAMPLE
MAX_ITEMS = 50
LOOKUP_ITEMS = 20  # the session's latest items whose sessions are read (the benchmark's sessions have at most 20)

ADD = lua("recommend", "session_drop.lua", "session_add.lua")
FORGET = lua("recommend", "session_drop.lua", "session_forget.lua")
READ = lua("recommend", "session_pairs.lua", "session_latest.lua", "session_read.lua")
HEAD = lua("recommend", "session_latest.lua", "session_head.lua")
COUNTS = lua("recommend", "session_pairs.lua", "session_counts.lua")


class SessionRead(NamedTuple):
    session: list[str]  # the visitor's session, in view order
    n_last: int  # stored sessions holding its last item
    pairs: dict[str, float] | None  # n_last >= threshold: item -> those of them holding it
    candidates: dict[str, list[str]] | None  # below: session key -> items, the sessions read


def session_key(visitor_id: str, session_id: str) -> str:
    return f"{len(visitor_id)}:{visitor_id}{session_id}"


def _text(v) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


class SessionStore:
    def __init__(
        self,
        redis: Redis,
        prefix: str = "cs",
        *,
        config: model.ProfileConfig = model.DEFAULT,
        pool: int = POOL_SESSIONS,
        per_item: int = PER_ITEM,
        retention_s: int = 0,
    ) -> None:
        self.redis = redis
        self.base = f"{prefix}:rec:{{ss}}:"
        self.config = config
        self.pool = pool
        self.per_item = per_item
        self.retention_ms = retention_s * 1000
        self._add = redis.register_script(ADD)
        self._forget = redis.register_script(FORGET)
        self._read = redis.register_script(READ)
        self._head = redis.register_script(HEAD)
        self._counts = redis.register_script(COUNTS)

    def views(self, events: list[dict], result: BatchResult) -> list[list[str]]:
        out = []
        for event in events:
            if event.get("type") != "product_view" or event.get("bot") is True:
                continue
            product = (event.get("props") or {}).get("product") or {}
            vid = event.get("visitor_id")
            if product.get("id") is None or not isinstance(vid, str):
                continue
            profile = result.profiles.get(vid)
            if profile is None or not model.has_analytics_consent(profile, self.config):
                continue
            at = event.get("received_at") if isinstance(event.get("received_at"), int) else event.get("ts")
            at = at if isinstance(at, int) and not isinstance(at, bool) else 0
            out.append([vid, session_key(vid, str(event.get("session_id") or "-")), str(product["id"]), at])
        return out

    async def __call__(self, events: list[dict], result: BatchResult) -> None:
        """After-batch step of the worker."""
        views = self.views(events, result)
        if views:
            await self.add(views)

    async def add(self, views: list[list]) -> int:
        """[visitor, session key, item, time (ms)] each, in log order; how many were new."""
        packed = msgpack.packb(views, use_bin_type=False)
        return int(
            await self._add(
                keys=[self.base + "recent"],
                args=[self.base, self.pool, self.per_item, MAX_ITEMS, self.retention_ms, packed],
            )
        )

    async def read(
        self,
        visitor_id: str,
        session_id: str,
        sample: int = sknn.SAMPLE,
        threshold: float = EVIDENCE_THRESHOLD,
        latest: str | None = None,
    ) -> SessionRead:
        """What the rule needs for the visitor's session, in one script call; with `latest` (the item the
        visitor is looking at now), the session is its items with `latest` moved (or added) at the end.

        n_last: the indexed sessions other than this one holding its last item (at most `sample`).
        From `threshold` on, the last item's pair counts in them (`pairs`); below it, the sessions
        themselves, then the most recent others sharing an item, up to `sample` in all (`candidates`)."""
        own = session_key(visitor_id, session_id)
        mine, n_last, *rest = await self._read(
            keys=[self.base + "recent"], args=[self.base, own, sample, LOOKUP_ITEMS, threshold, latest or ""]
        )
        session = [_text(i) for i in mine]
        if int(n_last) >= threshold and rest:
            flat = rest[0]
            pairs = {_text(flat[j]): float(flat[j + 1]) for j in range(0, len(flat), 2)}
            return SessionRead(session, int(n_last), pairs, None)
        candidates = {_text(sid): [_text(i) for i in items] for sid, items in rest}
        return SessionRead(session, int(n_last), None, candidates)

    async def head(self, visitor_id: str, session_id: str, latest: str | None = None) -> tuple[list[str], bool]:
        """(the session's items in order, `latest` moved or added at the end, whether its last item's index
        holds it); nothing for a session not in the pool, whatever `latest`."""
        own = session_key(visitor_id, session_id)
        mine, indexed = await self._head(keys=[self.base + "recent"], args=[self.base, own, latest or ""])
        return [_text(i) for i in mine], bool(int(indexed))

    async def last_counts(self, item: str, sample: int = sknn.SAMPLE) -> tuple[int, dict[str, float]]:
        """(n: the item's newest indexed sessions, at most `sample`; item -> how many of them hold it).

        The same for every visitor (a service keeps it a moment): a visitor's own session is among
        them when `head` says so, and holds only items its list leaves out."""
        n, flat = await self._counts(keys=[self.base + "recent"], args=[self.base, item, sample])
        return int(n), {_text(flat[j]): float(flat[j + 1]) for j in range(0, len(flat), 2)}

    async def sessions_of(self, visitor_id: str) -> list[str]:
        return sorted(_text(s) for s in await self.redis.smembers(self.base + f"vsess:{visitor_id}"))

    async def size(self) -> int:
        return int(await self.redis.zcard(self.base + "recent"))

    async def forget(self, person_id: str, pieces: list[dict]) -> None:
        """Erasure hook: every session of every visitor id of the person."""
        vids = {v for v in (person_id, *(p.get("id") for p in pieces)) if isinstance(v, str)}
        if vids:
            await self._forget(keys=[self.base + "recent"], args=[self.base, *sorted(vids)])

    async def clear(self) -> None:
        """For a rebuild."""
        pattern = self.base.replace("{", "\\{").replace("}", "\\}") + "*"
        keys = [key async for key in self.redis.scan_iter(match=pattern, count=1000)]
        for start in range(0, len(keys), 500):
            await self.redis.delete(*keys[start : start + 500])
