"""Builds the zstd dictionary that profile blobs are compressed with (run once per format change).

Profiles share their field names and structure, which a small dictionary learns,
so a typical anonymous profile shrinks to about a fifth. The dictionary is part of
the stored format: blobs name its version in their first byte, and a new version
must be added beside the old one, never replace it.

    python -m engine.profiles.train_zdict engine/profiles/profile-v1.zdict
"""

from __future__ import annotations

import random
import sys
import uuid

import msgpack
import zstandard

from engine.profiles.model import fold, new_profile

CATEGORIES = ["shoes", "coats", "umbrellas", "hats", "bags", "books", "toys", "garden", "kitchen", "sports"]
KINDS = [
    "page_view",
    "page_view",
    "page_view",
    "page_ping",
    "product_view",
    "add_to_cart",
    "purchase",
    "identify",
    "link_click",
]


def sample_profile(rng: random.Random) -> dict:
    ts = 1_700_000_000_000 + rng.randrange(10**11)
    events = []
    for i in range(rng.randint(1, 40)):
        ts += rng.randint(1000, 600_000)
        kind = rng.choice(KINDS)
        category = rng.choice(CATEGORIES)
        product = {"id": f"sku-{rng.randint(1, 99999)}", "category": category, "price": round(rng.uniform(1, 300), 2)}
        event = {
            "event_id": uuid.UUID(int=rng.getrandbits(128)).hex,
            "type": kind,
            "ts": ts,
            "session_id": uuid.UUID(int=rng.getrandbits(128)).hex[: rng.choice((16, 32))],
            "url": f"https://www.shop-{rng.randint(1, 50)}.example/{category}/{rng.randint(1, 999)}",
            "title": f"{category.title()} | Shop",
            "props": {},
        }
        if kind in ("product_view", "add_to_cart"):
            event["props"] = {"product": product}
        elif kind == "purchase":
            event["props"] = {
                "order": {
                    "id": str(rng.randint(1, 10**9)),
                    "revenue": product["price"],
                    "items": [dict(product, qty=1)],
                }
            }
        elif kind == "identify":
            event["user_id"] = f"user-{rng.randint(1, 10**6)}"
            event["props"] = {"traits": {"first_name": rng.choice(["Ada", "Kari", "Ola", "Grace"])}}
        elif kind == "page_ping":
            event["props"] = {"engaged_ms": 10_000}
        events.append(event)
    return fold(new_profile(uuid.UUID(int=rng.getrandbits(128)).hex), events)


def train(samples: int = 5000, size: int = 8192, seed: int = 1) -> bytes:
    rng = random.Random(seed)
    blobs = [msgpack.packb(sample_profile(rng)) for _ in range(samples)]
    return zstandard.train_dictionary(size, blobs).as_bytes()


if __name__ == "__main__":
    with open(sys.argv[1], "wb") as out:
        out.write(train())
