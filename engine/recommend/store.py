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

KINDS = {"purchase": ("pp:", "np", "orders"), "view": ("pv:", "nv", "sessions")}
PAIRS_PER_CALL = 20_000  # bounds how long one script holds Redis (an order of n items costs n^2)

# Subtracts one count, deleting fields that reach zero (no ghosts of erased people).
_DECR = """
local function decr(key, field)
  if redis.call('HINCRBY', key, field, -1) <= 0 then redis.call('HDEL', key, field) end
end
local function unweigh(key, w, item)
  local left = tonumber(redis.call('ZINCRBY', key, '-' .. w, item))
  if left <= tonumber(w) * 1e-9 then redis.call('ZREM', key, item) end
end
"""

# Subtracts one order's record (msgpack [visitor, ts, weight, items, categories, era]).
_UNAPPLY = _DECR + """
local function unapply(B, rec)
  local r = cmsgpack.unpack(rec)
  local w, items, cats, era = r[3], r[4], r[5], r[6]
  for i = 1, #items do
    local a = items[i]
    decr(B .. 'np', a)
    unweigh(B .. 'pop:' .. era, w, a)
    if cats[i] ~= '' then unweigh(B .. 'popc:' .. era .. ':' .. cats[i], w, a) end
    for j = 1, #items do
      if j ~= i then decr(B .. 'pp:' .. a, items[j]) end
    end
  end
  decr(B .. 'totals', 'orders')
end
"""

# KEYS[1]: B order.  ARGV: B, msgpack ops, view ttl (s), items per session.
# op: {'o', order field, visitor, record, weight, items, categories, era, order id, trusted (1/0)}
#   | {'v', visitor, session, item, category}
# Returns how many orders and views were new.
APPLY = _UNAPPLY + """
local B, ops, ttl, cap = ARGV[1], cmsgpack.unpack(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local new = 0
for _, op in ipairs(ops) do
  local counted = true
  if op[1] == 'o' and op[10] == 1 then
    -- the back end confirms an order: the browser's copy of it (same visitor) gives way
    local copy = 'u:' .. op[3] .. ':' .. op[9]
    local rec = redis.call('HGET', KEYS[1], copy)
    if rec and rec ~= 'x' and redis.call('HEXISTS', KEYS[1], op[2]) == 0 then
      unapply(B, rec)
      redis.call('HSET', KEYS[1], copy, 'x')
      redis.call('SREM', B .. 'vorders:' .. op[3], copy)
    end
  elseif op[1] == 'o' and redis.call('HEXISTS', KEYS[1], op[9]) == 1 then
    counted = false  -- a browser's copy of an order the back end has confirmed
  end
  if op[1] == 'o' then
    if counted and redis.call('HSETNX', KEYS[1], op[2], op[4]) == 1 then
      new = new + 1
      redis.call('SADD', B .. 'vorders:' .. op[3], op[2])
      redis.call('HINCRBY', B .. 'totals', 'orders', 1)
      local items, cats, w, era = op[6], op[7], op[5], op[8]
      for i = 1, #items do
        local a = items[i]
        redis.call('HINCRBY', B .. 'np', a, 1)
        redis.call('ZINCRBY', B .. 'pop:' .. era, w, a)
        if cats[i] ~= '' then
          redis.call('ZINCRBY', B .. 'popc:' .. era .. ':' .. cats[i], w, a)
          redis.call('HSET', B .. 'cat', a, cats[i])
        end
        local pk = B .. 'pp:' .. a
        for j = 1, #items do
          if j ~= i then redis.call('HINCRBY', pk, items[j], 1) end
        end
      end
    end
  else
    local vid, sid, item, cat = op[2], op[3], op[4], op[5]
    if cat ~= '' then redis.call('HSET', B .. 'cat', item, cat) end
    local sk = B .. 'sv:' .. vid .. ':' .. sid
    if redis.call('SISMEMBER', sk, item) == 0 then
      local before = redis.call('SMEMBERS', sk)
      if #before < cap then
        new = new + 1
        if #before == 0 then
          redis.call('HINCRBY', B .. 'totals', 'sessions', 1)
          redis.call('SADD', B .. 'vsess:' .. vid, sid)
        end
        for _, other in ipairs(before) do
          redis.call('HINCRBY', B .. 'pv:' .. item, other, 1)
          redis.call('HINCRBY', B .. 'pv:' .. other, item, 1)
        end
        redis.call('HINCRBY', B .. 'nv', item, 1)
        redis.call('SADD', sk, item)
        redis.call('EXPIRE', sk, ttl)
        redis.call('EXPIRE', B .. 'vsess:' .. vid, ttl)
      end
    end
  end
end
return new
"""

