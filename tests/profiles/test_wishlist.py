"""Wish lists and back-in-stock alerts against the real Redis."""

import uuid

import pytest

from engine.profiles.store import BatchResult
from engine.profiles.wishlist import Wishlists
from engine.recommend.catalog import CatalogItem


@pytest.fixture
async def wishes(redis_client):
    prefix = f"t{uuid.uuid4().hex[:8]}"
    yield Wishlists(redis_client, prefix, f"{prefix}:segchanges", f"{prefix}:segstats")
    keys = [k async for k in redis_client.scan_iter(match=f"{prefix}:*")]
    if keys:
        await redis_client.delete(*keys)


def wish(vid, item, kind="add_to_wishlist"):
    return {"type": kind, "visitor_id": vid, "event_id": uuid.uuid4().hex, "props": {"product": {"id": item}}}


async def alerts(w):
    return [{k.decode(): v.decode() for k, v in f.items()} for _, f in await w.redis.xrange(w.outbox_key)]


async def test_wishers_hear_once_when_an_unavailable_item_comes_back(wishes):
    result = BatchResult(profiles={"v1": {"user_id": "u1"}, "v2": {"user_id": None}, "v3": {"user_id": None}})
    await wishes(
        [
            wish("v1", "boot"),
            wish("v2", "boot"),
            wish("v3", "boot"),
            wish("v3", "boot", "remove_from_wishlist"),
            wish("v2", "hat"),
        ],
        result,
    )
    assert await wishes.wishers("boot") == ["u1", "v2"]  # the identified person under their user id
    item = lambda available: CatalogItem("boot", "shoes", available)
    assert await wishes.catalog_changed([item(True)], 1) == 0  # first word of the item: nothing came back
    assert await wishes.catalog_changed([item(False)], 2) == 0
    assert await wishes.catalog_changed([item(True)], 3) == 2
    assert await wishes.catalog_changed([item(True)], 3) == 0  # the same change again (a redelivery)
    assert sorted((a["kind"], a["person"], a["item"], a["at"]) for a in await alerts(wishes)) == [
        ("back_in_stock", "u1", "boot", "3"),
        ("back_in_stock", "v2", "boot", "3"),
    ]
    assert int(await wishes.redis.hget(wishes.stats_key, "alerts")) == 2


async def test_erasure_takes_the_person_off_every_wish_list_and_a_replay_alerts_nobody(wishes, redis_client):
    result = BatchResult(profiles={"v1": {"user_id": None}})
    await wishes([wish("v1", "boot"), wish("v1", "hat")], result)
    await wishes.forget("v1", [{"id": "v1"}])
    assert await wishes.wishers("boot") == [] and await wishes.wishers("hat") == []
    quiet = Wishlists(redis_client, wishes.prefix, wishes.outbox_key, wishes.stats_key, emit=False)
    await quiet([wish("v2", "boot")], BatchResult(profiles={"v2": {"user_id": None}}))
    await quiet.catalog_changed([CatalogItem("boot", "shoes", False)], 1)
    assert await quiet.catalog_changed([CatalogItem("boot", "shoes", True)], 2) == 0 and await alerts(quiet) == []


async def test_a_lower_price_alerts_each_wisher_once_per_change(wishes):
    await wishes(
        [wish("v1", "boot"), wish("v2", "boot"), wish("v2", "hat")],
        BatchResult(profiles={"v1": {"user_id": "u1"}, "v2": {"user_id": None}}),
    )
    item = lambda price, available=True: CatalogItem("boot", "shoes", available, price=price)
    assert await wishes.catalog_changed([item(100.0)], 1) == 0  # the first price heard: nothing dropped
    assert await wishes.catalog_changed([item(100.0)], 2) == 0  # loaded again at the same price
    assert await wishes.catalog_changed([item(120.0)], 3) == 0  # dearer
    assert await wishes.catalog_changed([item(80.0), CatalogItem("hat", "hats", True, price=5.0)], 4) == 2
    assert await wishes.catalog_changed([item(80.0)], 4) == 0  # the same change again (a redelivery)
    assert await wishes.catalog_changed([item(None)], 5) == 0  # no price given: the last one is kept
    assert await wishes.catalog_changed([item(79.5)], 6) == 2
    drops = [a for a in await alerts(wishes) if a["kind"] == "price_drop"]
    assert sorted((a["person"], a["item"], a["at"], a["old_price"], a["new_price"]) for a in drops) == [
        ("u1", "boot", "4", "120.0", "80.0"),
        ("u1", "boot", "6", "80.0", "79.5"),
        ("v2", "boot", "4", "120.0", "80.0"),
        ("v2", "boot", "6", "80.0", "79.5"),
    ]
    assert int(await wishes.redis.hget(wishes.stats_key, "alerts")) == 4


async def test_back_in_stock_for_less_is_two_alerts_and_a_replay_records_neither(wishes, redis_client):
    await wishes([wish("v1", "boot")], BatchResult(profiles={"v1": {"user_id": None}}))
    await wishes.catalog_changed([CatalogItem("boot", "shoes", False, price=50.0)], 1)
    assert await wishes.catalog_changed([CatalogItem("boot", "shoes", True, price=40.0)], 2) == 2
    assert sorted(a["kind"] for a in await alerts(wishes)) == ["back_in_stock", "price_drop"]
    quiet = Wishlists(redis_client, wishes.prefix, wishes.outbox_key, wishes.stats_key, emit=False)
    await quiet.clear()
    await quiet([wish("v1", "boot")], BatchResult(profiles={"v1": {"user_id": None}}))
    await quiet.catalog_changed([CatalogItem("boot", "shoes", True, price=50.0)], 1)
    assert await quiet.catalog_changed([CatalogItem("boot", "shoes", True, price=30.0)], 2) == 0
    assert len(await alerts(quiet)) == 2  # only the two of before
    assert await redis_client.hget(f"{wishes.prefix}:prices", "boot") == b"30.0"  # rebuilt all the same
