"""Serving against the real Redis: the blend, every filter, the fallbacks, the HTTP edge and a live model swap."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import threading
import uuid
from functools import partial

import events as builders
import httpx
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings as hsettings, strategies as st
from redis.asyncio import Redis
from starlette.applications import Starlette

from engine.profiles.people import People
from engine.profiles.store import ProfileStore
from engine.recommend import ease
from engine.recommend.als_model import AlsModel
from engine.recommend.als_store import ModelHolder, publish
from engine.recommend.catalog import Catalog, CatalogItem
from engine.api.access import Access
from engine.api.catalog import catalog_routes
from engine.api.errors import EXCEPTION_HANDLERS
from engine.api.recommendations import recommend_routes
from engine.recommend.config import RecommendConfig
from engine.recommend.ranking import Info, select
from engine.recommend.seeds import seeds_of
from engine.recommend.service import RecommendService
from engine.recommend.sessions import SessionStore
from engine.recommend.store import CooccurrenceUpdater
from engine.settings import Settings
from helpers import visitor

T0 = 1_795_400_000_000
AUTH = {"Authorization": "Bearer test-key"}
CATEGORY = {
    "a": "snacks",
    "e": "snacks",
    "x": "snacks",
    "b": "drinks",
    "c": "drinks",
    "d": "drinks",
    "m": "dairy",
    "t1": "toys",
    "t2": "toys",
    "z": "toys",
    "y": "drinks",
}
# seed a (12 orders of 21): b (4 orders together), c (3), d (2), e (2), x (1); m is in 8 orders, never with a
ORDERS = (
    [["a", "b"]] * 4
    + [["a", "c"]] * 3
    + [["a", "d"]] * 2
    + [["a", "e"]] * 2
    + [["a", "x"]]
    + [["m"]] * 6
    + [["t1", "m"]] * 2
    + [["t2"]]
)


# Every order from the buyer's own session; items in their CATEGORY.
purchase = partial(builders.purchase, session_id="s-{vid}", category=CATEGORY.__getitem__)
view = partial(builders.product_view, category=CATEGORY.__getitem__, event_id="v-{vid}-{session_id}-{item}")


def add_to_cart(vid, item, ts):
    return {
        "event_id": f"c-{vid}-{item}-{ts}",
        "type": "add_to_cart",
        "visitor_id": vid,
        "session_id": f"s-{vid}",
        "ts": ts,
        "props": {"product": {"id": item, "category": CATEGORY[item]}, "qty": 1},
    }


identify = partial(builders.identify, event_id="i-{vid}")


class Shop:
    def __init__(
        self,
        redis,
        prefix,
        config=RecommendConfig(max_per_category=0, repurchase_categories=("dairy",), prior_strength=2.0),
    ):
        self.redis = redis
        self.prefix = prefix
        self.profiles = ProfileStore(redis, prefix)
        self.people = People(redis, self.profiles)
        self.updater = CooccurrenceUpdater(redis, prefix)
        self.models = ModelHolder(redis, prefix, poll_s=0.05)
        self.service = RecommendService(self.updater.store, Catalog(redis, prefix), self.models, self.people, config)

    async def feed(self, events):
        result = await self.profiles.apply_batch(events)
        await self.people.link(events, result)
        await self.updater(events, result)

    def client(self):
        access = Access(Settings(api_keys=("test-key",)).api_keys, self.people.linked_user)
        return client_for(recommend_routes(access, self.service) + catalog_routes(access, self.service))


BUYER1, BUYER2, DEV1 = visitor("buyer1"), visitor("buyer2"), visitor("dev1")


def client_for(routes):
    app = Starlette(routes=routes, exception_handlers=EXCEPTION_HANDLERS)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


@pytest.fixture
async def shop(redis_client):
    prefix = f"t{uuid.uuid4().hex[:8]}"
    shop = Shop(redis_client, prefix)
    await shop.feed(
        [purchase(visitor(f"buyer{n}"), f"o{n}", items, T0) for n, items in enumerate(ORDERS)]
        + [view("browser", "z", T0, session_id="s")]
    )
    yield shop
    await shop.models.stop()
    keys = [k async for k in redis_client.scan_iter(match=f"{prefix}:*")]
    if keys:
        await redis_client.delete(*keys)


def ids(response: dict) -> list[str]:
    return [entry["id"] for entry in response["items"]]


# --- also bought -------------------------------------------------------------------


async def test_also_bought_ranks_shrunk_co_purchases_first_and_says_why(shop):
    out = await shop.service.also_bought("a", k=4)
    assert out["item"] == "a"
    assert ids(out) == ["b", "c", "d", "e"]
    assert out["source"] == "cooccurrence"
    # (pair + m * n_b / N) / (n_a + m), m = 2: b is in 4 of a's 12 orders and in 4 of the 21
    assert out["items"][0] == {
        "id": "b",
        "score": pytest.approx((4 + 2 * 4 / 21) / 14, abs=1e-6),
        "because": {"source": "cooccurrence", "with": "a", "orders": 4},
    }
    assert [entry["because"]["orders"] for entry in out["items"]] == [4, 3, 2, 2]
    scores = [entry["score"] for entry in out["items"]]
    assert scores == sorted(scores, reverse=True)
    full = await shop.service.also_bought("a", k=20)
    # x, bought with a once, still above m, the best seller never bought with a (1 > 2 * 8 / 21)
    assert ids(full)[:6] == ["b", "c", "d", "e", "x", "m"] and "a" not in ids(full)
    assert full["items"][5]["because"] == {"source": "popularity", "orders": 8}
    assert full["source"] == "cooccurrence+popularity"


async def test_a_thin_seed_lets_a_best_seller_past_its_once_seen_partners_when_the_prior_is_strong(shop):
    shop.service.config = dataclasses.replace(shop.service.config, prior_strength=64.0, neighbours_cache_s=0)
    out = await shop.service.also_bought("t1", k=2)  # t1: 2 orders, both with m (8 of 21); never with a (12)
    # a: 64 * 12/21 / 66 = 0.55 beats m: (2 + 64 * 8/21) / 66 = 0.40; with m = 2, m's 2 orders decide
    assert ids(out) == ["a", "m"]
    assert [entry["because"] for entry in out["items"]] == [
        {"source": "popularity", "orders": 12},
        {"source": "cooccurrence", "with": "t1", "orders": 2},
    ]
    shop.service.config = dataclasses.replace(shop.service.config, prior_strength=2.0)
    assert ids(await shop.service.also_bought("t1", k=2)) == ["m", "a"]


async def test_a_hot_item_is_served_from_memory_and_a_new_order_shows_within_twice_the_cache_time(shop):
    shop.service.config = dataclasses.replace(shop.service.config, neighbours_cache_s=1.0)
    assert ids(await shop.service.also_bought("a", k=2)) == ["b", "c"]
    await shop.feed([purchase(f"late{n}", f"late{n}", ["a", "e"], T0 + 1) for n in range(4)])  # e: 6 orders with a
    assert ids(await shop.service.also_bought("a", k=2)) == ["b", "c"]  # kept: no Redis call for it
    await asyncio.sleep(1.05)
    assert ids(await shop.service.also_bought("a", k=2)) == ["b", "c"]  # past the cache time: kept, refreshed behind
    for _ in range(50):
        if ids(await shop.service.also_bought("a", k=2)) == ["e", "b"]:
            break
        await asyncio.sleep(0.02)
    assert ids(await shop.service.also_bought("a", k=2)) == ["e", "b"]
    await asyncio.sleep(2.05)  # unasked for twice the cache time: the next request computes afresh
    await shop.feed([purchase(f"later{n}", f"later{n}", ["a", "d"], T0 + 2) for n in range(6)])  # d: 8 orders
    assert ids(await shop.service.also_bought("a", k=1)) == ["d"]


async def test_als_joins_the_basket_blend_and_names_itself(shop):
    factors = np.array([[1, 0], [0.2, 0], [0.9, 0.1], [0, 1]], dtype=np.float32)  # y is a's nearest in factor space
    await publish(shop.redis, shop.prefix, AlsModel("v1", ["a", "b", "y", "t2"], factors))
    assert await shop.models.refresh()
    await shop.feed([view("browser2", "a", T0 + 5, session_id="s2")])
    out = await shop.service.for_you("browser2", k=10)
    assert "als" in out["source"].split("+")
    assert "y" in ids(out)  # never bought with a: only the model knows it
    assert {"source": "model", "model": "als"} in [entry["because"] for entry in out["items"]]
    assert "y" not in ids(await shop.service.also_bought("a", k=10))  # one seed: its own counts only
    assert not await shop.models.refresh()  # same version: nothing to swap


async def test_visitor_filter_drops_what_they_bought_except_repurchase_categories(shop):
    await shop.feed([purchase("regular", "or1", ["b", "m"], T0 + 100)])
    out = await shop.service.also_bought("a", k=20, visitor_id="regular")
    assert "b" not in ids(out)  # bought: dropped
    assert "m" in ids(out)  # dairy is bought again and again: kept
    assert "b" in ids(await shop.service.also_bought("a", k=20))  # no visitor: no filtering
    assert "b" in ids(await shop.service.also_bought("a", k=20, visitor_id="stranger"))


async def test_also_bought_with_a_cart_ranks_for_the_item_and_the_cart_together_and_drops_the_cart(shop):
    await shop.feed(
        [purchase(f"bd{n}", f"bd{n}", ["b", "d"], T0 + 10) for n in range(5)] + [add_to_cart("shopper", "b", T0 + 20)]
    )
    alone = await shop.service.also_bought("a", k=3)
    assert ids(alone) == ["b", "c", "d"]
    with_cart = await shop.service.also_bought("a", k=3, visitor_id="shopper")
    assert ids(with_cart) == ["d", "c", "e"]  # d goes with a (2 orders) and with b in the cart (5); b is dropped
    assert with_cart["item"] == "a" and with_cart["source"] == "cooccurrence+popularity"
    await shop.people.set_preferences("shopper", {"do_not_personalize": True})
    assert ids(await shop.service.also_bought("a", k=3, visitor_id="shopper")) == ids(alone)


async def test_also_bought_mid_session_takes_the_session_rule_unless_held_out_or_not_personalized(shop):
    pool = SessionStore(shop.redis, shop.prefix)
    shop.service.sessions = pool
    # four sessions viewed a then t2 (never bought with a); the browser viewed b in the current session
    views = [
        view(f"n{n}", item, T0 + 10 * n + m, session_id="s") for n in range(4) for m, item in enumerate(["a", "t2"])
    ]
    views.append(view("browsing", "b", T0 + 100, session_id="s"))
    result = await shop.profiles.apply_batch(views)
    await shop.people.link(views, result)
    await pool(views, result)
    own = await shop.service.also_bought("a", k=3)
    assert ids(own) == ["b", "c", "d"]
    out = await shop.service.also_bought("a", k=3, visitor_id="browsing")
    # the session [b, a]: a's 4 sessions order the list (t2 in all of them); b, viewed, is left out
    assert out["source"] == "session+popularity" and ids(out)[0] == "t2" and "b" not in ids(out)
    assert out["items"][0]["because"] == {"source": "session", "with": "a", "sessions": 4}
    shop.service.held_out = lambda person, vid: True  # the global holdout: no personalization
    assert await shop.service.also_bought("a", k=3, visitor_id="browsing") == own
    shop.service.held_out = None
    await shop.people.set_preferences("browsing", {"do_not_personalize": True})
    assert await shop.service.also_bought("a", k=3, visitor_id="browsing") == own


async def test_the_item_item_regression_joins_basket_lists_and_names_itself(shop):
    regression = ease.ItemRegression(
        seeds=np.array([0, 1], dtype=np.int32),
        targets=np.array([[2], [2]], dtype=np.int32),
        weights=np.array([[0.5], [0.5]], dtype=np.float32),
    )
    await publish(
        shop.redis, shop.prefix, AlsModel("v1", ["a", "b", "y"], np.zeros((3, 2), np.float32), {}, regression)
    )
    assert await shop.models.refresh()
    await shop.feed([add_to_cart("shopper", "b", T0 + 20)])
    assert "y" not in ids(await shop.service.also_bought("a", k=10))  # one item alone: no regression
    with_cart = await shop.service.also_bought("a", k=10, visitor_id="shopper")
    assert "y" in ids(with_cart) and "ease" in with_cart["source"].split("+")  # never bought: only the model knows it
    assert "y" in ids(await shop.service.for_you("shopper", k=10))


async def test_category_filter_and_per_category_cap(shop):
    drinks = await shop.service.also_bought("a", k=10, category="drinks")
    assert ids(drinks) == ["b", "c", "d"]
    capped = await shop.service.also_bought("a", k=5, max_per_category=1)
    assert ids(capped) == ["b", "e", "m", "t1"]  # one drink, one snack, one dairy, one toy; then nothing left
    assert ids(await shop.service.also_bought("a", k=10, category="drinks", max_per_category=1)) == ["b", "c", "d"]


async def test_unavailable_items_are_dropped(shop):
    await shop.service.catalog.put([CatalogItem("c", "drinks", available=False), CatalogItem("b", "drinks", True)])
    assert ids(await shop.service.also_bought("a", k=3)) == ["b", "d", "e"]


async def test_cold_item_gets_its_category_then_overall_popularity(shop):
    out = await shop.service.also_bought("z", k=4)  # viewed, never bought: a toy
    assert out["source"] == "popularity"
    assert ids(out) == ["t1", "t2", "a", "m"]  # a (12 orders) sells more than m (8)
    scores = [entry["score"] for entry in out["items"]]
    assert scores == sorted(scores, reverse=True) and scores[-1] > 0
    unknown = await shop.service.also_bought("never-seen", k=2)
    assert ids(unknown) == ["a", "m"] and unknown["source"] == "popularity"


# --- for you -------------------------------------------------------------------------


async def test_for_you_new_visitor_gets_popularity(shop):
    out = await shop.service.for_you("nobody", k=3)
    assert out == {"visitor_id": "nobody", "items": out["items"], "source": "popularity"}
    assert ids(out) == ["a", "m", "b"]
    assert ids(await shop.service.for_you("nobody", k=3, category="toys")) == ["t1", "t2"]


async def test_for_you_uses_the_whole_person_and_drops_their_purchases(shop):
    await shop.feed(
        [
            purchase("phone", "oc1", ["b"], T0 + 200),
            identify("phone", "carol", T0 + 201),
            identify("laptop", "carol", T0 + 300),
            view("laptop", "a", T0 + 301, session_id="s9"),
        ]
    )
    out = await shop.service.for_you("laptop", k=4)
    assert "cooccurrence" in out["source"]
    assert ids(out)[:3] == ["c", "d", "e"]  # a's neighbours, without b (bought on the phone) and a (viewed)
    await shop.people.set_preferences("laptop", {"do_not_personalize": True})
    assert (await shop.service.for_you("laptop", k=4))["source"] == "popularity"


async def test_for_you_starts_from_the_cart_and_leaves_its_items_out(shop):
    await shop.feed(
        [purchase(f"bd{n}", f"bd{n}", ["b", "d"], T0 + 10) for n in range(5)] + [add_to_cart("cart-only", "b", T0 + 20)]
    )
    out = await shop.service.for_you("cart-only", k=2)
    assert ids(out) == ["d", "a"] and out["source"] == "cooccurrence+popularity"


def test_anonymous_seeds_are_this_sessions_views():
    person = {
        "user_id": None,
        "sessions": {"last_start": 100},
        "commerce": {"items": {"old": 1, "new": 5}},
        "viewed": [{"id": "before", "ts": 50}, {"id": "now1", "ts": 100}, {"id": "now2", "ts": 120}],
    }
    assert seeds_of(person, 10) == (["new", "old"], ["now2", "now1"])
    assert seeds_of(dict(person, user_id="u"), 10) == (["new", "old"], ["now2", "now1", "before"])


def test_select_applies_every_filter_in_rank_order():
    info = {
        "a": Info(True, "x"),
        "b": Info(False, "x"),
        "c": Info(True, "x"),
        "d": Info(True, "y"),
        "e": Info(True, None),
    }
    ranked = [(i, 1.0) for i in "abcde"]
    assert select(ranked, info, 10) == [(i, 1.0) for i in "acde"]
    assert [i for i, _ in select(ranked, info, 10, exclude={"a"}, max_per_category=1)] == ["c", "d", "e"]
    assert [i for i, _ in select(ranked, info, 10, category="x", max_per_category=1)] == ["a", "c"]
    assert [i for i, _ in select(ranked, info, 2)] == ["a", "c"]


# --- HTTP ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "query, field",
    [
        ("", "item"),
        ("item=a&k=0", "k"),
        ("item=a&k=101", "k"),
        ("item=a&k=ten", "k"),
        ("item=a&k=%C2%B2", "k"),
        ("item=" + "x" * 65, "item"),
        ("item=a&max_per_category=-1", "max_per_category"),
        ("item=a&category=" + "c" * 257, "category"),
        ("item=a&visitor_id=" + "v" * 65, "visitor_id"),
    ],
)
async def test_bad_parameters_are_400_naming_the_field(shop, query, field):
    async with shop.client() as client:
        response = await client.get(f"/v1/recommendations/also-bought?{query}", headers=AUTH)
    assert response.status_code == 400, response.text
    assert response.json()["error"].startswith(f"{field}:")


async def test_http_contract_and_keys(shop):
    async with shop.client() as client:
        ok = await client.get("/v1/recommendations/also-bought?item=a&k=2", headers=AUTH)
        assert ok.status_code == 200  # (pair + m n_b / N) / (n_a + m), m = 2, N = 21, n_a = 12
        assert ok.json() == {
            "item": "a",
            "source": "cooccurrence",
            "items": [
                {
                    "id": "b",
                    "score": pytest.approx((4 + 2 * 4 / 21) / 14, abs=1e-6),
                    "because": {"source": "cooccurrence", "with": "a", "orders": 4},
                },
                {
                    "id": "c",
                    "score": pytest.approx((3 + 2 * 3 / 21) / 14, abs=1e-6),
                    "because": {"source": "cooccurrence", "with": "a", "orders": 3},
                },
            ],
        }
        public = await client.get("/v1/recommendations/also-bought?item=a&k=2")  # a product page, no key
        assert public.status_code == 200 and public.json() == ok.json()
        wrong = await client.get("/v1/recommendations/also-bought?item=a", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        # filtering by someone's purchases needs a key or their own cookie
        assert (await client.get(f"/v1/recommendations/also-bought?item=a&visitor_id={BUYER1}")).status_code == 401
        theirs = await client.get(
            f"/v1/recommendations/also-bought?item=a&visitor_id={BUYER2}",
            headers={"Cookie": f"clickstream_vid={BUYER1}"},
        )
        assert theirs.status_code == 403
        mine = await client.get(
            f"/v1/recommendations/also-bought?item=a&visitor_id={BUYER1}",
            headers={"Cookie": f"clickstream_vid={BUYER1}"},
        )
        assert mine.status_code == 200
        assert (
            (await client.get("/v1/recommendations/for-you?k=3", headers=AUTH))
            .json()["error"]
            .startswith("visitor_id:")
        )
        assert (await client.get(f"/v1/recommendations/for-you?visitor_id={BUYER1}")).status_code == 401
        own = await client.get(
            f"/v1/recommendations/for-you?visitor_id={BUYER1}", headers={"Cookie": f"clickstream_vid={BUYER1}"}
        )
        assert own.status_code == 200 and own.json()["visitor_id"] == BUYER1
        other = await client.get(
            f"/v1/recommendations/for-you?visitor_id={BUYER2}", headers={"Cookie": f"clickstream_vid={BUYER1}"}
        )
        assert other.status_code == 403


async def test_a_visitor_may_ask_by_the_user_id_their_cookie_is_linked_to(shop):
    await shop.feed([identify(DEV1, "dora", T0)])
    async with shop.client() as client:
        mine = await client.get(
            "/v1/recommendations/for-you?visitor_id=dora", headers={"Cookie": f"clickstream_vid={DEV1}"}
        )
        theirs = await client.get(
            "/v1/recommendations/for-you?visitor_id=carl", headers={"Cookie": f"clickstream_vid={DEV1}"}
        )
    assert mine.status_code == 200 and theirs.status_code == 403


async def test_catalog_put_validates_each_field_and_takes_effect(shop):
    async with shop.client() as client:
        bad = await client.put(
            "/v1/catalog/items",
            headers=AUTH,
            json=[{"id": "b", "category": "drinks", "available": True}, {"id": "c", "available": "no"}],
        )
        assert bad.status_code == 400 and bad.json()["error"].startswith("items[1].available:")
        for body, field in (
            ([{"category": "x"}], "items[0].id"),
            ([{"id": "b", "price": -1}], "items[0].price"),
            ([{"id": "b", "colour": "red"}], "items[0].colour"),
            ({}, "items"),
            ([], "items"),
        ):
            response = await client.put("/v1/catalog/items", headers=AUTH, json=body)
            assert response.status_code == 400 and response.json()["error"].startswith(field + ":"), response.text
        assert (await client.put("/v1/catalog/items", headers=AUTH, content=b"{nope")).status_code == 400
        assert (await client.put("/v1/catalog/items", json=[{"id": "b"}])).status_code == 401
        good = await client.put(
            "/v1/catalog/items", headers=AUTH, json=[{"id": "b", "category": "drinks", "available": False}]
        )
        assert good.json() == {"stored": 1}
        after = await client.get("/v1/recommendations/also-bought?item=a&k=3", headers=AUTH)
    assert [entry["id"] for entry in after.json()["items"]] == ["c", "d", "e"]


async def test_redis_out_of_reach_is_a_503():
    dead = Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
    shop = Shop(dead, "dead")
    async with shop.client() as client:
        response = await client.get("/v1/recommendations/also-bought?item=a", headers=AUTH)
    assert response.status_code == 503 and response.json()["error"].startswith("the store is unavailable")
    assert response.headers["retry-after"]


FUZZ = hsettings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
PARAM_VALUES = st.text(max_size=70) | st.integers(-5, 500).map(str) | st.sampled_from(["a", "z", "drinks", "0", "100"])
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=5),
    max_leaves=20,
)
item_like = st.fixed_dictionaries(
    {}, optional={k: json_values | st.text(max_size=70) for k in ("id", "category", "available", "title", "price", "x")}
)


@FUZZ
@given(
    params=st.dictionaries(
        st.sampled_from(["item", "k", "visitor_id", "category", "max_per_category"]), PARAM_VALUES, max_size=5
    ),
    cookie=st.none() | st.sampled_from([visitor("buyer1"), "buyer1", "a b", "x" * 70]),
)
async def test_no_query_gives_a_5xx(shop, params, cookie):
    headers = {} if cookie is not None else AUTH
    if cookie is not None:
        headers["Cookie"] = f"clickstream_vid={cookie}"
    async with shop.client() as client:
        for path in ("also-bought", "for-you"):
            response = await client.get(f"/v1/recommendations/{path}", params=params, headers=headers)
            assert response.status_code < 500, response.text
            assert response.status_code == 200 or response.json()["error"]


@FUZZ
@given(
    body=st.binary(max_size=200)
    | json_values.map(lambda v: json.dumps(v).encode())
    | st.lists(item_like, min_size=1, max_size=4).map(lambda v: json.dumps(v).encode())
)
async def test_no_catalog_body_gives_a_5xx(shop, body):
    async with shop.client() as client:
        response = await client.put("/v1/catalog/items", content=body, headers=AUTH)
    assert response.status_code in (200, 400), response.text
    assert response.status_code == 200 or response.json()["error"]


# --- a live model swap -------------------------------------------------------------


async def test_model_swap_while_serving_never_pauses_or_fails(shop, monkeypatch):
    old = AlsModel("v-old", ["a", "old-pick"], np.array([[1, 0], [1, 0]], dtype=np.float32))
    new = AlsModel("v-new", ["a", "new-pick"], np.array([[0, 1], [0, 1]], dtype=np.float32))
    await publish(shop.redis, shop.prefix, old)
    assert await shop.models.refresh()
    await publish(shop.redis, shop.prefix, new)

    # Hold the new model's parsing until requests have been served meanwhile: the swap must
    # not stop the event loop, and requests see the old model until one assignment replaces it.
    parsing, release = threading.Event(), threading.Event()
    parse = AlsModel.from_bytes

    def slow_parse(data):
        parsing.set()
        release.wait(10)
        return parse(data)

    monkeypatch.setattr(AlsModel, "from_bytes", staticmethod(slow_parse))
    swap = asyncio.create_task(shop.models.refresh())
    await asyncio.to_thread(parsing.wait, 10)
    await shop.feed([view("asker", "a", T0 + 5, session_id="s-asker")])  # for-you from a: the model joins the blend
    during = await asyncio.gather(*[shop.service.for_you("asker", k=10) for _ in range(50)])
    assert not swap.done()
    assert all("old-pick" in ids(out) and "new-pick" not in ids(out) for out in during)
    release.set()
    assert await swap

    errors, served = [], []

    async def keep_asking():
        for _ in range(40):
            try:
                served.append(await shop.service.for_you("asker", k=10))
            except Exception as exc:  # noqa: BLE001 - any error fails the test below
                errors.append(exc)

    monkeypatch.setattr(AlsModel, "from_bytes", staticmethod(parse))
    shop.models.start()  # polling for real while versions keep changing under it
    for n in range(5):
        await asyncio.gather(keep_asking(), publish(shop.redis, shop.prefix, old if n % 2 else new))
    assert errors == [] and len(served) == 200
    assert all(("old-pick" in ids(out)) != ("new-pick" in ids(out)) for out in served)  # one model at a time


async def test_a_cold_item_with_a_cold_cart_gets_its_category_first(shop):
    await shop.feed([add_to_cart("browsing", "t2", T0 + 20)])  # t2: bought once, alone
    out = await shop.service.also_bought("z", k=2, visitor_id="browsing")
    assert out["source"] == "popularity" and ids(out) == ["t1", "a"]  # toys first (t2 is in the cart), then overall


async def test_recently_viewed_lists_every_device_newest_first_without_what_was_bought(shop):
    phone, laptop = visitor("rv-phone"), visitor("rv-laptop")
    await shop.feed(
        [
            view(phone, "c", T0 + 10, session_id="p1"),
            identify(phone, "rita", T0 + 11),
            view(laptop, "d", T0 + 20, session_id="l1"),
            view(laptop, "e", T0 + 30, session_id="l1"),
            identify(laptop, "rita", T0 + 31),
            view(phone, "c", T0 + 40, session_id="p2"),
            purchase(laptop, "rv-o1", ["d"], T0 + 50),
        ]
    )
    async with shop.client() as client:
        own = await client.get(
            f"/v1/recommendations/recently-viewed?visitor_id={laptop}&k=5",
            headers={"Cookie": f"clickstream_vid={laptop}"},
        )
        assert own.status_code == 200, own.text
        assert own.json() == {
            "visitor_id": laptop,
            "items": [
                {"id": "c", "viewed_at": T0 + 40, "category": "drinks"},
                {"id": "e", "viewed_at": T0 + 30, "category": "snacks"},
            ],
        }
        keyed = await client.get("/v1/recommendations/recently-viewed?visitor_id=rita&k=1", headers=AUTH)
        assert [entry["id"] for entry in keyed.json()["items"]] == ["c"]
        assert (await client.get(f"/v1/recommendations/recently-viewed?visitor_id={laptop}")).status_code == 401
        assert (
            await client.get(
                f"/v1/recommendations/recently-viewed?visitor_id={laptop}",
                headers={"Cookie": f"clickstream_vid={BUYER1}"},
            )
        ).status_code == 403
        bad = await client.get(f"/v1/recommendations/recently-viewed?visitor_id={laptop}&k=0", headers=AUTH)
        assert bad.status_code == 400 and bad.json()["error"].startswith("k:")
    await shop.people.set_preferences(laptop, {"do_not_personalize": True})
    assert (await shop.service.recently_viewed(laptop))["items"] == []
