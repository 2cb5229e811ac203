"""Co-occurrence and popularity in Redis, counted once per order id and per session view.

Every key sits under `{prefix}:rec:{co}:` (B below). `{co}` is one hash tag, so the
scripts that touch many items' counts run on Redis Cluster too (one slot, hence one
node holds the counts; per-order pair growth is capped, see cooccur.MAX_ITEMS_PER_ORDER).

    B order              hash  order field -> msgpack [visitor, ts, weight, items, categories, era];
                               'x' once erased or replaced. HSETNX on it is the exactly-once check.
                               The field of a back end's (trusted) order is its id; a browser's is
                               'u:<visitor>:<id>', so nobody can claim another visitor's order id
    B vorders:<visitor>  set   the visitor's order fields (what erasure subtracts)
    B pp:<item>          hash  other item -> orders holding both        (co-purchase)
    B np                 hash  item -> orders holding it
    B pv:<item>          hash  other item -> sessions viewing both      (co-view)
    B nv                 hash  item -> sessions viewing it
    B totals             hash  orders, sessions
    B pop:<era> / popc:<era>:<cat>  zset  item -> sum of growing purchase weights (engine.recommend.popularity)
    B cat                hash  item -> category last seen on an order or a product view
    B prior              hash  also-bought's prior strength chosen from the orders (engine.recommend.prior_job)
    B sv:<visitor>:<session>  set  items the session viewed (expires after `view_ttl_s`)
    B vsess:<visitor>    set   the visitor's sessions with views (same expiry)

A purchase is applied in the same script call that claims its order field (HSETNX), so
a redelivered batch, a tracker retry under a new event_id or a replay over live
state adds nothing. A trusted order is authoritative: it replaces (subtracts) the
browser's copy of the same order by the same visitor, and a browser's order whose
id a trusted order holds counts nothing. Purchases the worker marked `claim`
(engine.profiles.orders) never get here. A view adds its pairs only when the item is new in its session's
set (cooccur.view_pairs), which makes a redelivered view harmless as well.
Erasure (`forget`) subtracts exactly the orders and sessions recorded for the
person's visitor ids. Session sets expire with `view_ttl_s` (the anonymous retention
by default): the co-views of older sessions stay as anonymous aggregates.
"""

from __future__ import annotations

import time
from typing import Iterable, NamedTuple

import msgpack
from redis.asyncio import Redis

from engine.profiles import model, orders
from engine.profiles.store import BatchResult
from engine.recommend import cooccur, popularity, shrink
from engine.redis_scripts import lua

KINDS = {"purchase": ("pp:", "np", "orders"), "view": ("pv:", "nv", "sessions")}
PAIRS_PER_CALL = 20_000  # bounds how long one script holds Redis (an order of n items costs n^2)

# KEYS[1]: B order.  ARGV: B, msgpack ops, view ttl (s), items per session.
# op: {'o', order field, visitor, record, weight, items, categories, era, order id, trusted (1/0)}
#   | {'v', visitor, session, item, category}
# Returns how many orders and views were new.
APPLY = lua("recommend", "decr.lua", "unapply.lua", "apply.lua")

# KEYS[1]: B order.  ARGV: B, visitor, order fields...   Returns how many orders were subtracted.
FORGET_ORDERS = lua("recommend", "decr.lua", "unapply.lua", "forget_orders.lua")

# KEYS[1]: B vsess:<visitor>.  ARGV: B, visitor.  Returns how many sessions were subtracted.
FORGET_VIEWS = lua("recommend", "decr.lua", "forget_views.lua")

# KEYS[1]: pairs hash of the seed.  ARGV: item counts hash, totals hash, total field, seed, min support,
# method, limit, prior strength, the hash of the stored prior strength that replaces it ('' : none; see
# engine.recommend.prior_job), then (method shrunk) popular items that compete with the pairs
# (engine.recommend.shrink.rank).  The normalization of cooccur.similarity, done here so that only the
# top `limit` (flat: id, score as %.17g, which round-trips a double, raw pair count, the item's own
# count) cross the wire instead of every pair; the counts are the evidence a list shows.
SIMILAR = lua("recommend", "similar.lua")


