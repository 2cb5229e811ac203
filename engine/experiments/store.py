"""Exposures and the outcomes credited to them, per person, in Redis.

Keys of one person share the hash tag {xp:<person>} (the person key of
engine.experiments.exposures: "u:<digest>" or a visitor id), so one script call
credits everything a batch holds for the person:

    {prefix}:{xp:<person>}:arms   hash  experiment -> JSON record of the person in it:
                                        arm (of the first exposure), first, last (ms),
                                        n (exposures), p (propensity), c (the bandit's context
                                        key), pre (events before the
                                        first exposure), imp, clk, atc, buy (counts), rev, sw
                                        (exposures in another arm: a login joined two people)
    {prefix}:{xp:<person>}:seen   set   event ids already applied (exposures and outcomes),
                                        so a redelivered or replayed event counts once
    {prefix}:xp:people:<experiment>  set  the people exposed to it (the report reads them)
    {prefix}:xp:experiments          set  every experiment with an exposure

An outcome counts for an experiment when it comes after the person's first exposure and
within the window of their latest one; impressions and clicks only for that
experiment's slot. Both person keys expire with the anonymous retention, refreshed on
each write; replay clears everything here and rebuilds it from the log (exposures are
server:exposure events on it).
"""

from __future__ import annotations

import json

from redis.asyncio import Redis
from engine.redis_scripts import lua

# KEYS: arms, seen.  ARGV: window ms, ttl s (0: none), seen ttl s, JSON list of operations:
#   {id, k: "x", ts, pre, xs: [{e, a, p}]}  exposures of one decide call
#   {id, k: "o", ts, w: imp|clk|atc|buy, rev, slot}  an outcome
# Returns the experiments the person entered.
CREDIT = lua("experiments", "credit.lua")

PER_READ = 1000


class ExperimentStore:
    def __init__(
        self, redis: Redis, prefix: str, window_hours: float = 24.0, ttl_s: int = 0, seen_ttl_s: int = 30 * 86400
    ) -> None:
        self.redis = redis
        self.prefix = prefix
        self.window_ms = int(window_hours * 3_600_000)
        self.ttl_s = ttl_s
        self.seen_ttl_s = max(int(seen_ttl_s), 1)
        self._credit = redis.register_script(CREDIT)

    def arms_key(self, person: str) -> str:
        return f"{self.prefix}:{{xp:{person}}}:arms"

    def seen_key(self, person: str) -> str:
        return f"{self.prefix}:{{xp:{person}}}:seen"

    def people_key(self, experiment: str) -> str:
        return f"{self.prefix}:xp:people:{experiment}"

    @property
    def index_key(self) -> str:
        return f"{self.prefix}:xp:experiments"

    async def apply(self, ops_by_person: dict[str, list[dict]]) -> None:
        """Credits each person's operations in order, one script call each, then indexes who entered what.

        An outcome counts only for the arms a person was exposed to before it, so a person with
        outcomes and no exposure, in this batch or kept, is left out: most of a shop's visitors
        are in no experiment, and the script was most of this step. Who was exposed is read
        from the experiments' people sets, one SMISMEMBER per experiment for the whole batch
        (a command per person cost more than the rest of the step); someone whose record has
        expired may still be in a set, which only costs a script call that finds nothing."""
        outcome_only = [person for person, ops in ops_by_person.items() if all(op["k"] != "x" for op in ops)]
        if outcome_only:
            unexposed = set(outcome_only) - await self._exposed(outcome_only)
            ops_by_person = {person: ops for person, ops in ops_by_person.items() if person not in unexposed}
        people = list(ops_by_person)
        if not people:
            return
        async with self.redis.pipeline(transaction=False) as pipe:
            for person in people:
                await self._credit(
                    keys=[self.arms_key(person), self.seen_key(person)],
                    args=[self.window_ms, self.ttl_s, self.seen_ttl_s, json.dumps(ops_by_person[person])],
                    client=pipe,
                )
            replies = await pipe.execute()
        entered = [
            (person, e.decode() if isinstance(e, bytes) else e)
            for person, reply in zip(people, replies)
            for e in (reply or [])
        ]
        if entered:
            async with self.redis.pipeline(transaction=False) as pipe:
                for person, experiment in entered:
                    pipe.sadd(self.people_key(experiment), person)
                pipe.sadd(self.index_key, *{e for _, e in entered})
                await pipe.execute()

    async def _exposed(self, people: list[str]) -> set[str]:
        """Those of `people` in some experiment's people set."""
        experiments = await self.redis.smembers(self.index_key)
        if not experiments:
            return set()
        async with self.redis.pipeline(transaction=False) as pipe:
            for experiment in experiments:
                pipe.smismember(self.people_key(experiment.decode()), people)
            replies = await pipe.execute()
        return {person for reply in replies for person, there in zip(people, reply) if there}

    async def experiments(self) -> list[str]:
        return sorted(e.decode() for e in await self.redis.smembers(self.index_key))

    async def records(self, experiment: str) -> list[dict]:
        """Every exposed person's record in the experiment (people erased meanwhile are left out)."""
        out: list[dict] = []
        batch: list[str] = []

        async def read(people: list[str]) -> None:
            async with self.redis.pipeline(transaction=False) as pipe:
                for person in people:
                    pipe.hget(self.arms_key(person), experiment)
                out.extend(json.loads(raw) for raw in await pipe.execute() if raw)

        async for person in self.redis.sscan_iter(self.people_key(experiment), count=PER_READ):
            batch.append(person.decode())
            if len(batch) >= PER_READ:
                await read(batch)
                batch = []
        if batch:
            await read(batch)
        return out

    async def forget(self, people: list[str]) -> int:
        """Removes the people's exposures and outcomes from every experiment (erasure, consent withdrawn)."""
        removed = 0
        for person in people:
            experiments = [e.decode() for e in await self.redis.hkeys(self.arms_key(person))]
            async with self.redis.pipeline(transaction=False) as pipe:
                for experiment in experiments:
                    pipe.srem(self.people_key(experiment), person)
                pipe.delete(self.arms_key(person), self.seen_key(person))
                await pipe.execute()
            removed += len(experiments)
        return removed

    async def clear(self) -> int:
        """Everything here (replay rebuilds it from the log's exposures and outcomes)."""
        removed = 0
        patterns = [f"{self.prefix}:{{xp:*}}:*", f"{self.prefix}:xp:*"]
        for pattern in patterns:
            keys = [key async for key in self.redis.scan_iter(match=pattern, count=1000)]
            for start in range(0, len(keys), 1000):
                removed += await self.redis.delete(*keys[start : start + 1000])
        return removed
