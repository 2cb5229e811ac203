"""The last events of each visitor, for the console's people page.

    {prefix}:recent:<visitor id>   list   JSON {id, ts, type, what}, newest first, at most KEPT;
                                          expires with the anonymous retention

The worker adds what it applied (after the profile fold: not a bot's, not an erased
visitor's, not one without analytics consent); an event id already in the list is not
added twice, so a resent event shows once. Erasure removes the visitor's list
(People.erasure_hooks) and a replay rebuilds it from the log, erasures included.
"""

from __future__ import annotations

import json

import msgpack
import msgspec
from redis.asyncio import Redis

from engine.profiles.model import ProfileConfig, has_analytics_consent
from engine.redis_scripts import lua

KEPT = 50
VISITORS_PER_CALL = 1_000  # bounds how long one script holds Redis
ADD = lua("stream", "recent.lua")
WHAT_MAX = 120  # characters of the summary line
_json = msgspec.json.Encoder().encode  # compact, keys in the entry's order (as json.dumps with no spaces)


SUMMARY_KEYS = ("order_id", "revenue", "slot", "variant")


def summary(event: dict) -> str:
    """One line of what the event says: its product, its page, its order (never its ids)."""
    props = event.get("props")
    parts = []
    if isinstance(props, dict) and props:
        product = props.get("product")
        if isinstance(product, dict) and isinstance(product.get("id"), str):
            category = product.get("category")
            parts.append(product["id"] + (f" ({category})" if isinstance(category, str) else ""))
        if not props.keys().isdisjoint(SUMMARY_KEYS):  # most events have none of them
            for key in SUMMARY_KEYS:
                value = props.get(key)
                if isinstance(value, (str, int, float)) and not isinstance(value, bool):
                    parts.append(f"{key} {value}")
    if not parts:
        url, title = event.get("url"), event.get("title")
        return ((title if isinstance(title, str) else url) if isinstance(url, str) else "")[:WHAT_MAX]
    return " · ".join(parts)[:WHAT_MAX]


def entry(event: dict) -> dict:
    return {"id": event.get("event_id"), "ts": event.get("ts"), "type": event.get("type"), "what": summary(event)}


def merged(existing: list[dict], new: list[dict], kept: int = KEPT) -> list[dict]:
    """`new` (oldest first) in front of `existing` (newest first), without ids already there, at most `kept`."""
    seen = {e.get("id") for e in existing}
    fresh = []
    for item in new:
        if item["id"] not in seen:
            seen.add(item["id"])
            fresh.append(item)
    return (fresh[::-1] + existing)[:kept]


def _encoded(rows: list[dict]) -> list[bytes]:
    """[prefix, JSON, ...] of the entries, oldest first; the prefix is the JSON up to its id (`id` comes first)."""
    out = []
    for row in rows:
        text = _json(row)
        out += [text[: text.index(b',"ts"')], text]
    return out


class RecentEvents:
    def __init__(self, redis: Redis, prefix: str, ttl_s: int, config: ProfileConfig, kept: int = KEPT) -> None:
        self.redis = redis
        self.prefix = prefix
        self.ttl_s = ttl_s
        self.config = config
        self.kept = kept
        self._add = redis.register_script(ADD)

    def key(self, visitor_id: str) -> str:
        return f"{self.prefix}:recent:{visitor_id}"

    async def __call__(self, events: list[dict], result) -> None:
        """After-batch step of the worker."""
        by_visitor: dict[str, list[dict]] = {}
        # A visitor whose every event here is new to the engine (result.first_time) cannot have
        # them listed already: Redis need not read the list. A redelivered one can.
        first_time = getattr(result, "first_time", None) or ()
        check: set[str] = set()
        for event in events:
            vid = event.get("visitor_id")
            profile = result.profiles.get(vid)
            if not profile or event.get("bot") is True or str(event.get("type", "")).startswith("server:"):
                continue
            if event.get("type") != "consent" and not has_analytics_consent(profile, self.config):
                continue
            by_visitor.setdefault(vid, []).append(entry(event))
            if id(event) not in first_time:
                check.add(vid)
        if not by_visitor:
            return
        # One script call per chunk of visitors: Redis skips what is listed already, so only
        # the batch's own entries are encoded here (not the whole list, per visitor, per batch).
        vids = list(by_visitor)
        async with self.redis.pipeline(transaction=False) as pipe:
            for start in range(0, len(vids), VISITORS_PER_CALL):
                chunk = vids[start : start + VISITORS_PER_CALL]
                packed = msgpack.packb(
                    [_encoded(merged([], by_visitor[vid], self.kept)[::-1]) for vid in chunk], use_bin_type=False
                )
                checks = "".join("1" if vid in check else "0" for vid in chunk)
                await self._add(
                    keys=[self.key(vid) for vid in chunk], args=[self.kept, self.ttl_s, packed, checks], client=pipe
                )
            await pipe.execute()

    async def of(self, visitor_ids: list[str], limit: int = KEPT) -> list[dict]:
        """The visitors' last events, newest first (a person's several visitor ids together)."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for vid in visitor_ids:
                pipe.lrange(self.key(vid), 0, limit - 1)
            stored = await pipe.execute()
        rows = [dict(json.loads(r), visitor_id=vid) for vid, raw in zip(visitor_ids, stored) for r in raw]
        return sorted(rows, key=lambda r: r.get("ts") or 0, reverse=True)[:limit]

    async def forget(self, person_id: str, pieces: list[dict]) -> None:
        """Erasure hook: every visitor id of the person."""
        await self.redis.delete(
            *{self.key(v) for v in (person_id, *(p.get("id") for p in pieces)) if isinstance(v, str)}
        )

    async def clear(self) -> None:
        """For a rebuild."""
        keys = [key async for key in self.redis.scan_iter(match=f"{self.prefix}:recent:*", count=1000)]
        for start in range(0, len(keys), 500):
            await self.redis.delete(*keys[start : start + 500])
