"""Segment membership in Redis, kept current by the worker, and its changes.

    {prefix}:seg:<name>    sorted set: person id -> membership score
    {prefix}:segdue        sorted set: person id -> when (ms) a membership may next change
                           with no new event (a window passing, a decay crossing, an
                           anonymous profile's retention ending); the sweeper works it off
    {prefix}:segchanges    stream, the outbox: one entry per entry or exit
                           {segment, person, change: entered|exited, at, score, reason}
                           (and alerts {kind, person, item, at}), read by the delivery worker
    {prefix}:segstats      hash: counters for /metrics (entered, exited, alerts, ...)
    {prefix}:marketing     set: people last seen with marketing consent (engine.profiles.withdrawals),
                           so a withdrawal is told once
    {prefix}:segnames      set: every segment name the worker has evaluated, definitions since removed
                           included, so an erasure or a withdrawal finds the sets without a SCAN

One script call per chunk of people compares each person's stored membership with the
new one, writes it, sets the due time and appends the changes, so each change is
recorded exactly once however many workers (batch or sweeper) evaluate the person; the
people travel packed in one argument, since the client's cost is per command and per
argument, not per member. `emit=False` (replay, backfill)
rebuilds the sets without recording changes. Erasure removes the person from every set,
the due set and the outbox, and records an `exited` change with reason `erased` for
each segment they were in (`notify_erasures=False` in a replay), so destinations can
delete them downstream; these notices stay in the outbox only until every destination has them (engine.destinations.delivery).
A withdrawn marketing consent records `exited` with reason `consent_withdrawn` for each
segment the person is in, and leaves the sets as they are.

Entries about a person carry an internal `marketing` field (1/0, not delivered) when
the person cannot be read at delivery: whether they had marketing consent then.
"""

from __future__ import annotations

import time

import msgpack
from redis.asyncio import Redis

from engine.redis_scripts import lua

OUTBOX_MAXLEN = 1_000_000  # entries kept; a destination further behind than this loses the oldest
PEOPLE_PER_CALL = 2_000  # bounds how long one script holds Redis

# KEYS: due, outbox, stats, seg:<name> (n of them).
# ARGV: at, emit (1/0), reason, maxlen, msgpack [names, [[person, due, flags, scores], ...]]
#       with due: ms, '' for none or 'keep'; flags: '1'/'0' per name; scores: text per name
#       (text keeps every digit).  Returns the number of changes recorded.
UPDATE_SCRIPT = lua("profiles", "update.lua")
NOTIFY_SCRIPT = lua("profiles", "notify.lua")
ERASED, CONSENT_WITHDRAWN = "erased", "consent_withdrawn"