# KEYS[1]: B order.  ARGV: B, visitor, order fields...   Returns how many orders were subtracted.
FORGET_ORDERS = _UNAPPLY + """
local B, done = ARGV[1], 0
for n = 3, #ARGV do
  local rec = redis.call('HGET', KEYS[1], ARGV[n])
  if rec and rec ~= 'x' then
    unapply(B, rec)
    redis.call('HSET', KEYS[1], ARGV[n], 'x')
    done = done + 1
  end
end
redis.call('DEL', B .. 'vorders:' .. ARGV[2])
return done
"""

# KEYS[1]: B vsess:<visitor>.  ARGV: B, visitor.  Returns how many sessions were subtracted.
FORGET_VIEWS = _DECR + """
local B, vid, done = ARGV[1], ARGV[2], 0
for _, sid in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local sk = B .. 'sv:' .. vid .. ':' .. sid
  local items = redis.call('SMEMBERS', sk)
  if #items > 0 then
    for i = 1, #items do
      decr(B .. 'nv', items[i])
      for j = 1, #items do
        if j ~= i then decr(B .. 'pv:' .. items[i], items[j]) end
      end
    end
    decr(B .. 'totals', 'sessions')
    done = done + 1
  end
  redis.call('DEL', sk)
end
redis.call('DEL', KEYS[1])
return done
"""

