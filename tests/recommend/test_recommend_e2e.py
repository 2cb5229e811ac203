"""End to end: collector -> Kafka -> worker (co-occurrence step) -> Redis -> recommendation API, all real.

Needs the recommendation step in the worker and the routes in the app (engine.worker,
engine.app): until they are wired, these tests fail with a 404 or a timeout.
"""

from __future__ import annotations

from helpers import unique, wait_until

AUTH = {"Authorization": "Bearer test-key"}
T0 = 1_795_400_000_000


async def post(engine, events):
    """Each visitor's events from their own browser (their cookie): a purchase needs it."""
    by_visitor: dict[str, list] = {}
    for event in events:
        by_visitor.setdefault(event["visitor_id"], []).append(event)
    for vid, own in by_visitor.items():
        async with engine.client(cookies={"clickstream_vid": vid}) as client:
            response = await client.post("/v1/events", json={"events": own})
        assert response.status_code == 202, response.text
        assert response.json()["accepted"] == len(own)


def purchase(vid, order_id, items, ts=T0):
    return {"type": "purchase", "visitor_id": vid, "session_id": f"s-{vid}", "ts": ts,
            "props": {"order": {"id": order_id, "items": [{"id": i, "qty": 1, "price": 2.0, "category": "c"} for i in items]}}}


async def also_bought(engine, item, **params):
    async with engine.client() as client:
        response = await client.get("/v1/recommendations/also-bought", params={"item": item, "k": 5, **params}, headers=AUTH)
    assert response.status_code == 200, response.text
    return response.json()


async def test_purchases_posted_become_also_bought(engine):
    tag = unique("sku")
    seed, partner, other = f"{tag}-seed", f"{tag}-partner", f"{tag}-other"
    buyers = [unique() for _ in range(3)]
    events = [purchase(buyers[0], f"{tag}-o1", [seed, partner]), purchase(buyers[1], f"{tag}-o2", [seed, partner]),
              purchase(buyers[2], f"{tag}-o3", [seed, other])]
    await post(engine, events)
    await post(engine, events[:2])  # the tracker retrying: same orders, new event ids

    async def partner_first():
        out = await also_bought(engine, seed, max_per_category=0)
        # popularity alone can put the partner first before the worker has counted the pairs
        return out if out["items"] and out["items"][0]["id"] == partner and out["source"].startswith("cooccurrence") else None

    out = await wait_until(partner_first, timeout=30, message="the co-purchased item first")
    assert out["item"] == seed and out["source"].startswith("cooccurrence")
    assert other not in [i["id"] for i in out["items"][:1]]  # bought together once: under the minimum support

    # with the visitor: what they bought is dropped
    mine = await also_bought(engine, seed, visitor_id=buyers[0], max_per_category=0)
    assert partner not in [i["id"] for i in mine["items"]]

    # erasing a buyer subtracts their order: one co-purchase left, under the support
    async with engine.client() as client:
        assert (await client.delete(f"/v1/profiles/{buyers[1]}", headers=AUTH)).status_code == 200

    async def partner_gone():
        out = await also_bought(engine, seed, max_per_category=0)
        return out if not out["source"].startswith("cooccurrence") else None

    await wait_until(partner_gone, timeout=30, message="co-purchase under the support after erasure")


async def test_for_you_for_the_visitors_own_cookie(engine):
    vid = unique()
    async with engine.client() as client:
        own = await client.get("/v1/recommendations/for-you", params={"visitor_id": vid, "k": 3},
                               headers={"Cookie": f"clickstream_vid={vid}"})
        other = await client.get("/v1/recommendations/for-you", params={"visitor_id": unique(), "k": 3},
                                 headers={"Cookie": f"clickstream_vid={vid}"})
        bad = await client.get("/v1/recommendations/for-you", params={"visitor_id": vid, "k": 0}, headers=AUTH)
    assert own.status_code == 200 and own.json()["source"] == "popularity"
    assert other.status_code == 403
    assert bad.status_code == 400 and bad.json()["error"].startswith("k:")


async def test_a_cart_posted_to_the_collector_shapes_also_bought_for_that_visitor(engine):
    tag = unique("cart")
    seed, with_seed, with_cart, in_cart = f"{tag}-seed", f"{tag}-p1", f"{tag}-p2", f"{tag}-c"
    orders = [[seed, with_seed]] * 3 + [[seed, with_cart]] * 2 + [[in_cart, with_cart]] * 3
    await post(engine, [purchase(unique(), f"{tag}-o{n}", items) for n, items in enumerate(orders)])
    shopper = unique()

    async def counted():
        out = await also_bought(engine, seed, max_per_category=0)
        return out if [i["id"] for i in out["items"][:2]] == [with_seed, with_cart] else None

    await wait_until(counted, timeout=30, message="the seed's own list: its most frequent partner first")
    await post(engine, [{"type": "add_to_cart", "visitor_id": shopper, "session_id": f"s-{shopper}", "ts": T0 + 1,
                         "props": {"product": {"id": in_cart, "category": "c"}, "qty": 1}}])

    async def cart_first():
        out = await also_bought(engine, seed, visitor_id=shopper, max_per_category=0)
        return out if out["items"] and out["items"][0]["id"] == with_cart else None

    out = await wait_until(cart_first, timeout=30, message="the partner of the cart's item first")
    assert in_cart not in [i["id"] for i in out["items"]] and out["item"] == seed
