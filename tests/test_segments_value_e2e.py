"""Segments and value end to end: two devices browse, log in, buy; the person's segments,
value and segment sizes follow, and erasure takes them out of every segment."""

import json
import time

import redis.asyncio as aioredis

from helpers import unique, user_hash, wait_until

AUTH = {"Authorization": "Bearer test-key"}
# Two hours ago, not a fixed date: interest decays with the wall clock (14-day half-life).
T0 = int(time.time() * 1000) - 2 * 3_600_000


async def send(client, events):
    response = await client.post("/v1/events", json={"events": events})
    assert response.status_code == 202 and not response.json()["rejected"], response.text


async def members(engine, name):
    async with engine.client() as client:
        r = await client.get(f"/v1/segments/{name}?limit=1000", headers=AUTH)
    assert r.status_code == 200, r.text
    return {m["id"]: m["score"] for m in r.json()["members"]}


def view(pid, category="shoes"):
    return {"product": {"id": pid, "category": category, "price": 40.0}}


async def test_segments_and_value_follow_a_person_across_devices_and_erasure(engine, redis_url):
    user = unique("user")
    order = unique("o")
    async with engine.client() as laptop, engine.client() as phone:
        await send(
            laptop,
            [{"type": "product_view", "ts": T0 + i, "session_id": "l1", "props": view(f"s{i}")} for i in range(3)]
            + [{"type": "add_to_cart", "ts": T0 + 5, "session_id": "l1", "props": view("s1")}],
        )
        laptop_vid = laptop.cookies["clickstream_vid"]

        # Anonymous: the laptop's visitor id is a member, with its interest as the score. The worker
        # may take the four events in two batches: wait for the cart, then read the score.
        await wait_until(lambda: _has(engine, "cart-abandoners", laptop_vid), timeout=30, message="anonymous cart")
        assert 5 < (await members(engine, "shoe-lovers"))[laptop_vid] <= 6

        await send(phone, [{"type": "page_view", "url": "/", "ts": T0 + 10, "session_id": "p1"}])
        phone_vid = phone.cookies["clickstream_vid"]
        await send(
            laptop,
            [
                {
                    "type": "identify",
                    "user_id": user,
                    "ts": T0 + 20,
                    "session_id": "l1",
                    "props": {"traits": {"first_name": "Ada"}, "user_hash": user_hash(user)},
                }
            ],
        )
        await send(
            phone,
            [
                {
                    "type": "identify",
                    "user_id": user,
                    "ts": T0 + 21,
                    "session_id": "p1",
                    "props": {"user_hash": user_hash(user)},
                },
                {
                    "type": "purchase",
                    "ts": T0 + 30,
                    "session_id": "p1",
                    "props": {
                        "order": {
                            "id": order,
                            "revenue": 120.0,
                            "items": [{"id": "s1", "qty": 1, "price": 120.0, "category": "shoes"}],
                        }
                    },
                },
            ],
        )

    # Identified: the person (user id) is the member; the visitor ids have left.
    await wait_until(lambda: _has(engine, "buyers", user), timeout=30, message="the person joins buyers")
    buyers = await members(engine, "buyers")
    assert buyers[user] == 120.0 and laptop_vid not in buyers and phone_vid not in buyers
    shoe_lovers = await members(engine, "shoe-lovers")
    assert user in shoe_lovers and laptop_vid not in shoe_lovers
    assert user not in await members(engine, "cart-abandoners")  # the cart item was bought

    async with engine.client() as client:
        r = await client.get("/v1/segments", headers=AUTH)
        assert r.status_code == 200
        sizes = {s["name"]: s["size"] for s in r.json()["segments"]}
        assert sizes["buyers"] >= 1 and sizes["shoe-lovers"] >= 1
        assert (await client.get("/v1/segments")).status_code == 401

        person = (await client.get(f"/v1/profiles/{user}", headers=AUTH)).json()
    assert sorted(person["visitor_ids"]) == sorted([laptop_vid, phone_vid])
    assert set(person["segments"]) >= {"buyers", "shoe-lovers"} and "cart-abandoners" not in person["segments"]
    assert person["value"]["orders"] == 1 and person["value"]["revenue"] == 120.0
    assert person["value"]["tier"] in ("key", "growth", "low") and len(person["value"]["rfm"]["score"]) == 3

    # The worker fits the value model soon after the first buyers arrive.
    redis = aioredis.from_url(redis_url)
    prefix = engine.settings.redis_prefix

    async def fitted():
        raw = await redis.get(f"{prefix}:value:model")
        return raw is not None and json.loads(raw)["customers"] >= 1

    await wait_until(fitted, timeout=30, message="value model fitted")
    assert await redis.sismember(f"{prefix}:buyers", phone_vid)

    async with engine.client() as client:
        r = await client.delete(f"/v1/profiles/{user}", headers=AUTH)
        assert r.status_code == 200
    for name in ("buyers", "shoe-lovers", "cart-abandoners"):
        left = await members(engine, name)
        assert not {user, laptop_vid, phone_vid} & set(left), name
    assert not await redis.sismember(f"{prefix}:buyers", phone_vid)
    await redis.aclose()


async def _has(engine, name, member):
    return member in await members(engine, name)
