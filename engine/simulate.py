"""`clickstream simulate`: synthetic shop traffic posted to a running collector."""

from __future__ import annotations

import random
import time
import uuid

import httpx

CATEGORIES = ["shoes", "umbrellas", "coats", "hats", "bags"]


def synthetic_events(visitors: int, events: int, seed: int) -> list[dict]:
    """Page views, product views, carts and purchases with a believable mix."""
    rng = random.Random(seed)
    now = int(time.time() * 1000) - events
    out = []
    for i in range(events):
        visitor = f"sim-{rng.randrange(visitors)}"
        roll = rng.random()
        category = rng.choice(CATEGORIES)
        product = {
            "id": f"{category}-{rng.randrange(20)}",
            "category": category,
            "price": round(rng.uniform(5, 200), 2),
        }
        event = {
            "event_id": uuid.UUID(int=rng.getrandbits(128)).hex,
            "visitor_id": visitor,
            "session_id": f"{visitor}-s",
            "ts": now + i,
            "url": f"https://shop.example/{category}",
        }
        if roll < 0.6:
            event.update(type="page_view", title=category.title())
        elif roll < 0.85:
            event.update(type="product_view", props={"product": product})
        elif roll < 0.95:
            event.update(type="add_to_cart", props={"product": product})
        else:
            event.update(
                type="purchase",
                props={
                    "order": {
                        "id": uuid.UUID(int=rng.getrandbits(128)).hex,
                        "items": [{"id": product["id"], "qty": 1, "price": product["price"]}],
                    }
                },
            )
        out.append(event)
    return out


async def simulate(url: str, *, visitors: int, events: int, batch: int, seed: int) -> int:
    sent = 0
    payload = synthetic_events(visitors, events, seed)
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        for start in range(0, len(payload), batch):
            response = await client.post("/v1/events", json={"events": payload[start : start + batch]})
            response.raise_for_status()
            sent += response.json()["accepted"]
    return sent
