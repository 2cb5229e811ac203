"""What the attacks share: keys, the victim's making, waiting for the worker."""

from __future__ import annotations

from helpers import unique, user_hash, wait_until

KEY = "test-key"  # every scope
SCOPED = {"read-3f9c1e": "read", "write-8a2d4b": "write", "erase-c71e05": "erase"}  # key -> its one scope
ORIGIN = "https://shop.example"
T0 = 1_795_400_000_000


def auth(key: str = KEY) -> dict:
    return {"Authorization": f"Bearer {key}"}


async def send(client, events, status=202, **kwargs):
    response = await client.post("/v1/events", json={"events": events}, **kwargs)
    assert response.status_code == status, response.text
    return response


async def profile_when(engine, profile_id, predicate, message, timeout=30):
    async def check():
        async with engine.client() as client:
            r = await client.get(f"/v1/profiles/{profile_id}", headers=auth())
        return r.status_code == 200 and predicate(r.json()) and r.json()

    return await wait_until(check, timeout=timeout, message=message)


async def customer(engine, *, traits=None, order=None):
    """A real customer: a browser that logged in with the back end's user hash, and (optionally)
    an order the shop's back end confirmed. Returns (browser client, visitor id, user id)."""
    user = unique("user")
    browser = engine.client()
    await send(browser, [{"type": "page_view", "url": "/", "ts": T0}])
    vid = browser.cookies["clickstream_vid"]
    await send(
        browser,
        [
            {
                "type": "identify",
                "user_id": user,
                "ts": T0 + 1,
                "props": {"traits": traits or {}, "user_hash": user_hash(user)},
            }
        ],
    )
    if order is not None:
        async with engine.client(headers=auth()) as shop:
            await send(shop, [{"type": "purchase", "visitor_id": vid, "ts": T0 + 2, "props": {"order": order}}])
    await profile_when(
        engine,
        user,
        lambda p: vid in p["visitor_ids"] and (order is None or p["commerce"]["orders"]),
        "the customer linked",
    )
    return browser, vid, user
