"""The worker's derived-state steps: segment membership and the value model.

Segment membership is kept per person: a visitor id while anonymous, the user id
once identified (the visitor id then leaves every segment, so no one counts twice).
"""

from __future__ import annotations

import asyncio
import logging
import time

from engine.profiles.people import People
from engine.profiles.segments import derive, memberships as memberships_of
from engine.profiles.segments_index import SegmentIndex
from engine.profiles.store import BatchResult
from engine.profiles.value_store import ValueStore

log = logging.getLogger("engine.worker")


class SegmentUpdater:
    """After-batch step: re-evaluates the segments of everyone the batch touched."""

    def __init__(self, people: People, values: ValueStore, index: SegmentIndex, rules, half_life_days: float) -> None:
        self.people = people
        self.values = values
        self.index = index
        self.rules = rules  # engine.rules.live.LiveRules
        self.half_life_days = half_life_days

    async def __call__(self, events: list[dict], result: BatchResult) -> None:
        segments = self.rules.current.segments
        if not segments:
            return
        now_ms = int(time.time() * 1000)
        model = await self.values.model() if any(s.uses_value for s in segments) else None
        memberships: dict[str, dict[str, float]] = {}
        users = set()
        for vid, piece in result.profiles.items():
            if piece is not None and piece.get("user_id"):
                users.add(piece["user_id"])
                memberships[vid] = {}
            elif piece is not None:
                memberships[vid] = (derive(piece, model, segments, now_ms, self.half_life_days)["segments"] if model is not None
                                    else memberships_of(piece, segments, now_ms, self.half_life_days))  # no copy to make
            else:
                memberships[vid] = {}
        people = await self.people.users(sorted(users), result.profiles) if users else {}
        for user_id, person in people.items():
            memberships[user_id] = derive(person, model, segments, now_ms, self.half_life_days)["segments"] if person else {}
        await self.index.update(memberships, [s.name for s in segments])


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
