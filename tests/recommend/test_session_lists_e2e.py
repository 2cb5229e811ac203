"""End to end: views posted to the collector -> worker (the pool of recent sessions) -> for-you mid-session.

An anonymous visitor's for-you follows engine.recommend.session_rule over the sessions the
worker stored, each item's evidence counts stored sessions, and erasing a neighbour takes
their sessions out of the pool and out of the evidence.
"""

from __future__ import annotations

import events as builders
from helpers import unique, wait_until

from engine.recommend import session_rule
from engine.recommend.sessions import SessionStore

AUTH = {"Authorization": "Bearer test-key"}
T0 = 1_795_400_000_000


async def read(store, vid, session, **options):
    """(the session, the other sessions read) below the rule's threshold."""
    found = await store.read(vid, session, **options)
    assert found.pairs is None
    return found.session, found.candidates


async def post(engine, vid, events):
    async with engine.client(cookies={"clickstream_vid": vid}) as client:
        response = await client.post("/v1/events", json={"events": events})
    assert response.status_code == 202, response.text
    assert response.json()["accepted"] == len(events)


async def browse(engine, vid, items, start=0):
    views = [
        builders.product_view(vid, item, T0 + start + n, category="c", session_id=f"s-{vid}", event_id=None)
        for n, item in enumerate(items)
    ]
    await post(engine, vid, views)


async def for_you(engine, vid):
    async with engine.client() as client:
        response = await client.get(
            "/v1/recommendations/for-you", params={"visitor_id": vid, "k": 5, "max_per_category": 0}, headers=AUTH
        )
    assert response.status_code == 200, response.text
    return response.json()


async def test_for_you_mid_session_follows_the_rule_over_the_stored_sessions_and_erasure_removes_them(
    engine, redis_client
):
    tag = unique("ss")
    a, b, x, y, z = (f"{tag}-{n}" for n in "abxyz")
    neighbours = {unique(): [a, b, x], unique(): [a, y, x], unique(): [b, x, z]}
    for n, (vid, items) in enumerate(neighbours.items()):
        await browse(engine, vid, items, 10 * n)
    shopper = unique()
    await browse(engine, shopper, [a, b], 100)
    store = SessionStore(redis_client, engine.settings.redis_prefix)

    async def served():
        mine, others = await read(store, shopper, f"s-{shopper}")
        out = await for_you(engine, shopper) if len(others) == 3 else None
        return (out, mine, others) if out and out["source"].startswith("session") else None

    out, mine, others = await wait_until(served, timeout=30, message="for-you from the session pool")
    assert mine == [a, b]
    expected = session_rule.for_session(mine, others)
    assert expected.weight == 0.0  # b is in 2 stored sessions, below the threshold: the neighbours decide
    from_session = [e for e in out["items"] if e["because"]["source"] == "session"]
    assert [e["id"] for e in from_session] == [i for i, _ in expected.ranked][: len(from_session)]
    assert [e["id"] for e in from_session][:1] == [x]  # every neighbour holds x
    for entry in from_session:
        holding = [vid for vid, items in neighbours.items() if entry["id"] in items]
        why = entry["because"]
        assert why["sessions"] == len(holding), entry
        assert why["with"] in mine and any(why["with"] in neighbours[vid] for vid in holding), entry

    gone = next(vid for vid, items in neighbours.items() if items == [a, b, x])
    async with engine.client() as client:
        response = await client.delete(f"/v1/profiles/{gone}", headers=AUTH)
    assert response.status_code in (200, 202), response.text
    assert await store.sessions_of(gone) == []
    _, others = await read(store, shopper, f"s-{shopper}")
    assert len(others) == 2
    after = await for_you(engine, shopper)
    why = {e["id"]: e["because"] for e in after["items"]}
    assert why[x] == {"source": "session", "with": b, "sessions": 2}

    # three more sessions with b: b is in 4 stored sessions, the threshold, and its pair counts order the list
    for n, items in enumerate([[b, z], [b, z, y], [b, x]]):
        await browse(engine, unique(), items, 200 + 10 * n)

    async def counted():
        found = await store.read(shopper, f"s-{shopper}")
        return (await for_you(engine, shopper), found) if found.n_last == 4 else None

    out, found = await wait_until(counted, timeout=30, message="b seen in 4 sessions")
    assert found.n_last == 4 and found.pairs[z] == 3 and found.pairs[x] == 2 and found.pairs[y] == 1
    from_session = [e for e in out["items"] if e["because"]["source"] == "session"]
    assert [e["id"] for e in from_session] == [z, x, y]
    assert [e["because"] for e in from_session] == [{"source": "session", "with": b, "sessions": n} for n in (3, 2, 1)]
