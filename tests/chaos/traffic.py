"""A steady sender with known totals, and the check that every acknowledged event counted once.

The sender is a back end (an API key), posting for many visitors. Each visitor's events are page views with fresh event_ids. A batch is posted until it
gets a 202, with the same event_ids on every try, as the tracker does (503 and
connection errors are retried after a short pause); so every event sent is one the
engine acknowledged, and each visitor's profile must count exactly that many.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field

import httpx

from helpers import wait_until


@dataclass
class Tally:
    acked: Counter = field(default_factory=Counter)  # visitor -> events acknowledged (202)
    statuses: Counter = field(default_factory=Counter)
    retry_after_missing: int = 0
    connection_errors: int = 0
    batches: int = 0

    @property
    def server_errors(self) -> int:
        """5xx answers other than a 503 that says when to retry."""
        return sum(n for code, n in self.statuses.items() if code >= 500 and code != 503) + self.retry_after_missing

    @property
    def events(self) -> int:
        return sum(self.acked.values())


class Sender:
    def __init__(
        self,
        url: str,
        api_key: str,
        visitors: int = 200,
        batch: int = 40,
        clients: int = 4,
        pause_s: float = 0.01,
        seed: int = 7,
    ) -> None:
        self.url = url
        self.headers = {"Authorization": f"Bearer {api_key}"}  # a back end: it posts for many visitors
        self.visitors = [
            str(uuid.UUID(int=random.Random(seed + i).getrandbits(128), version=4)) for i in range(visitors)
        ]
        self.batch = batch
        self.clients = clients
        self.pause_s = pause_s
        self.tally = Tally()
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task] = []
        self.rng = random.Random(seed)

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._client(i)) for i in range(self.clients)]

    async def stop(self) -> Tally:
        self._stop.set()
        await asyncio.gather(*self._tasks)
        return self.tally

    def set_url(self, url: str) -> None:
        self.url = url

    async def _client(self, index: int) -> None:
        async with httpx.AsyncClient(timeout=30) as client:
            while not self._stop.is_set():
                events = []
                for _ in range(self.batch):
                    events.append(
                        {
                            "type": "page_view",
                            "visitor_id": self.rng.choice(self.visitors),
                            "event_id": uuid.uuid4().hex,
                            "url": "/chaos",
                            "ts": int(time.time() * 1000),
                        }
                    )
                await self._post_until_accepted(client, events)
                self.tally.batches += 1
                await asyncio.sleep(self.pause_s)

    async def _post_until_accepted(self, client: httpx.AsyncClient, events: list[dict]) -> None:
        while True:
            try:
                response = await client.post(f"{self.url}/v1/events", json={"events": events}, headers=self.headers)
            except httpx.HTTPError:
                self.tally.connection_errors += 1
                await asyncio.sleep(0.2)
                continue
            self.tally.statuses[response.status_code] += 1
            if response.status_code == 202:
                assert response.json()["accepted"] == len(events), response.text
                for event in events:
                    self.tally.acked[event["visitor_id"]] += 1
                return
            if response.status_code == 503 and not response.headers.get("retry-after"):
                self.tally.retry_after_missing += 1
            assert response.status_code >= 500, f"{response.status_code}: {response.text}"
            await asyncio.sleep(0.2)


async def counted(url: str, api_key: str, tally: Tally, timeout: float = 90.0) -> tuple[int, int]:
    """Waits until every visitor's profile counts what was acknowledged; returns (lost, double) events."""
    headers = {"Authorization": f"Bearer {api_key}"}
    state = {"lost": None, "double": None}

    async def settled():
        lost = double = 0
        async with httpx.AsyncClient(base_url=url, timeout=10) as client:
            for vid, want in tally.acked.items():
                response = await client.get(f"/v1/profiles/{vid}", headers=headers)
                have = response.json().get("counts", {}).get("page_view", 0) if response.status_code == 200 else 0
                lost += max(0, want - have)
                double += max(0, have - want)
        state.update(lost=lost, double=double)
        return lost == 0 and double == 0

    try:
        await wait_until(settled, timeout, interval=1.0, message="every acknowledged event counted once")
    except AssertionError:
        pass
    return state["lost"], state["double"]
