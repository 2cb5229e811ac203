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
