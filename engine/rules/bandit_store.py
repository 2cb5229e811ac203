"""The bandit's state in Redis: decisions, click counters, and what the model adds.

Keys of one slot share the hash tag {bandit:<slot>}, so every script touches one
cluster slot:

    {prefix}:{bandit:<slot>}:counts       hash  i|<context>|<variant> impressions,
                                                c|<context>|<variant> clicks,
                                                a|<context>|<variant> add-to-carts after a click,
                                                v|<context>|<variant> conversions (purchases after one),
                                                r|<context>|<variant> revenue successes: each
                                                conversion adds min(revenue / reward_cap, 1);
                                                context "*" is the slot-wide total
    {prefix}:{bandit:<slot>}:d:<id>       hash  one decision (variant, context, propensity,
                                                holdout, visitor hash, ts) and what came of it
                                                (shown, clicked, converted: first ts); 24 h
    {prefix}:{bandit-v:<visitor hash>}:clicks   hash  slot -> "<ts> <decision id>" of the
                                                visitor's latest click, to credit a purchase; 24 h

The API records each model decision (`BanditStore.record_decision`); the worker's
after-batch step (`BanditLearner`) credits impression and content_click events that
name a known decision to its (context, variant) and to (*, variant). The flags in the
decision make that idempotent, and more: a decision counts one impression and at most
one click however many events (new, redelivered or replayed) mention it, and a click
whose impression never arrived counts the impression too, so clicks never exceed
impressions. Events for unknown or expired decisions, or from another visitor than
the one decided for, are ignored.

No erasure hook: the counters are aggregates with no person in them, and the
decisions and click pointers hold only a hash of the visitor id and expire within a
day. Replay does not rebuild these counters (decisions are not events on the topic),
so a replay must leave them alone; the flags make a replay over them harmless.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections import defaultdict

from cachetools import TTLCache
from redis.asyncio import Redis

from engine.profiles import orders
from engine.profiles.model import ProfileConfig, has_analytics_consent
from engine.rules.bandit import GLOBAL, HOLDOUT, lift
from engine.redis_scripts import lua

DECISION_TTL_S = 86_400
STATS_CACHE_S = 1.0
STATS_CACHE_MAX = 10_000  # (slot, reward) pairs kept per process
CONVERSION_WINDOW_MIN = 30.0
PER_CALL = 500  # events per script call
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")  # slot and content names (as ruleset.NAME)
DECISION_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
SEEN_EVENTS = ("impression", "content_click")

# KEYS[1]: the slot's counts; KEYS[1 + n]: the decision named by event n.
# ARGV per event: kind ('i' impression, 'c' click), visitor hash, ts.
# Returns {n, first click ts} for each click on a known decision of that visitor.
COUNT = lua("rules", "count.lua")

# KEYS[1]: a visitor's click pointers.  ARGV[1]: ttl ms; then per click: slot, ts, decision id.
# Keeps the newest click per slot, so an old click replayed does not displace a newer one.
POINT = lua("rules", "point.lua")

# KEYS[1]: the slot's counts; KEYS[1 + n]: a clicked decision.  ARGV[1]: window ms;
# then per purchase or add-to-cart: visitor hash, ts, kind ('v' purchase, 'a' add-to-cart), revenue share.
# A decision converts at most once and counts at most one add-to-cart.
CONVERT = lua("rules", "convert.lua")

REWARD_COUNTER = {"click": "c", "add_to_cart": "a", "purchase": "v", "revenue": "r"}


def _revenue(event: dict) -> float:
    order = (event.get("props") or {}).get("order")
    revenue = order.get("revenue") if isinstance(order, dict) else None
    if isinstance(revenue, bool) or not isinstance(revenue, (int, float)) or not revenue > 0:
        return 0.0
    return float(revenue)


def visitor_hash(visitor_id: str) -> str:
    """What decisions keep of the visitor: enough to match their events, not to name them."""
    return hashlib.blake2b(str(visitor_id).encode(), digest_size=8).hexdigest()


class BanditKeys:
    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    def tag(self, slot: str) -> str:
        return f"{self.prefix}:{{bandit:{slot}}}"

    def counts(self, slot: str) -> str:
        return f"{self.tag(slot)}:counts"

    def decision(self, slot: str, decision_id: str) -> str:
        return f"{self.tag(slot)}:d:{decision_id}"

    def clicks(self, vhash: str) -> str:
        return f"{self.prefix}:{{bandit-v:{vhash}}}:clicks"


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def parse_counts(raw: dict) -> dict[str, dict[str, dict[str, float]]]:
    """The counts hash as context -> variant -> {"i", "c", "a", "v", "r"} (r fractional, the rest whole)."""
    out: dict[str, dict[str, dict[str, float]]] = defaultdict(
        lambda: defaultdict(lambda: {"i": 0, "c": 0, "a": 0, "v": 0, "r": 0.0})
    )
    for field, value in raw.items():
        kind, _, rest = _text(field).partition("|")
        context, _, variant = rest.rpartition("|")
        if kind in ("i", "c", "a", "v", "r") and context and variant:
            out[context][variant][kind] = float(value) if kind == "r" else int(value)
    return out


class BanditStore:
    """The API side: record decisions, read the counters (cached briefly), report, clear."""

    def __init__(
        self, redis: Redis, prefix: str, decision_ttl_s: int = DECISION_TTL_S, cache_s: float = STATS_CACHE_S
    ) -> None:
        self.redis = redis
        self.keys = BanditKeys(prefix)
        self.decision_ttl_s = decision_ttl_s
        self.cache_s = cache_s
        self._cache: TTLCache = TTLCache(STATS_CACHE_MAX, cache_s)  # (slot, reward) -> stats

    async def record_decision(
        self,
        decision_id: str,
        slot: str,
        variant: str,
        context_key: str,
        propensity: float,
        holdout: bool,
        visitor_id: str,
        *,
        ts_ms: int | None = None,
        client=None,
    ) -> None:
        """Keep a model decision for a day, so the impression and click events can be credited to it.

        Await it before answering the decide request: the tracker can then only report
        an impression of a decision that is already known. Pass a pipeline as `client`
        to record several slots in one round trip (the caller executes it).
        """
        if not NAME.match(slot) or not DECISION_ID.match(decision_id):
            raise ValueError(f"bad slot {slot[:40]!r} or decision id {decision_id[:70]!r}")
        key = self.keys.decision(slot, decision_id)
        fields = {
            "variant": HOLDOUT if holdout else variant,
            "context": context_key,
            "propensity": repr(float(propensity)),
            "holdout": "1" if holdout else "0",
            "visitor": visitor_hash(visitor_id),
            "ts": str(int(ts_ms if ts_ms is not None else time.time() * 1000)),
        }
        if client is not None:
            client.hset(key, mapping=fields)
            client.expire(key, self.decision_ttl_s)
            return
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(key, mapping=fields)
            pipe.expire(key, self.decision_ttl_s)
            await pipe.execute()

    async def counts(self, slot: str) -> dict[str, dict[str, dict[str, int]]]:
        """Every counter of the slot, uncached: context -> variant -> {"i", "c", "v"}."""
        return parse_counts(await self.redis.hgetall(self.keys.counts(slot)))

    async def stats(self, slot: str, reward: str = "click") -> dict[str, dict[str, tuple[int, float]]]:
        """context -> variant -> (impressions, successes of the slot's reward), as bandit.choose takes
        it; one round trip, then served from memory for `cache_s` (decide must stay fast)."""
        hit = self._cache.get((slot, reward))
        if hit is not None:
            return hit
        counter = REWARD_COUNTER[reward]
        stats = {
            context: {variant: (cell["i"], cell[counter]) for variant, cell in variants.items()}
            for context, variants in (await self.counts(slot)).items()
        }
        self._cache[(slot, reward)] = stats
        return stats

    async def report(self, slot: str, spec, default: str) -> dict:
        """Impressions, clicks, click rate and conversions per variant and for the holdout,
        and the model's estimated lift over the holdout (relative click-rate difference)."""
        slotwide = (await self.counts(slot)).get(GLOBAL, {})

        def row(cells: list[dict]) -> dict:
            shown, clicked, converted = (sum(c[k] for c in cells) for k in ("i", "c", "v"))
            return {
                "impressions": shown,
                "clicks": clicked,
                "ctr": clicked / shown if shown else None,
                "conversions": converted,
            }

        empty = {"i": 0, "c": 0, "a": 0, "v": 0, "r": 0.0}
        variants = {v: row([slotwide.get(v, empty)]) for v in spec.variants}
        model = row([slotwide.get(v, empty) for v in spec.variants])
        holdout = {**row([slotwide.get(HOLDOUT, empty)]), "content": default}
        return {
            "slot": slot,
            "variants": variants,
            "model": model,
            "holdout": holdout,
            "lift": lift((model["impressions"], model["clicks"]), (holdout["impressions"], holdout["clicks"])),
        }

    async def clear(self, slot: str) -> int:
        """Forget everything learnt for the slot (its counters and open decisions)."""
        keys = [self.keys.counts(slot)]
        keys += [key async for key in self.redis.scan_iter(match=f"{self.keys.tag(slot)}:d:*", count=1000)]
        removed = 0
        for start in range(0, len(keys), 1000):
            removed += await self.redis.delete(*keys[start : start + 1000])
        for key in [k for k in self._cache if k[0] == slot]:
            self._cache.pop(key, None)
        return removed


class BanditLearner:
    """After-batch step of the worker: credit impressions and clicks to their decisions,
    and purchases within the conversion window of a click to that click's decision."""

    def __init__(
        self,
        redis: Redis,
        prefix: str,
        config: ProfileConfig,
        conversion_window_min: float = CONVERSION_WINDOW_MIN,
        decision_ttl_s: int = DECISION_TTL_S,
        reward_cap=lambda slot: 100.0,
    ) -> None:
        self.redis = redis
        self.keys = BanditKeys(prefix)
        self.config = config  # the profiles' consent default: the bandit learns from whom the profile step counts
        self.window_ms = int(conversion_window_min * 60_000)
        self.pointer_ttl_ms = decision_ttl_s * 1000
        self.reward_cap = reward_cap  # slot -> the order size that is one full success (engine.rules.ruleset.ModelSpec)
        self._count = redis.register_script(COUNT)
        self._point = redis.register_script(POINT)
        self._convert = redis.register_script(CONVERT)

    async def __call__(self, events: list[dict], result) -> None:
        seen: dict[str, list[tuple[str, str, str, int]]] = defaultdict(list)  # slot -> (kind, decision, visitor, ts)
        buyers: dict[str, list[tuple[int, str, float]]] = defaultdict(list)  # visitor hash -> (ts, kind, revenue share)
        for event in events:
            kind = event.get("type")
            if kind not in SEEN_EVENTS and kind not in ("purchase", "add_to_cart"):
                continue  # most of a stream: nothing the bandit learns from
            profile = result.profiles.get(event.get("visitor_id"))
            if profile is None or not has_analytics_consent(profile, self.config):
                continue  # erased, or no consent: the profile step dropped the event too
            ts = event.get("ts")
            if not isinstance(ts, int) or isinstance(ts, bool):
                continue
            if event["type"] in SEEN_EVENTS:
                props = event.get("props") or {}
                slot, decision = props.get("slot"), props.get("decision_id")
                if (
                    isinstance(slot, str)
                    and NAME.match(slot)
                    and isinstance(decision, str)
                    and DECISION_ID.match(decision)
                ):
                    kind = "c" if event["type"] == "content_click" else "i"
                    seen[slot].append((kind, decision, visitor_hash(event["visitor_id"]), ts))
            elif orders.counts(event):  # a claimed order converts nothing (engine.profiles.orders)
                buyers[visitor_hash(event["visitor_id"])].append((ts, "v", _revenue(event)))
            elif event["type"] == "add_to_cart":
                buyers[visitor_hash(event["visitor_id"])].append((ts, "a", 0.0))
        if seen:
            await self._credit(seen)
        if buyers:
            await self._conversions(buyers)

    async def _credit(self, seen: dict[str, list[tuple[str, str, str, int]]]) -> None:
        calls = []
        async with self.redis.pipeline(transaction=False) as pipe:
            for slot, items in seen.items():
                for start in range(0, len(items), PER_CALL):
                    chunk = items[start : start + PER_CALL]
                    keys = [self.keys.counts(slot)] + [self.keys.decision(slot, d) for _, d, _, _ in chunk]
                    args = [a for kind, _, vhash, ts in chunk for a in (kind, vhash, ts)]
                    await self._count(keys=keys, args=args, client=pipe)
                    calls.append((slot, chunk))
            replies = await pipe.execute()
        latest: dict[str, dict[str, tuple[int, str]]] = defaultdict(dict)  # visitor hash -> slot -> (ts, decision)
        for (slot, chunk), reply in zip(calls, replies):
            for n, first_click in reply:
                _, decision, vhash, _ = chunk[int(n) - 1]
                click = (int(first_click), decision)
                if click > latest[vhash].get(slot, (-1, "")):
                    latest[vhash][slot] = click
        if latest:
            async with self.redis.pipeline(transaction=False) as pipe:
                for vhash, slots in latest.items():
                    args = [self.pointer_ttl_ms] + [a for slot, (ts, d) in slots.items() for a in (slot, ts, d)]
                    await self._point(keys=[self.keys.clicks(vhash)], args=args, client=pipe)
                await pipe.execute()

    async def _conversions(self, buyers: dict[str, list[tuple[int, str, float]]]) -> None:
        vhashes = list(buyers)
        async with self.redis.pipeline(transaction=False) as pipe:
            for vhash in vhashes:
                pipe.hgetall(self.keys.clicks(vhash))
            pointers = await pipe.execute()
        by_slot: dict[str, list[tuple[str, str, tuple]]] = defaultdict(list)  # slot -> (decision, visitor, outcome)
        for vhash, clicks in zip(vhashes, pointers):
            for slot, value in clicks.items():
                _, _, decision = _text(value).partition(" ")
                for outcome in buyers[vhash]:
                    by_slot[_text(slot)].append((decision, vhash, outcome))
        if not by_slot:
            return
        async with self.redis.pipeline(transaction=False) as pipe:
            for slot, items in by_slot.items():
                for start in range(0, len(items), PER_CALL):
                    chunk = items[start : start + PER_CALL]
                    keys = [self.keys.counts(slot)] + [self.keys.decision(slot, d) for d, _, _ in chunk]
                    cap = self.reward_cap(slot)
                    args = [self.window_ms] + [
                        a
                        for _, vhash, (ts, kind, revenue) in chunk
                        for a in (vhash, ts, kind, repr(min(revenue / cap, 1.0)))
                    ]
                    await self._convert(keys=keys, args=args, client=pipe)
            await pipe.execute()
