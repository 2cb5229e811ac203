"""The last events of each visitor (engine.stream.recent): the worker's step against a real Redis."""

from __future__ import annotations

import uuid
from types import SimpleNamespace

from engine.profiles.model import ProfileConfig
from engine.stream.recent import RecentEvents


def view(vid: str, n: int) -> dict:
    return {"event_id": f"e{n}", "visitor_id": vid, "type": "page_view", "ts": 1_000 + n, "url": f"https://s/{n}"}


async def test_each_event_once_newest_first_and_at_most_kept(redis_client):
    recent = RecentEvents(redis_client, f"t{uuid.uuid4().hex[:8]}", ttl_s=60, config=ProfileConfig(), kept=5)
    a, b = "visitor-a", "visitor-b"
    result = SimpleNamespace(profiles={a: {"consent": {}}, b: {"consent": {}}})
    await recent([view(a, 1), view(a, 2), view(b, 1)], result)
    await recent([view(a, 2), view(a, 1), view(a, 3), view(b, 1), view(b, 2)], result)  # resent, and new ones
    assert [row["id"] for row in await recent.of([a])] == ["e3", "e2", "e1"]
    assert [row["id"] for row in await recent.of([b])] == ["e2", "e1"]

    await recent([view(a, n) for n in range(4, 9)], result)
    listed = await redis_client.lrange(recent.key(a), 0, -1)
    assert len(listed) == 5  # the oldest fall off
    assert [row["id"] for row in await recent.of([a])] == ["e8", "e7", "e6", "e5", "e4"]
    await recent([view(a, 8), view(a, 4)], result)  # still listed: not added again
    assert [row["id"] for row in await recent.of([a])] == ["e8", "e7", "e6", "e5", "e4"]


async def test_first_time_events_are_listed_without_a_read_and_resent_ones_once(redis_client):
    recent = RecentEvents(redis_client, f"t{uuid.uuid4().hex[:8]}", ttl_s=60, config=ProfileConfig(), kept=3)
    a, b = "visitor-a", "visitor-b"
    first = [view(a, 1), view(a, 2), view(b, 1)]
    await recent(
        first, SimpleNamespace(profiles={a: {"consent": {}}, b: {"consent": {}}}, first_time=set(map(id, first)))
    )
    again = [view(a, 2), view(a, 3), view(a, 4)]  # e2 resent (not first-time), then two new ones
    await recent(again, SimpleNamespace(profiles={a: {"consent": {}}}, first_time={id(again[1]), id(again[2])}))
    assert [row["id"] for row in await recent.of([a])] == ["e4", "e3", "e2"]  # at most kept, newest first
    assert [row["id"] for row in await recent.of([b])] == ["e1"]
    assert await redis_client.ttl(recent.key(a)) > 0