class Neighbours(NamedTuple):
    """An item's top neighbours: their scores, the orders (sessions) holding both, and each one's own count."""

    scores: dict[str, float]
    pairs: dict[str, int]
    counts: dict[str, int]


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _event_ts(event: dict) -> int:
    """The client's clock, but never later than the collector's: a clock in the future
    would give one purchase the popularity weight of thousands."""
    ts = event.get("ts") or event.get("received_at") or int(time.time() * 1000)
    received = event.get("received_at")
    return min(ts, received) if isinstance(received, int) else ts


class CooccurrenceStore:
    """Reads and writes the counts; `CooccurrenceUpdater` is the worker's step over it."""

    def __init__(
        self, redis: Redis, prefix: str = "cs", *, half_life_days: float = 7.0, view_ttl_s: int = 180 * 86400
    ) -> None:
        self.redis = redis
        self.prefix = prefix
        self.base = f"{prefix}:rec:{{co}}:"
        self.half_life_days = half_life_days
        self.view_ttl_s = view_ttl_s
        self._apply = redis.register_script(APPLY)
        self._forget_orders = redis.register_script(FORGET_ORDERS)
        self._forget_views = redis.register_script(FORGET_VIEWS)
        self._similar = redis.register_script(SIMILAR)

    # --- writing -----------------------------------------------------------

    def purchase_op(self, event: dict) -> list | None:
        order = (event.get("props") or {}).get("order") or {}
        lines = order.get("items") or []
        items = cooccur.order_items(str(line.get("id", "")) for line in lines)
        if not items or order.get("id") is None:
            return None
        category = {}
        for line in lines:
            category.setdefault(str(line.get("id", "")), line.get("category") or "")
        ts = _event_ts(event)
        era, w = popularity.era_weight(ts, self.half_life_days)
        weight = repr(w)  # a string: Lua would round a double to 14 digits
        cats = [category.get(item, "") for item in items]
        record = msgpack.packb([event["visitor_id"], ts, weight, items, cats, era], use_bin_type=False)
        order_id, trusted = str(order["id"]), event.get("trusted") is True
        field = order_id if trusted else f"u:{event['visitor_id']}:{order_id}"
        return ["o", field, event["visitor_id"], record, weight, items, cats, era, order_id, 1 if trusted else 0]

    @staticmethod
    def view_op(event: dict) -> list | None:
        product = (event.get("props") or {}).get("product") or {}
        if product.get("id") is None:
            return None
        return [
            "v",
            event["visitor_id"],
            event.get("session_id") or "-",
            str(product["id"]),
            product.get("category") or "",
        ]

    async def apply_ops(self, ops: list[list]) -> int:
        """Applies purchase and view ops; returns how many were new. One pipeline, bounded script calls."""
        if not ops:
            return 0
        calls, current, cost = [], [], 0
        for op in ops:
            size = len(op[5]) ** 2 if op[0] == "o" else cooccur.MAX_ITEMS_PER_SESSION
            if current and cost + size > PAIRS_PER_CALL:
                calls.append(current)
                current, cost = [], 0
            current.append(op)
            cost += size
        calls.append(current)
        async with self.redis.pipeline(transaction=False) as pipe:
            for chunk in calls:
                packed = msgpack.packb(chunk, use_bin_type=False)  # Redis' cmsgpack reads str, not bin
                await self._apply(
                    keys=[self.base + "order"],
                    client=pipe,
                    args=[self.base, packed, self.view_ttl_s, cooccur.MAX_ITEMS_PER_SESSION],
                )
            return sum(await pipe.execute())

    async def forget(self, person_id: str, pieces: list[dict]) -> None:
        """Erasure hook: subtracts every order and session view recorded for the person's visitor ids."""
        for vid in sorted({person_id, *(p["id"] for p in pieces)}):
            order_ids = [_text(o) for o in await self.redis.smembers(self.base + f"vorders:{vid}")]
            for start in range(0, max(len(order_ids), 1), 100):
                await self._forget_orders(
                    keys=[self.base + "order"], args=[self.base, vid, *order_ids[start : start + 100]]
                )
            await self._forget_views(keys=[self.base + f"vsess:{vid}"], args=[self.base, vid])

    async def clear(self) -> int:
        """Deletes every count (before a replay rebuilds them)."""
        deleted = 0
        batch = []
        async for key in self.redis.scan_iter(
            match=self.base.replace("{", "\\{").replace("}", "\\}") + "*", count=1000
        ):
            batch.append(key)
            if len(batch) >= 1000:
                deleted += await self.redis.delete(*batch)
                batch = []
        if batch:
            deleted += await self.redis.delete(*batch)
        return deleted

    # --- reading -----------------------------------------------------------

    async def neighbours(self, item: str, kind: str = "purchase") -> dict[str, int]:
        """Raw pair counts of `item`: other item -> orders (or sessions) holding both."""
        pairs_prefix = KINDS[kind][0]
        raw = await self.redis.hgetall(self.base + pairs_prefix + item)
        return {_text(k): int(v) for k, v in raw.items()}

    async def counts(self, kind: str = "purchase", items: Iterable[str] | None = None) -> dict[str, int]:
        """Orders (or sessions) holding each item: all items, or just `items`."""
        key = self.base + KINDS[kind][1]
        if items is None:
            return {_text(k): int(v) for k, v in (await self.redis.hgetall(key)).items()}
        items = list(items)
        values = await self.redis.hmget(key, items) if items else []
        return {item: int(v) for item, v in zip(items, values) if v is not None}

    async def totals(self) -> dict[str, int]:
        raw = await self.redis.hgetall(self.base + "totals")
        return {"orders": int(raw.get(b"orders", 0)), "sessions": int(raw.get(b"sessions", 0))}

    async def similar_counted(
        self,
        items: list[str],
        kind: str = "purchase",
        method: str = "cosine",
        min_support: float = 2,
        limit: int = 50,
        strength: float = shrink.PRIOR_STRENGTH,
        popular: list[str] = (),
        stored_strength: bool = False,
    ) -> dict[str, "Neighbours"]:
        """Per item: its top `limit` neighbours by cooccur.similarity (computed in the script) and their raw
        pair counts (orders, or sessions, holding both); one round trip. With method shrunk, the `popular`
        items compete too (pair count 0); with `stored_strength`, the prior strength chosen from the orders
        (engine.recommend.prior_job) replaces `strength` when one is stored."""
        if method not in cooccur.METHODS:
            raise ValueError(f"unknown similarity {method!r}; expected one of {cooccur.METHODS}")
        pairs_prefix, counts_key, total_field = KINDS[kind]

        def call(item, client=None):
            return self._similar(
                keys=[self.base + pairs_prefix + item],
                client=client,
                args=[
                    self.base + counts_key,
                    self.base + "totals",
                    total_field,
                    item,
                    min_support,
                    method,
                    limit,
                    repr(float(strength)),
                    self.base + "prior" if stored_strength else "",
                    *popular,
                ],
            )

        if len(items) == 1:  # a pipeline would first ask SCRIPT EXISTS: a second round trip
            replies = [await call(items[0])]
        else:
            async with self.redis.pipeline(transaction=False) as pipe:
                for item in items:
                    await call(item, pipe)
                replies = await pipe.execute()
        out = {}
        for item, flat in zip(items, replies):
            rows = range(0, len(flat), 4)
            ids = [flat[i].decode() for i in rows]
            out[item] = Neighbours(
                {b: float(flat[i + 1]) for b, i in zip(ids, rows)},
                {b: int(flat[i + 2]) for b, i in zip(ids, rows)},
                {b: int(flat[i + 3]) for b, i in zip(ids, rows)},
            )
        return out

    async def similar_many(
        self,
        items: list[str],
        kind: str = "purchase",
        method: str = "cosine",
        min_support: float = 2,
        limit: int = 50,
        strength: float = shrink.PRIOR_STRENGTH,
    ) -> dict[str, dict[str, float]]:
        """Normalized neighbours of each item (cooccur.similarity, in the script), its top `limit`; one round trip."""
        counted = await self.similar_counted(items, kind, method, min_support, limit, strength)
        return {item: found.scores for item, found in counted.items()}

    async def similar(
        self,
        item: str,
        kind: str = "purchase",
        method: str = "cosine",
        min_support: float = 2,
        limit: int = 50,
        strength: float = shrink.PRIOR_STRENGTH,
    ) -> dict[str, float]:
        return (await self.similar_many([item], kind, method, min_support, limit, strength))[item]

    async def popular(self, k: int, category: str | None = None, now_ms: int | None = None) -> list[tuple[str, float]]:
        """The k most popular items (of one category), as purchases decayed to now."""
        now_ms = now_ms or int(time.time() * 1000)
        era, _ = popularity.era_weight(now_ms, self.half_life_days)
        async with self.redis.pipeline(transaction=False) as pipe:
            for e in (era, era - 1):
                pipe.zrevrange(
                    self.base + (f"pop:{e}" if category is None else f"popc:{e}:{category}"), 0, k - 1, withscores=True
                )
            current, previous = await pipe.execute()
        scores = popularity.merge_eras(
            [(_text(item), popularity.decayed(score, era, now_ms, self.half_life_days)) for item, score in current],
            [
                (_text(item), popularity.decayed(score, era - 1, now_ms, self.half_life_days))
                for item, score in previous
            ],
        )
        return popularity.top(scores, k)

    async def categories(self, items: list[str]) -> dict[str, str]:
        """Item -> category as last seen in the stream (the catalog may know better)."""
        if not items:
            return {}
        values = await self.redis.hmget(self.base + "cat", items)
        return {item: _text(v) for item, v in zip(items, values) if v is not None}

    async def orders_of(self, visitor_id: str) -> list[str]:
        return sorted(_text(o) for o in await self.redis.smembers(self.base + f"vorders:{visitor_id}"))


