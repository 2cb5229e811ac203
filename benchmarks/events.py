"""The mixed benchmark stream: what a shop's tracker and back end send, in a realistic mix.

Per 20 events of a visitor: 8 page views, 4 pings, 4 product views, 1 add to cart, 1
impression, 1 purchase, and 1 identify for every 5th visitor (a login: they are
identified from then on; the others have a 9th page view). 10,000 visitors by
default, each visitor's events in order. `collected` adds what the
collector adds (received_at, trusted, verified), for events put on the topic directly.
"""

from __future__ import annotations

import uuid

VISITORS = 10_000
T0 = 1_795_400_000_000
KINDS = (
    "page_view",
    "page_ping",
    "page_view",
    "product_view",
    "page_view",
    "page_ping",
    "product_view",
    "add_to_cart",
    "page_view",
    "page_ping",
    "page_view",
    "product_view",
    "impression",
    "page_view",
    "page_ping",
    "product_view",
    "page_view",
    "identify",
    "page_view",
    "purchase",
)
CATEGORIES = ("shoes", "bags", "hats", "coats", "socks")


def visitor_ids(n: int = VISITORS) -> list[str]:
    """Visitor ids in the engine's form (UUID v4)."""
    return [str(uuid.UUID(int=i, version=4)) for i in range(n)]


def make_events(n: int, tag: str, visitors: int = VISITORS, now_ms: int = T0) -> list[dict]:
    """~150-byte events as the tracker sends them (JSON-able)."""
    vids = visitor_ids(visitors)
    out = []
    for i in range(n):
        kind = KINDS[(i // visitors + i) % len(KINDS)]  # each visitor goes through the mix
        if kind == "identify" and i % visitors % 5:
            kind = "page_view"
        vid = vids[i % visitors]
        item = (i * 7919) % 997
        event = {
            "event_id": f"{tag}{i:09d}",
            "type": kind,
            "visitor_id": vid,
            "session_id": f"s{i // 50_000}",
            "ts": now_ms + i,
            "url": f"https://shop.example/p/{item}",
        }
        product = {"id": f"sku-{item}", "category": CATEGORIES[item % 5], "price": 9.5}
        if kind in ("product_view", "add_to_cart"):
            event["props"] = {"product": product}
        elif kind == "page_ping":
            event["props"] = {"engaged_ms": 5_000}
        elif kind == "impression":
            event["props"] = {"slot": "promo", "content": "promo-discount", "decision_id": f"d{i}"}
        elif kind == "identify":
            event["user_id"] = f"user-{i % visitors}"
            event["props"] = {"traits": {"first_name": "Ada"}}
        elif kind == "purchase":
            event["props"] = {
                "order": {
                    "id": f"o{tag}{i}",
                    "revenue": 19.0,
                    "items": [
                        {"id": product["id"], "category": product["category"], "qty": 1, "price": 9.5},
                        {
                            "id": f"sku-{(item + 1) % 997}",
                            "category": CATEGORIES[(item + 1) % 5],
                            "qty": 1,
                            "price": 9.5,
                        },
                    ],
                }
            }
        out.append(event)
    return out


def collected(events: list[dict], received_at: int | None = None) -> list[dict]:
    """The events as a collector would put them on the topic, sent by the shop's back end (an API key)."""
    out = []
    for event in events:
        event = dict(event, received_at=received_at or event["ts"], trusted=True, bot=False)
        if event["type"] == "identify":
            event["verified"] = True
        out.append(event)
    return out
