"""End to end: collector -> Kafka -> worker (co-occurrence step) -> Redis -> recommendation API, all real.

Needs the recommendation step in the worker and the routes in the app (engine.worker,
engine.app): until they are wired, these tests fail with a 404 or a timeout.
"""

from __future__ import annotations

from functools import partial

import events as builders
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


# An order as the tracker posts it: no event id (the collector gives one), lines at 2.0 in category "c".
purchase = partial(builders.purchase, ts=T0, session_id="s-{vid}", price=2.0, category="c", event_id=None)


async def also_bought(engine, item, **params):
    async with engine.client() as client:
        response = await client.get(
            "/v1/recommendations/also-bought", params={"item": item, "k": 5, **params}, headers=AUTH
        )
    assert response.status_code == 200, response.text
    return response.json()


async def test_purchases_posted_become_also_bought(engine):
    tag = unique("sku")
    seed, partner, other = f"{tag}-seed", f"{tag}-partner", f"{tag}-other"
    buyers = [unique() for _ in range(3)]
    events = [
        purchase(buyers[0], f"{tag}-o1", [seed, partner]),
        purchase(buyers[1], f"{tag}-o2", [seed, partner]),
        purchase(buyers[2], f"{tag}-o3", [seed, other]),
    ]
    await post(engine, events)
    await post(engine, events[:2])  # the tracker retrying: same orders, new event ids

    def because(out, item):
        return next(entry["because"] for entry in out["items"] if entry["id"] == item)

    async def counted():
        out = await also_bought(engine, seed, k=10, max_per_category=0)
        listed = [i["id"] for i in out["items"]]
        return out if partner in listed and other in listed and because(out, other).get("orders") == 1 else None

    out = await wait_until(counted, timeout=30, message="the co-purchased items listed")
    assert out["item"] == seed and out["source"].startswith("cooccurrence")
    listed = [i["id"] for i in out["items"]]
    assert listed.index(partner) < listed.index(other)  # same popularity, twice the orders with the seed
    # the evidence is what was sent: two orders hold seed and partner (the retries counted nothing), one the other
    assert because(out, partner) == {"source": "cooccurrence", "with": seed, "orders": 2}
    assert because(out, other) == {"source": "cooccurrence", "with": seed, "orders": 1}  # no minimum support

    # with the visitor: what they bought is dropped
    mine = await also_bought(engine, seed, visitor_id=buyers[0], max_per_category=0)
    assert partner not in [i["id"] for i in mine["items"]]

    # erasing a buyer subtracts their order, and the evidence says so
    async with engine.client() as client:
        assert (await client.delete(f"/v1/profiles/{buyers[1]}", headers=AUTH)).status_code == 200

    async def one_left():
        out = await also_bought(engine, seed, k=10, max_per_category=0)
        return out if because(out, partner).get("orders") == 1 else None

    await wait_until(one_left, timeout=30, message="one co-purchase left after erasure")


async def test_every_items_evidence_matches_the_orders_sent_and_the_counts_in_redis(engine, redis_client):
    tag = unique("ev")
    items = [f"{tag}-{n}" for n in range(6)]
    orders = [items[:3], items[:2], [items[0], items[3]], items[1:5], [items[0], items[5]], items[:2]]
    await post(engine, [purchase(unique(), f"{tag}-o{n}", basket) for n, basket in enumerate(orders)])
    seed = items[0]
    sent = {b: sum(1 for basket in orders if seed in basket and b in basket) for b in items[1:]}

    async def all_counted():
        out = await also_bought(engine, seed, k=10, max_per_category=0)
        listed = {e["id"]: e["because"] for e in out["items"] if e["because"]["source"] == "cooccurrence"}
        return out if {b: why["orders"] for b, why in listed.items()} == {b: n for b, n in sent.items() if n} else None

    out = await wait_until(all_counted, timeout=30, message="every co-purchase counted")
    pairs = await redis_client.hgetall(f"{engine.settings.redis_prefix}:rec:{{co}}:pp:{seed}")
    in_redis = {k.decode(): int(v) for k, v in pairs.items()}
    for entry in out["items"]:
        why = entry["because"]
        if why["source"] == "cooccurrence":
            assert why["with"] == seed and why["orders"] == in_redis[entry["id"]] == sent[entry["id"]], entry
        else:  # a popularity pick was never bought with the seed
            assert why["source"] == "popularity" and entry["id"] not in in_redis, entry
    scores = [entry["score"] for entry in out["items"]]
    assert scores == sorted(scores, reverse=True)

    # for-you of a shopper who viewed the seed: the co-purchase evidence names the seed and the same counts
    shopper = unique()
    await post(
        engine,
        [
            {
                "type": "product_view",
                "visitor_id": shopper,
                "session_id": f"s-{shopper}",
                "ts": T0 + 5,
                "props": {"product": {"id": seed, "category": "c"}},
            }
        ],
    )

    async def personal():
        async with engine.client() as client:
            response = await client.get(
                "/v1/recommendations/for-you",
                params={"visitor_id": shopper, "k": 5, "max_per_category": 0},
                headers=AUTH,
            )
        out = response.json()
        return out if "cooccurrence" in out["source"] else None

    mine = await wait_until(personal, timeout=30, message="for-you from the viewed seed")
    co = [e for e in mine["items"] if e["because"]["source"] == "cooccurrence"]
    assert co and all(e["because"]["with"] == seed and e["because"]["orders"] == sent[e["id"]] for e in co), mine


async def test_for_you_for_the_visitors_own_cookie(engine):
    vid = unique()
    async with engine.client() as client:
        own = await client.get(
            "/v1/recommendations/for-you",
            params={"visitor_id": vid, "k": 3},
            headers={"Cookie": f"clickstream_vid={vid}"},
        )
        other = await client.get(
            "/v1/recommendations/for-you",
            params={"visitor_id": unique(), "k": 3},
            headers={"Cookie": f"clickstream_vid={vid}"},
        )
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
        out = await also_bought(engine, seed, k=10, max_per_category=0)
        orders_with = {
            i["id"]: i["because"].get("orders") for i in out["items"] if i["because"]["source"] == "cooccurrence"
        }
        return out if orders_with == {with_seed: 3, with_cart: 2} else None

    await wait_until(counted, timeout=30, message="the seed's own list: both partners counted")
    await post(
        engine,
        [
            {
                "type": "add_to_cart",
                "visitor_id": shopper,
                "session_id": f"s-{shopper}",
                "ts": T0 + 1,
                "props": {"product": {"id": in_cart, "category": "c"}, "qty": 1},
            }
        ],
    )

    async def cart_first():
        out = await also_bought(engine, seed, visitor_id=shopper, max_per_category=0)
        return out if out["items"] and out["items"][0]["id"] == with_cart else None

    out = await wait_until(cart_first, timeout=30, message="the partner of the cart's item first")
    assert in_cart not in [i["id"] for i in out["items"]] and out["item"] == seed