class CooccurrenceUpdater:
    """The worker's after-batch step: purchases and product views into the counts.

    Runs for every batch, redelivered ones included; the store's scripts make each
    order id and each (session, item) count once. Skips visitors who are erased
    (`result.profiles[vid]` is None) or have not given analytics consent.
    """

    def __init__(
        self,
        redis: Redis,
        prefix: str = "cs",
        *,
        config: model.ProfileConfig = model.DEFAULT,
        half_life_days: float = 7.0,
        view_ttl_s: int = 180 * 86400,
        store: CooccurrenceStore | None = None,
    ) -> None:
        self.store = store or CooccurrenceStore(redis, prefix, half_life_days=half_life_days, view_ttl_s=view_ttl_s)
        self.config = config
        self.applied = 0

    def ops(self, events: list[dict], result: BatchResult) -> list[list]:
        out = []
        for event in events:
            kind = event.get("type")
            if kind not in ("purchase", "product_view") or (kind == "purchase" and not orders.counts(event)):
                continue
            profile = result.profiles.get(event["visitor_id"])
            if profile is None or not model.has_analytics_consent(profile, self.config):
                continue
            op = self.store.purchase_op(event) if kind == "purchase" else self.store.view_op(event)
            if op is not None:
                out.append(op)
        return out

    async def __call__(self, events: list[dict], result: BatchResult) -> None:
        self.applied += await self.store.apply_ops(self.ops(events, result))

    async def forget(self, person_id: str, pieces: list[dict]) -> None:
        await self.store.forget(person_id, pieces)