# KEYS[1]: pairs hash of the seed.  ARGV: item counts hash, totals hash, total field, seed, min support,
# method, limit, prior strength, then (method shrunk) popular items that compete with the pairs
# (engine.recommend.shrink.rank).  The normalization of cooccur.similarity, done here so that only the
# top `limit` (flat: id, score as %.17g, which round-trips a double, raw pair count, the item's own
# count) cross the wire instead of every pair; the counts are the evidence a list shows.
SIMILAR = """
local flat, ids, pair, paired = redis.call('HGETALL', KEYS[1]), {}, {}, {}
local support, method, limit, m = tonumber(ARGV[5]), ARGV[6], tonumber(ARGV[7]), tonumber(ARGV[8])
for i = 1, #flat, 2 do
  local c = tonumber(flat[i + 1])
  if c >= support and c > 0 and flat[i] ~= ARGV[4] then
    ids[#ids + 1] = flat[i]
    pair[#pair + 1] = c
    paired[flat[i]] = true
  end
end
local npairs = #ids
if method == 'shrunk' and m > 0 then
  for i = 9, #ARGV do
    if not paired[ARGV[i]] and ARGV[i] ~= ARGV[4] then
      paired[ARGV[i]] = true
      ids[#ids + 1] = ARGV[i]
      pair[#pair + 1] = 0
    end
  end
end
local na = tonumber(redis.call('HGET', ARGV[1], ARGV[4]) or '0')
local total = tonumber(redis.call('HGET', ARGV[2], ARGV[3]) or '0')
local scored = {}
for start = 1, #ids, 1000 do
  local part = redis.call('HMGET', ARGV[1], unpack(ids, start, math.min(start + 999, #ids)))
  for j = 1, #part do
    local n = start + j - 1
    local p, nb = pair[n], tonumber(part[j] or '0')
    local s
    if method == 'confidence' then s = p / math.max(na, p)
    elseif method == 'cosine' then s = p / math.sqrt(math.max(na, p) * math.max(nb, p))
    elseif method == 'jaccard' then s = p / math.max(na + nb - p, p)
    elseif method == 'lift' then s = p * math.max(total, 1) / (math.max(na, p) * math.max(nb, p))
    elseif method == 'shrunk' then s = (p + m * nb / math.max(total, 1)) / (math.max(na, p) + m)
    else s = p end
    if s > 0 then scored[#scored + 1] = {ids[n], s, p, nb} end
  end
end
table.sort(scored, function(a, b) if a[2] ~= b[2] then return a[2] > b[2] end return a[1] < b[1] end)
local out = {}
for i = 1, math.min(limit, #scored) do
  out[#out + 1] = scored[i][1]
  out[#out + 1] = string.format('%.17g', scored[i][2])
  out[#out + 1] = scored[i][3]
  out[#out + 1] = scored[i][4]
end
return out
"""


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

    def __init__(self, redis: Redis, prefix: str = "cs", *, half_life_days: float = 7.0,
                 view_ttl_s: int = 180 * 86400) -> None:
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
        return ["v", event["visitor_id"], event.get("session_id") or "-", str(product["id"]), product.get("category") or ""]

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
                await self._apply(keys=[self.base + "order"], client=pipe,
                                  args=[self.base, packed, self.view_ttl_s, cooccur.MAX_ITEMS_PER_SESSION])
            return sum(await pipe.execute())

    async def forget(self, person_id: str, pieces: list[dict]) -> None:
        """Erasure hook: subtracts every order and session view recorded for the person's visitor ids."""
        for vid in sorted({person_id, *(p["id"] for p in pieces)}):
            order_ids = [_text(o) for o in await self.redis.smembers(self.base + f"vorders:{vid}")]
            for start in range(0, max(len(order_ids), 1), 100):
                await self._forget_orders(keys=[self.base + "order"], args=[self.base, vid, *order_ids[start:start + 100]])
            await self._forget_views(keys=[self.base + f"vsess:{vid}"], args=[self.base, vid])

    async def clear(self) -> int:
        """Deletes every count (before a replay rebuilds them)."""
        deleted = 0
        batch = []
        async for key in self.redis.scan_iter(match=self.base.replace("{", "\\{").replace("}", "\\}") + "*", count=1000):
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

    async def similar_counted(self, items: list[str], kind: str = "purchase", method: str = "cosine",
                              min_support: float = 2, limit: int = 50, strength: float = shrink.PRIOR_STRENGTH,
                              popular: list[str] = ()) -> dict[str, "Neighbours"]:
        """Per item: its top `limit` neighbours by cooccur.similarity (computed in the script) and their raw
        pair counts (orders, or sessions, holding both); one round trip. With method shrunk, the `popular`
        items compete too (pair count 0)."""
        if method not in cooccur.METHODS:
            raise ValueError(f"unknown similarity {method!r}; expected one of {cooccur.METHODS}")
        pairs_prefix, counts_key, total_field = KINDS[kind]

        def call(item, client=None):
            return self._similar(keys=[self.base + pairs_prefix + item], client=client,
                                 args=[self.base + counts_key, self.base + "totals", total_field, item,
                                       min_support, method, limit, repr(float(strength)), *popular])

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
            out[item] = Neighbours({b: float(flat[i + 1]) for b, i in zip(ids, rows)},
                                   {b: int(flat[i + 2]) for b, i in zip(ids, rows)},
                                   {b: int(flat[i + 3]) for b, i in zip(ids, rows)})
        return out

    async def similar_many(self, items: list[str], kind: str = "purchase", method: str = "cosine",
                           min_support: float = 2, limit: int = 50,
                           strength: float = shrink.PRIOR_STRENGTH) -> dict[str, dict[str, float]]:
        """Normalized neighbours of each item (cooccur.similarity, in the script), its top `limit`; one round trip."""
        counted = await self.similar_counted(items, kind, method, min_support, limit, strength)
        return {item: found.scores for item, found in counted.items()}

    async def similar(self, item: str, kind: str = "purchase", method: str = "cosine",
                      min_support: float = 2, limit: int = 50, strength: float = shrink.PRIOR_STRENGTH) -> dict[str, float]:
        return (await self.similar_many([item], kind, method, min_support, limit, strength))[item]

    async def popular(self, k: int, category: str | None = None, now_ms: int | None = None) -> list[tuple[str, float]]:
        """The k most popular items (of one category), as purchases decayed to now."""
        now_ms = now_ms or int(time.time() * 1000)
        era, _ = popularity.era_weight(now_ms, self.half_life_days)
        async with self.redis.pipeline(transaction=False) as pipe:
            for e in (era, era - 1):
                pipe.zrevrange(self.base + (f"pop:{e}" if category is None else f"popc:{e}:{category}"), 0, k - 1,
                               withscores=True)
            current, previous = await pipe.execute()
        scores = popularity.merge_eras(
            [(_text(item), popularity.decayed(score, era, now_ms, self.half_life_days)) for item, score in current],
            [(_text(item), popularity.decayed(score, era - 1, now_ms, self.half_life_days)) for item, score in previous])
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

    def __init__(self, redis: Redis, prefix: str = "cs", *, config: model.ProfileConfig = model.DEFAULT,
                 half_life_days: float = 7.0, view_ttl_s: int = 180 * 86400,
                 store: CooccurrenceStore | None = None) -> None:
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
