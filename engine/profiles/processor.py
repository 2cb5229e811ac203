"""The worker's profile step for one batch: fold into profiles, then link identities."""

from __future__ import annotations

from functools import partial
from typing import Awaitable, Callable

from engine.profiles import model
from engine.profiles.people import People
from engine.profiles.store import BatchResult, ProfileStore

AfterBatch = Callable[[list[dict], BatchResult], Awaitable[None]]


class ProfileProcessor:
    def __init__(self, store: ProfileStore, people: People, config: model.ProfileConfig) -> None:
        self.store = store
        self.people = people
        self.fold = partial(model.fold, config=config)
        self.after_batch: list[AfterBatch] = []

    async def __call__(self, events: list[dict]) -> int:
        result = await self.store.apply_batch(events, self.fold)
        await self.people.link(events, result)
        for step in self.after_batch:
            await step(events, result)
        return result.applied
