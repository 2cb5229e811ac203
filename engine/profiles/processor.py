"""The worker's profile step for one batch: fold into profiles, link identities, apply state changes.

Before anything sees the batch, events the collector marked `bot` (crawlers,
headless browsers) are left out, so no store counts them (profiles, segments,
co-occurrence, the value model, the bandit), and purchases are marked as counting
or as claims (engine.profiles.orders).

State changes from the API (engine.profiles.changes) are applied where they stand in
the batch: the events before one are folded first, those after it next, so each
partition's order holds (an erasure subtracts exactly what came before it). Events
that cannot be applied (a broken envelope, a fold that fails, a malformed change)
are left out of every later step and returned in the result's `rejected`, with the
reason, for the dead-letter topic.
"""

from __future__ import annotations

import asyncio
import logging
from functools import partial
from typing import Awaitable, Callable

from engine.errors import InvalidInput
from engine.profiles import changes, model
from engine.profiles.orders import OrderTrust
from engine.profiles.people import People
from engine.profiles.store import BatchResult, ProfileStore
from engine.recommend.catalog import check_items

log = logging.getLogger("engine.profiles")

AfterBatch = Callable[[list[dict], BatchResult], Awaitable[None]]


def people_events(events: list[dict]) -> list[dict]:
    """The events sent by people: what the collector marked `bot` is kept out of every store.

    Anything that is not an object stays, for the fold to reject to the dead-letter topic."""
    return [event for event in events if type(event) is not dict or event.get("bot") is not True]


async def together(steps: list[Awaitable[None]]) -> None:
    """Runs the steps concurrently and lets every one finish (each is idempotent, so a retry of the batch after
    a failure is harmless) before raising the first failure, in the order given."""
    outcomes = await asyncio.gather(*steps, return_exceptions=True)
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            raise outcome


class ProfileProcessor:
    def __init__(
        self,
        store: ProfileStore,
        people: People,
        config: model.ProfileConfig,
        catalog=None,
        orders: OrderTrust | None = None,
    ) -> None:
        self.store = store
        self.people = people
        self.catalog = catalog  # engine.recommend.catalog.Catalog, for server:catalog
        self.orders = orders
        self.fold = partial(model.fold, config=config)
        self.after_batch: list[AfterBatch] = []  # in order: a step may rely on what the ones before it wrote
        # Steps that read only the batch and its profiles and write only their own keys: they run beside the
        # ordered ones, so one's Redis round trips and scripts overlap another's Python work.
        self.beside_batch: list[AfterBatch] = []
        # Steps over the whole batch, its state changes too, once every run is applied: given the batch's
        # profiles (BatchResult.profiles), so they need not read them again.
        self.after_all: list[AfterBatch] = []
        # Called with each catalog change the log brings: (items, at ms).
        self.on_catalog: list[Callable[[list, int], Awaitable[object]]] = []

    async def __call__(self, events: list[dict]) -> BatchResult:
        events = people_events(events)
        if self.orders is not None:
            await self.orders.mark(events)
        outcome = BatchResult()
        run: list[dict] = []
        in_run: set = set()  # visitor ids with events in the run
        for event in events:
            kind = event.get("type") if type(event) is dict else None
            if type(kind) is str and kind[:7] in ("server:", "consent"):
                if kind.startswith(changes.PREFIX):
                    if run:
                        await self._events(run, outcome)
                        run, in_run = [], set()
                    await self._change(event, outcome)
                    continue
                if kind == "consent" and event.get("visitor_id") in in_run:
                    await self._events(run, outcome)
                    run, in_run = [], set()
            run.append(event)
            in_run.add(event.get("visitor_id") if kind is not None else None)
        if run:
            await self._events(run, outcome)
        for step in self.after_all:
            await step(events, outcome)
        return outcome

    async def _events(self, events: list[dict], outcome: BatchResult) -> None:
        result = await self.store.apply_batch(events, self.fold)
        rejected = result.rejected
        if rejected:
            left_out = {id(event) for event, _ in rejected}
            events = [event for event in events if id(event) not in left_out]
        await self.people.link(events, result)
        await together([self._in_order(events, result), *(step(events, result) for step in self.beside_batch)])
        outcome.applied += result.applied
        outcome.profiles.update(result.profiles)
        outcome.first_time |= result.first_time
        outcome.malformed += rejected

    async def _in_order(self, events: list[dict], result: BatchResult) -> None:
        for step in self.after_batch:
            await step(events, result)

    async def _change(self, event: dict, outcome: BatchResult) -> None:
        try:
            props = changes.check(event)
            if not isinstance(event.get("visitor_id"), str) or not isinstance(event.get("event_id"), str):
                raise InvalidInput("visitor_id: expected the change's key")
            if event["type"] == changes.CATALOG:
                items = check_items(props["items"])
        except InvalidInput as exc:
            outcome.malformed.append((event, f"state change: {exc.error}"))
            return
        kind = event["type"]
        if kind == changes.PREFERENCES:
            await self.people.apply_preferences(event)
        elif kind == changes.ERASE:
            await self.people.apply_erasure(event)
            outcome.profiles[event["visitor_id"]] = None
        elif kind == changes.EXPOSURE:
            pass  # no profile state: the experiments' credit step (engine.experiments.credit) applies it
        elif self.catalog is not None:
            await self.catalog.put(items)
            for step in self.on_catalog:
                await step(items, int(event.get("ts") or 0))
        outcome.applied += 1