class SegmentIndex:
    def __init__(self, redis: Redis, prefix: str) -> None:
        self.redis = redis
        self.prefix = prefix
        self.due_key = f"{prefix}:segdue"
        self.outbox_key = f"{prefix}:segchanges"
        self.stats_key = f"{prefix}:segstats"
        self.marketing_key = f"{prefix}:marketing"
        self.names_key = f"{prefix}:segnames"
        self.notify_erasures = True  # False in a replay: an erasure was told when it happened
        self._update = redis.register_script(UPDATE_SCRIPT)
        self._notify = redis.register_script(NOTIFY_SCRIPT)

    def key(self, name: str) -> str:
        return f"{self.prefix}:seg:{name}"

    async def update(
        self,
        memberships: dict[str, dict[str, float]],
        names: list[str],
        *,
        due: dict[str, int | None] | None = None,
        at: int = 0,
        emit: bool = True,
        reason: str = "events",
    ) -> int:
        """memberships: person id -> {segment: score} for the segments (of `names`) they are in now.

        `due`: person id -> their next due time (absent: unchanged; None: none). Returns the
        number of changes recorded."""
        if not memberships or not names:
            return 0
        keys = [self.due_key, self.outbox_key, self.stats_key, *(self.key(n) for n in names)]
        people = [
            [
                person_id,
                _due_arg(due, person_id),
                "".join("1" if name in scores else "0" for name in names),
                [repr(float(scores.get(name, 0.0))) for name in names],
            ]
            for person_id, scores in memberships.items()
        ]
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.sadd(self.names_key, *names)
            for start in range(0, len(people), PEOPLE_PER_CALL):
                packed = msgpack.packb([names, people[start : start + PEOPLE_PER_CALL]], use_bin_type=False)
                await self._update(
                    keys=keys, args=[at, "1" if emit else "0", reason, OUTBOX_MAXLEN, packed], client=pipe
                )
            _, *counts = await pipe.execute()
        return sum(int(c) for c in counts)

    async def due(self, now_ms: int, limit: int = 500) -> list[str]:
        """People whose memberships may have changed by `now_ms`, earliest first."""
        rows = await self.redis.zrangebyscore(self.due_key, "-inf", now_ms, start=0, num=limit)
        return [r.decode() for r in rows]

    async def sizes(self, names: list[str]) -> dict[str, int]:
        async with self.redis.pipeline(transaction=False) as pipe:
            for name in names:
                pipe.zcard(self.key(name))
            counts = await pipe.execute()
        return dict(zip(names, counts))

    async def members(self, name: str, limit: int = 100) -> list[tuple[str, float]]:
        rows = await self.redis.zrevrange(self.key(name), 0, limit - 1, withscores=True)
        return [(member.decode(), score) for member, score in rows]

    async def page(self, name: str, after: tuple[float, str] | None, limit: int) -> list[tuple[str, float]]:
        """Members by score, highest first, after the (score, id) a previous page ended on.

        The previous page's last member gives the position (its rank now); if it has left,
        the first member below its score does, so a page never repeats what was served."""
        key = self.key(name)
        start = 0
        if after is not None:
            score, member = after
            rank = await self.redis.zrevrank(key, member)
            now = await self.redis.zscore(key, member) if rank is not None else None
            start = (
                rank + 1 if now is not None and now == score else await self.redis.zcount(key, f"({score!r}", "+inf")
            )
        rows = await self.redis.zrevrange(key, start, start + limit - 1, withscores=True)
        return [(member.decode(), score) for member, score in rows]

    async def counters(self) -> dict[str, int]:
        return {k.decode(): int(v) for k, v in (await self.redis.hgetall(self.stats_key)).items()}

    async def count(self, field: str, by: int = 1) -> None:
        await self.redis.hincrby(self.stats_key, field, by)

    async def segment_keys(self) -> list[bytes]:
        """Every segment set, including those of definitions since removed (from the list of names: a SCAN of the
        whole keyspace was seconds per erasure on a large Redis). A Redis written before the list existed is
        scanned once, when the list is missing, and its sets listed."""
        names = await self.redis.smembers(self.names_key)
        if not names:
            found = [key async for key in self.redis.scan_iter(match=f"{self.prefix}:seg:*", count=1000)]
            names = {key[len(self.prefix) + len(":seg:") :] for key in found}
            if names:
                await self.redis.sadd(self.names_key, *names)
        return sorted(self.key(name.decode()).encode() for name in names)

    async def _notify_segments(
        self, person_id: str, mode: str, reason: str, *, emit: bool, marketing: bool, at: int | None = None
    ) -> int:
        keys = await self.segment_keys()
        names = [k.decode()[len(self.prefix) + len(":seg:") :] for k in keys]
        at = int(time.time() * 1000) if at is None else at
        return int(
            await self._notify(
                keys=[self.due_key, self.outbox_key, self.stats_key, self.marketing_key, *keys],
                args=[
                    person_id,
                    at,
                    reason,
                    OUTBOX_MAXLEN,
                    "1" if emit else "0",
                    "1" if marketing else "0",
                    mode,
                    *names,
                ],
            )
        )

    async def remove_person(self, person_id: str, *, marketing: bool = False, emit: bool = False) -> int:
        """From every set and the due set; with `emit`, an `exited` (reason erased) per segment left."""
        return await self._notify_segments(person_id, "erase", ERASED, emit=emit, marketing=marketing)

    async def consent_given(self, person_ids: list[str]) -> None:
        if person_ids:
            await self.redis.sadd(self.marketing_key, *person_ids)

    async def had_consent(self, person_ids: list[str]) -> list[str]:
        """Those of `person_ids` in the set of people with marketing consent."""
        if not person_ids:
            return []
        found = await self.redis.smismember(self.marketing_key, person_ids)
        return [person_id for person_id, there in zip(person_ids, found) if there]

    async def consent_withdrawn(self, person_id: str, *, at: int | None = None, emit: bool = True) -> int:
        """An `exited` (reason consent_withdrawn) per segment the person is in, once per withdrawal."""
        return await self._notify_segments(person_id, "withdraw", CONSENT_WITHDRAWN, emit=emit, marketing=True, at=at)

    async def forget(self, person_id: str, pieces: list[dict]) -> None:
        """Erasure hook: the person and each of their visitor ids leave every set and the outbox.

        The outbox is cleared of them first, then each segment they leave is told (once:
        the worker's run of the hook after the API's finds them gone)."""
        members = {person_id, *(p["id"] for p in pieces if p and p.get("id"))}
        marketing = any((p or {}).get("consent", {}).get("marketing") is True for p in pieces)
        await forget_in_stream(self.redis, self.outbox_key, members)
        await forget_in_stream(self.redis, self.outbox_key + ":dead", members)
        for member in sorted(members):
            await self.remove_person(member, marketing=marketing, emit=self.notify_erasures)

    async def clear(self, names: list[str] | None = None) -> None:
        """Drops the named sets; every set and the due times (for a rebuild) when no names are given."""
        keys = (
            [self.key(n) for n in names]
            if names is not None
            else await self.segment_keys() + [self.due_key, self.marketing_key, self.names_key]
        )
        if keys:
            await self.redis.delete(*keys)


async def forget_in_stream(redis: Redis, key: str, people: set[str], chunk: int = 1000) -> int:
    """Deletes the stream entries naming any of `people` (in `person`), but for the erasure notices; returns how many."""
    removed, start = 0, "-"
    while True:
        rows = await redis.xrange(key, start, "+", count=chunk)
        if not rows:
            return removed
        doomed = [
            entry_id
            for entry_id, fields in rows
            if fields.get(b"person", b"").decode() in people and fields.get(b"reason") != ERASED.encode()
        ]
        if doomed:
            removed += await redis.xdel(key, *doomed)
        if len(rows) < chunk:
            return removed
        start = "(" + rows[-1][0].decode()


def _due_arg(due: dict | None, person_id: str) -> str:
    if due is None or person_id not in due:
        return "keep"
    return "" if due[person_id] is None else str(int(due[person_id]))
