"""Segment membership in Redis, kept current by the worker.

    {prefix}:seg:<name>   sorted set: person id -> membership score

The worker re-evaluates the people a batch touched and adds or removes them;
`GET /v1/segments` reads the sizes. Erasure removes the person from every set.
"""

from __future__ import annotations

import msgpack
from redis.asyncio import Redis

PEOPLE_PER_CALL = 10_000  # bounds how long one script holds Redis

# KEYS[1]: the segment's set.  ARGV[1]: msgpack [[score, member, ...] in, [member, ...] out].
# Scores are doubles in msgpack and go to ZADD as Lua numbers (17 significant digits).
SET = """
local m = cmsgpack.unpack(ARGV[1])
local inside, outside, step = m[1], m[2], 4000
for i = 1, #inside, step do
  redis.call('ZADD', KEYS[1], unpack(inside, i, math.min(i + step - 1, #inside)))
end
for i = 1, #outside, step do
  redis.call('ZREM', KEYS[1], unpack(outside, i, math.min(i + step - 1, #outside)))
end
return #inside / 2
"""


class SegmentIndex:
    def __init__(self, redis: Redis, prefix: str) -> None:
        self.redis = redis
        self.prefix = prefix
        self._set = redis.register_script(SET)

    def key(self, name: str) -> str:
        return f"{self.prefix}:seg:{name}"

    async def update(self, memberships: dict[str, dict[str, float]], names: list[str]) -> None:
        """memberships: person id -> {segment: score} for the segments they are in now.

        One script call per segment, whatever the number of people, its members packed
        in one argument: the client's cost is per command and per argument, not per member."""
        if not memberships or not names:
            return
        people = list(memberships.items())
        async with self.redis.pipeline(transaction=False) as pipe:
            for name in names:
                for start in range(0, len(people), PEOPLE_PER_CALL):
                    inside: list = []
                    outside: list[str] = []
                    for person_id, scores in people[start : start + PEOPLE_PER_CALL]:
                        if name in scores:
                            inside += (float(scores[name]), person_id)
                        else:
                            outside.append(person_id)
                    packed = msgpack.packb([inside, outside], use_bin_type=False)  # Redis' cmsgpack reads str, not bin
                    await self._set(keys=[self.key(name)], args=[packed], client=pipe)
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
