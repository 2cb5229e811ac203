"""End to end: views and orders posted to the collector -> worker -> also-bought with a visitor mid-session.

An anonymous visitor's also-bought follows engine.recommend.session_rule over the stored
sessions, the visitor's session with the asked item as its latest, each item's evidence
counting stored sessions; an identified visitor, or one without a session in the pool,
gets the item's own list, as without the session.
"""

from __future__ import annotations

import events as builders
from helpers import unique, user_hash, wait_until

from engine.recommend import session_rule
from engine.recommend.sessions import SessionStore

AUTH = {"Authorization": "Bearer test-key"}
T0 = 1_795_400_000_000


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


async def also_bought(engine, item, **params):
    async with engine.client() as client:
        response = await client.get(
            "/v1/recommendations/also-bought",
            params={"item": item, "k": 5, "max_per_category": 0, **params},
            headers=AUTH,
        )
    assert response.status_code == 200, response.text
    return response.json()


def from_session(out):
    return [e for e in out["items"] if e["because"]["source"] == "session"]


async def test_also_bought_mid_session_follows_the_rule_with_the_item_latest_and_others_get_the_items_own_list(
    engine, redis_client
):
    tag = unique("sab")
    a, b, seed, x, y, z, w = (f"{tag}-{n}" for n in ("a", "b", "seed", "x", "y", "z", "w"))
    for n in range(2):  # the item's own list: w, bought with it twice
        buyer = unique()
        await post(engine, buyer, [builders.purchase(buyer, f"{tag}-o{n}", [seed, w], T0, price=2.0, category="c")])
    neighbours = {unique(): [a, seed, x], unique(): [b, seed, y, x], unique(): [a, b, z]}
    for n, (vid, items) in enumerate(neighbours.items()):
        await browse(engine, vid, items, 10 * n)
    shopper = unique()
    await browse(engine, shopper, [a, b], 100)  # has not viewed the seed: it is added as the latest
    store = SessionStore(redis_client, engine.settings.redis_prefix)

    def bought_with(out):
        return {"id": w, "because": {"source": "cooccurrence", "with": seed, "orders": 2}} in [
            {"id": e["id"], "because": e["because"]} for e in out["items"]
        ]

    async def own_list():
        out = await also_bought(engine, seed)
        return out if bought_with(out) else None

    today = await wait_until(own_list, timeout=30, message="the item's own list")
    assert today["source"].startswith("cooccurrence")

    async def served():
        found = await store.read(shopper, f"s-{shopper}", latest=seed)
        if found.pairs is not None or len(found.candidates or {}) != 3:
            return None
        out = await also_bought(engine, seed, visitor_id=shopper)
        return (out, found) if out["source"].startswith("session") else None

    out, found = await wait_until(served, timeout=30, message="also-bought from the session pool")
    assert found.session == [a, b, seed] and found.n_last == 2  # below the threshold: the neighbours decide
    assert sorted(found.candidates.values()) == sorted(neighbours.values())
    expected = session_rule.for_session(found.session, found.candidates)
    assert expected.weight == 0.0
    listed = [e["id"] for e in out["items"]]
    assert [e["id"] for e in from_session(out)] == [i for i, _ in expected.ranked] == [x, y, z]
    assert a not in listed and b not in listed and seed not in listed  # the session's items are not listed again
    for entry in from_session(out):
        holding = [items for items in neighbours.values() if entry["id"] in items]
        assert entry["because"]["sessions"] == len(holding), entry
    # the latest session item a session holding it shares: the seed for x and y (a and b's sessions hold it too)
    assert [e["because"]["with"] for e in from_session(out)] == [seed, seed, b]

    # the seed in 4 stored sessions (and in the visitor's own, not counted): its pair counts order the list
    for n, items in enumerate([[seed, z], [seed, z, x]]):
        await browse(engine, unique(), items, 200 + 10 * n)
    await browse(engine, shopper, [seed], 300)

    async def counted():
        session, indexed = await store.head(shopper, f"s-{shopper}", seed)
        n, pairs = await store.last_counts(seed)
        if not indexed or n != 5:
            return None
        out = await also_bought(engine, seed, visitor_id=shopper)
        return (out, session, pairs) if from_session(out) and len(from_session(out)) == 3 else None

    out, session, pairs = await wait_until(counted, timeout=30, message="the seed in 4 other sessions")
    assert session == [a, b, seed]
    assert (pairs[x], pairs[z], pairs[y]) == (3, 2, 1)  # in the 5 sessions holding the seed (the shopper's has none)
    assert [e["id"] for e in from_session(out)] == [x, z, y]
    assert [e["because"] for e in from_session(out)] == [
        {"source": "session", "with": seed, "sessions": n} for n in (3, 2, 1)
    ]

    # an identified visitor mid-session, one whose session the pool does not hold, one never seen: the item's own list
    known = unique()
    login = {"user_hash": user_hash(f"{tag}-user")}  # a login the shop's back end signed
    await post(engine, known, [builders.event("identify", known, T0 + 400, login, user_id=f"{tag}-user")])
    await browse(engine, known, [a, b], 401)
    bare = unique()
    await post(engine, bare, [builders.page_view(bare, T0 + 500, session_id=f"s-{bare}")])

    async def seen():
        async with engine.client() as client:
            profiles = [(await client.get(f"/v1/profiles/{vid}", headers=AUTH)) for vid in (known, bare)]
        ready = all(r.status_code == 200 for r in profiles) and profiles[0].json().get("user_id")
        return ready and await store.sessions_of(known)

    await wait_until(seen, timeout=30, message="the identified visitor's session stored")
    today = await also_bought(engine, seed)
    assert today["source"].startswith("cooccurrence") and bought_with(today)
    for vid in (known, bare, unique()):
        assert await also_bought(engine, seed, visitor_id=vid) == today, vid
