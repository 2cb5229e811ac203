"""Segment membership in Redis, kept current by the worker.

    {prefix}:seg:<name>   sorted set: person id -> membership score

The worker re-evaluates the people a batch touched and adds or removes them;
`GET /v1/segments` reads the sizes. Erasure removes the person from every set.
"""

from __future__ import annotations

from redis.asyncio import Redis


class SegmentIndex:
    def __init__(self, redis: Redis, prefix: str) -> None:
        self.redis = redis
        self.prefix = prefix

    def key(self, name: str) -> str:
        return f"{self.prefix}:seg:{name}"

    async def update(self, memberships: dict[str, dict[str, float]], names: list[str]) -> None:
        """memberships: person id -> {segment: score} for the segments they are in now."""
        if not memberships or not names:
            return
        async with self.redis.pipeline(transaction=False) as pipe:
            for person_id, scores in memberships.items():
                for name in names:
                    if name in scores:
                        pipe.zadd(self.key(name), {person_id: scores[name]})
                    else:
                        pipe.zrem(self.key(name), person_id)
            await pipe.execute()

    async def sizes(self, names: list[str]) -> dict[str, int]:
        async with self.redis.pipeline(transaction=False) as pipe:
            for name in names:
                pipe.zcard(self.key(name))
            counts = await pipe.execute()
        return dict(zip(names, counts))

    async def members(self, name: str, limit: int = 100) -> list[tuple[str, float]]:
        rows = await self.redis.zrevrange(self.key(name), 0, limit - 1, withscores=True)
        return [(member.decode(), score) for member, score in rows]

    async def remove_person(self, person_id: str) -> None:
        """From every segment set, including those of definitions since removed."""
        keys = [key async for key in self.redis.scan_iter(match=f"{self.prefix}:seg:*", count=1000)]
        async with self.redis.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.zrem(key, person_id)
            await pipe.execute()

    async def forget(self, person_id: str, pieces: list[dict]) -> None:
        """Erasure hook: the person and each of their visitor ids leave every set."""
        for member in {person_id, *(p["id"] for p in pieces)}:
            await self.remove_person(member)

    async def clear(self, names: list[str] | None = None) -> None:
        """Drops the named sets; every set (for a rebuild) when no names are given."""
        keys = ([self.key(n) for n in names] if names is not None
                else [key async for key in self.redis.scan_iter(match=f"{self.prefix}:seg:*", count=1000)])
        if keys:
            await self.redis.delete(*keys)
