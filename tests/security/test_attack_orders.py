"""Attacks on commerce: claiming a real order's id first, and fake orders that would move value."""

from attacks import T0, auth, customer, profile_when, send
from helpers import unique, wait_until


async def test_a_stranger_cannot_squat_a_real_orders_id(secure, redis_client):
    from engine.recommend.store import CooccurrenceStore

    store = CooccurrenceStore(redis_client, secure.settings.redis_prefix)
    order_id, tea, cup = unique("order"), unique("tea"), unique("cup")
    async with secure.client() as stranger:  # their own cookie: a purchase of their own, in their name
        await send(
            stranger,
            [
                {
                    "type": "purchase",
                    "ts": T0,
                    "props": {
                        "order": {
                            "id": order_id,
                            "revenue": 1.0,
                            "items": [{"id": tea, "price": 0.5}, {"id": "junk", "price": 0.5}],
                        }
                    },
                }
            ],
        )
        squatter = stranger.cookies["clickstream_vid"]
    await profile_when(secure, squatter, lambda p: p["counts"].get("purchase") == 1, "the squatter's purchase")

    # The shop's back end confirms the real order for its customer.
    real = {"id": order_id, "revenue": 42.0, "items": [{"id": tea, "price": 30.0}, {"id": cup, "price": 12.0}]}
    browser, vid, user = await customer(secure, order=real)
    await browser.aclose()
    assert await wait_until(lambda: _neighbour(store, tea, cup), timeout=20, message="the real order's pair counted")
    assert order_id in await store.orders_of(vid) and order_id not in await store.orders_of(squatter)
    counts = await store.neighbours(tea)  # the squatter's own claim counts as theirs while the shop sent no order
    person = await profile_when(secure, user, lambda p: True, "the customer")
    assert person["commerce"]["revenue"] == 42.0 and person["commerce"]["orders"] == 1

    # Nor can anyone change it afterwards: the same id from the customer's own browser changes nothing.
    async with secure.client(cookies={"clickstream_vid": vid}) as same_browser:
        await send(
            same_browser,
            [
                {
                    "type": "purchase",
                    "ts": T0 + 9,
                    "props": {"order": {"id": order_id, "revenue": 1.0, "items": [{"id": "junk", "price": 1.0}]}},
                }
            ],
        )
    person = await profile_when(secure, user, lambda p: p["counts"].get("purchase") == 2, "the browser's copy applied")
    assert person["commerce"]["revenue"] == 42.0 and person["commerce"]["orders"] == 1
    assert await store.neighbours(tea) == counts


async def test_once_the_shop_sends_its_orders_a_browsers_orders_count_nowhere(secure, redis_client):
    from engine.recommend.store import CooccurrenceStore

    store = CooccurrenceStore(redis_client, secure.settings.redis_prefix)
    browser, vid, user = await customer(
        secure, order={"id": unique("order"), "revenue": 20.0, "items": [{"id": "mug", "price": 20.0}]}
    )
    fake, gold, ruby = unique("fake"), unique("gold"), unique("ruby")
    await send(
        browser,
        [
            {
                "type": "purchase",
                "ts": T0 + 20,
                "props": {
                    "order": {
                        "id": fake,
                        "revenue": 99999.0,
                        "items": [{"id": gold, "price": 50000.0}, {"id": ruby, "price": 49999.0}],
                    }
                },
            }
        ],
    )
    await browser.aclose()
    person = await profile_when(secure, user, lambda p: p["counts"].get("purchase") == 2, "the fake order applied")
    assert person["commerce"]["orders"] == 1 and person["commerce"]["revenue"] == 20.0
    assert person["value"]["revenue"] == 20.0
    assert [claim[2] for claim in person["commerce"]["claims"]] == [fake]
    assert await store.neighbours(gold) == {} and fake not in str(await store.orders_of(vid))
    async with secure.client() as client:
        buyers = await client.get("/v1/segments/buyers", headers=auth())
    assert "99999" not in buyers.text


async def _neighbour(store, item, other) -> bool:
    return (await store.neighbours(item)).get(other) == 1
