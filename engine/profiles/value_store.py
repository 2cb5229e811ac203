"""The value model in Redis: who has bought, and the population model fitted from them.

    {prefix}:buyers        set of visitor ids with at least one purchase
    {prefix}:value:model   the fitted ValueModel as JSON

The worker marks buyers as purchases arrive and refits now and then; every API
process reads the model (cached briefly) and values a person on read.
"""

from __future__ import annotations

import json
import logging
import time

from cachetools import TTLCache
from redis.asyncio import Redis

from engine.profiles import orders
from engine.profiles.identity import merge_all
from engine.profiles.store import BatchResult, ProfileStore
from engine.profiles.value import Summary, ValueModel, fit, summarize

log = logging.getLogger("engine.value")
MODEL_CACHE_S = 30.0


class ValueStore:
    def __init__(self, redis: Redis, store: ProfileStore, half_life_days: float = 14.0) -> None:
        self.redis = redis
        self.store = store
        self.half_life_days = half_life_days
        self.buyers_key = f"{store.prefix}:buyers"
        self.model_key = f"{store.prefix}:value:model"
        self._cached: TTLCache = TTLCache(1, MODEL_CACHE_S)  # "model" -> ValueModel

    async def mark_buyers(self, events: list[dict], result: BatchResult) -> None:
        """After-batch step: remember who bought, for the next refit."""
        buyers = {e["visitor_id"] for e in events if orders.counts(e) and result.profiles.get(e["visitor_id"])}
        if buyers:
            await self.redis.sadd(self.buyers_key, *buyers)

    async def forget(self, person_id: str, pieces: list[dict]) -> None:
        """Erasure hook."""
        ids = {person_id, *(p["id"] for p in pieces)}
        await self.redis.srem(self.buyers_key, *ids)

    async def buyers(self) -> int:
        return await self.redis.scard(self.buyers_key)

    async def clear(self) -> None:
        """For a rebuild: the buyers and the fitted model are derived from the log."""
        await self.redis.delete(self.buyers_key, self.model_key)
        self._cached.clear()

    async def summaries(self, now_ms: int) -> list[Summary]:
        """One summary per buying person: pieces with the same user id are one customer."""
        vids = sorted(v.decode() for v in await self.redis.smembers(self.buyers_key))
        people: dict[str, list[dict]] = {}
        gone = []
        for start in range(0, len(vids), 1000):
            chunk = vids[start : start + 1000]
            pieces = await self.store.get_many(chunk)
            gone += [v for v in chunk if v not in pieces]
            for vid, piece in pieces.items():
                people.setdefault(piece.get("user_id") or vid, []).append(piece)
        if gone:  # expired anonymous profiles
            await self.redis.srem(self.buyers_key, *gone)
        out = []
        for pieces in people.values():
            log_ = (
                merge_all(pieces, self.half_life_days)["commerce"]["order_log"]
                if len(pieces) > 1
                else pieces[0]["commerce"]["order_log"]
            )
            summary = summarize(log_, now_ms)
            if summary:
                out.append(summary)
        return out

    async def refit(self, now_ms: int | None = None) -> ValueModel:
        now_ms = now_ms or int(time.time() * 1000)
        started = time.perf_counter()
        model = fit(await self.summaries(now_ms), now_ms)
        await self.redis.set(self.model_key, json.dumps(model.to_json()))
        self._cached["model"] = model
        log.info(
            "value model refitted on %d customers in %.1f s (tiers by %s)",
            model.customers,
            time.perf_counter() - started,
            model.tier_basis,
        )
        return model

    async def model(self) -> ValueModel:
        """The current model, read at most every MODEL_CACHE_S; an empty one before the first fit."""
        model = self._cached.get("model")
        if model is None:
            raw = await self.redis.get(self.model_key)
            model = self._cached["model"] = ValueModel.from_json(json.loads(raw)) if raw else ValueModel()
        return model

    async def last_fit(self) -> tuple[int, int]:
        """(when, on how many customers) the stored model was fitted; (0, 0) before the first fit."""
        raw = await self.redis.get(self.model_key)
        if not raw:
            return 0, 0
        data = json.loads(raw)
        return data["fitted_at"], data["customers"]
