"""The worker's derived-state steps: segment membership and the value model.

Segment membership is kept per person: a visitor id while anonymous, the user id
once identified (the visitor id then leaves every segment, so no one counts twice).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from engine.profiles.people import People
from engine.profiles.segments import derive, next_change
from engine.profiles.segments_index import SegmentIndex
from engine.profiles.store import BatchResult
from engine.profiles.value_store import ValueStore

log = logging.getLogger("engine.worker")


Clock = Callable[[], Awaitable[int]]  # now, in ms (injectable: tests move it forward)


async def system_clock() -> int:
    return int(time.time() * 1000)


def offset_clock(redis, key: str) -> Clock:
    """The system clock plus an offset (ms) read from `key`: lets a test move the worker's time forward."""

    async def now() -> int:
        offset = await redis.get(key)
        return int(time.time() * 1000) + (int(offset) if offset else 0)

    return now


class SegmentEvaluator:
    """Memberships and due times of people, from their stored profiles, written with their changes."""

    def __init__(
        self,
        people: People,
        values: ValueStore,
        index: SegmentIndex,
        rules,
        half_life_days: float,
        *,
        clock: Clock = system_clock,
        anonymous_ttl_ms: int = 0,
    ) -> None:
        self.people = people
        self.values = values
        self.index = index
        self.rules = rules  # engine.rules.live.LiveRules
        self.half_life_days = half_life_days
        self.clock = clock
        self.anonymous_ttl_ms = anonymous_ttl_ms

    async def judge(
        self, people: dict[str, dict | None], segments, now_ms: int, model=None
    ) -> tuple[dict[str, dict[str, float]], dict[str, int | None]]:
        """(person id -> {segment: score}, person id -> due) for merged people (None: gone)."""
        memberships: dict[str, dict[str, float]] = {}
        due: dict[str, int | None] = {}
        for person_id, person in people.items():
            if person is None or person.get("id") != person_id:
                memberships[person_id], due[person_id] = {}, None  # erased, expired, or now counted as its user
                continue
            derived = derive(person, model, segments, now_ms, self.half_life_days)
            memberships[person_id] = derived["segments"]
            moment = next_change(derived, segments, now_ms)
            if self.anonymous_ttl_ms and not person.get("user_id") and memberships[person_id]:
                expiry = now_ms + self.anonymous_ttl_ms  # retention ends: the sweeper finds the profile gone
                moment = expiry if moment is None else min(moment, expiry)
            due[person_id] = moment
        return memberships, due

    async def model(self, segments):
        return await self.values.model() if any(s.uses_value for s in segments) else None

    async def reevaluate(
        self,
        person_ids: list[str],
        *,
        reason: str,
        emit: bool = True,
        names: list[str] | None = None,
        now_ms: int | None = None,
    ) -> int:
        """Reads the people again and writes their memberships (of `names`, default all); returns changes."""
        segments = self.rules.current.segments
        if not segments or not person_ids:
            return 0
        now_ms = await self.clock() if now_ms is None else now_ms
        people = {pid: await self.people.person(pid) for pid in person_ids}
        memberships, due = await self.judge(people, segments, now_ms, await self.model(segments))
        return await self.index.update(
            memberships, names or [s.name for s in segments], due=due, at=now_ms, emit=emit, reason=reason
        )


class SegmentUpdater:
    """After-batch step: re-evaluates the segments of everyone the batch touched.

    `emit=False` (a replay) rebuilds the sets without recording changes again."""

    def __init__(self, evaluator: SegmentEvaluator, emit: bool = True) -> None:
        self.evaluator = evaluator
        self.emit = emit

    async def __call__(self, events: list[dict], result: BatchResult) -> None:
        ev = self.evaluator
        segments = ev.rules.current.segments
        if not segments:
            return
        now_ms = await ev.clock()
        people: dict[str, dict | None] = {}
        users = set()
        for vid, piece in result.profiles.items():
            if piece is not None and piece.get("user_id"):
                users.add(piece["user_id"])
                people[vid] = None  # the visitor id leaves every segment: the user counts
            elif piece is not None:
                people[vid] = dict(piece, id=vid)
            else:
                people[vid] = None
        if users:  # every identified person of the batch in two round trips, not a few per person
            people.update(await ev.people.users(sorted(users), result.profiles))
        memberships, due = await ev.judge(people, segments, now_ms, await ev.model(segments))
        await ev.index.update(memberships, [s.name for s in segments], due=due, at=now_ms, emit=self.emit)


class SegmentSweeper:
    """Background task: re-evaluates the people whose due time has come, so time alone moves them.

    Runs every `every_s`; one Redis lock per round lets one worker of many do it."""

    def __init__(self, evaluator: SegmentEvaluator, every_s: float, batch: int = 500) -> None:
        self.evaluator = evaluator
        self.every_s = every_s
        self.batch = batch
        self.lock_key = evaluator.index.due_key + ":lock"

    async def sweep(self) -> int:
        """One round: every person due by now; returns the changes recorded."""
        ev = self.evaluator
        changes = 0
        while True:
            now_ms = await ev.clock()
            due = await ev.index.due(now_ms, self.batch)
            if not due:
                return changes
            changes += await ev.reevaluate(due, reason="time", now_ms=now_ms)
            if len(due) < self.batch:
                return changes

    async def run(self, stopping) -> None:
        redis = self.evaluator.index.redis
        while not stopping():
            try:
                if await redis.set(self.lock_key, b"1", nx=True, px=max(int(self.every_s * 1000), 1000)):
                    changed = await self.sweep()
                    if changed:
                        log.info("segment sweep: %d memberships changed with time", changed)
            except Exception as exc:
                log.warning("segment sweep failed: %r", exc)
            await asyncio.sleep(self.every_s)


async def refit_periodically(values: ValueStore, redis, every_s: float, stopping, poll_s: float = 5.0) -> None:
    """Refits every `every_s`, and sooner while the number of buyers is still doubling
    (a young shop's first customers get a model within seconds). A Redis lock lets
    one worker of many do it."""
    lock_key = values.model_key + ":lock"
    while not stopping():
        try:
            fitted_at, customers = await values.last_fit()
            buyers = await redis.scard(values.buyers_key)
            due = buyers and (time.time() * 1000 - fitted_at >= every_s * 1000 or buyers > 2 * customers)
            if due and await redis.set(lock_key, b"1", nx=True, ex=max(int(poll_s), 1)):
                await values.refit()
        except Exception as exc:
            log.warning("value refit failed: %r", exc)
        await asyncio.sleep(poll_s)
