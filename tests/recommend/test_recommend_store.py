"""The co-occurrence store against the real Redis: same numbers as CoCounts, once per order, erasure subtracts."""

from __future__ import annotations

import random
import uuid
from functools import partial

import events as builders
import pytest
from helpers import worker_steps
from events import consent

from engine.profiles.store import BatchResult
from engine.recommend import cooccur, popularity
from engine.recommend.cooccur import CoCounts
from engine.recommend.store import CooccurrenceStore, CooccurrenceUpdater

T0 = 1_795_400_000_000
ITEMS = [f"i{n:02d}" for n in range(30)]


# Orders at a price of 1.0 a line, from one session; views in category "c" unless told.
purchase = partial(builders.purchase, session_id="s", price=1.0, total=True)
view = partial(builders.product_view, category="c")


def random_orders(rng, n, visitors=8):
    orders = []
    for o in range(n):
        size = rng.choice([1, 2, 3, 4, 6, 60])  # one beyond the per-order cap now and then
        items = [rng.choice(ITEMS) for _ in range(size)] if size < 60 else [f"big{j}" for j in range(size)]
        orders.append((f"u{o % visitors}", f"o{o}", items))
    return orders


async def assert_same_counts(store: CooccurrenceStore, ref: CoCounts):
    assert await store.counts() == {item: n for item, n in ref.counts.items() if n}
    assert (await store.totals())["orders"] == ref.orders
    for item in set(ref.counts) | set(await store.counts()):
        assert await store.neighbours(item) == {b: n for b, n in ref.pairs.get(item, {}).items() if n}, item
        for method in cooccur.METHODS:  # the script's normalization is cooccur.similarity's, exactly
            assert await store.similar(item, method=method, limit=1000) == ref.neighbours(item, method, 2), (
                item,
                method,
            )


async def test_counts_equal_the_reference_after_redelivery_retries_and_replay(world):
    rng = random.Random(3)
    orders = random_orders(rng, 120)
    events = [purchase(vid, oid, items, T0 + n) for n, (vid, oid, items) in enumerate(orders)]
    ref = CoCounts()
    for _, _, items in orders:
        ref.add_order(items)

    for start in range(0, len(events), 25):
        await worker_steps(world, events[start : start + 25])
    await worker_steps(world, events[40:90])  # a redelivered fetch
    await worker_steps(
        world, [dict(e, event_id=e["event_id"] + "-retry") for e in events[:30]]
    )  # same orders, new event ids
    store = world[2].store
    await assert_same_counts(store, ref)
    assert max(len(items) for items in map(lambda o: o[2], orders)) > cooccur.MAX_ITEMS_PER_ORDER
    assert len(await store.neighbours("big0")) == cooccur.MAX_ITEMS_PER_ORDER - 1

    # a replay over live state (no wipe) changes nothing either
    await worker_steps(world, events)
    await assert_same_counts(store, ref)


async def test_views_pair_once_per_session_and_match_view_pairs(world):
    rng = random.Random(5)
    sessions = {("a", "s1"): [], ("a", "s2"): [], ("b", "s1"): []}  # b's s1 is not a's s1
    events, ts = [], T0
    for _ in range(60):
        vid, sid = rng.choice(list(sessions))
        item = rng.choice(ITEMS[:8])
        events.append(view(vid, item, ts, session_id=sid))
        ts += 1
    expected_pairs: dict[str, dict[str, int]] = {}
    expected_counts: dict[str, int] = {}
    for event in events:
        key = (event["visitor_id"], event["session_id"])
        item = event["props"]["product"]["id"]
        for a, b in cooccur.view_pairs(sessions[key], item):
            expected_pairs.setdefault(a, {}).setdefault(b, 0)
            expected_pairs[a][b] += 1
        if item not in sessions[key]:
            expected_counts[item] = expected_counts.get(item, 0) + 1
            sessions[key].append(item)

    await worker_steps(world, events[:35])
    await worker_steps(world, events)  # redelivery of the first part with the rest
    store = world[2].store
    assert await store.counts("view") == expected_counts
    assert (await store.totals())["sessions"] == 3
    for item in ITEMS[:8]:
        assert await store.neighbours(item, "view") == expected_pairs.get(item, {})


async def test_erasure_subtracts_exactly_that_persons_orders_and_views(world):
    profiles, people, updater = world
    rng = random.Random(9)
    orders = random_orders(rng, 80, visitors=5)
    cat = lambda item: "dairy" if item < "i10" else "bread"  # noqa: E731
    events = [purchase(vid, oid, items, T0 + n, category=cat) for n, (vid, oid, items) in enumerate(orders)]
    # u0 and u1 are one person (both logged in as alice); u0 also viewed things
    events += [
        {
            "event_id": f"id-{v}",
            "type": "identify",
            "visitor_id": v,
            "user_id": "alice",
            "ts": T0 + 500,
            "props": {},
            "verified": True,
        }
        for v in ("u0", "u1")
    ]
    events += [view("u0", item, T0 + 600 + n, session_id="s9") for n, item in enumerate(ITEMS[:4])]
    events += [view("u2", item, T0 + 700 + n, session_id="s9") for n, item in enumerate(ITEMS[2:5])]
    await worker_steps(world, events)
    alice_only = {item for vid, _, items in orders if vid in ("u0", "u1") for item in items} - {
        item for vid, _, items in orders if vid not in ("u0", "u1") for item in items
    }

    await people.erase("alice")

    ref = CoCounts()
    for vid, _, items in orders:
        if vid not in ("u0", "u1"):
            ref.add_order(items)
    store = updater.store
    await assert_same_counts(store, ref)
    assert await store.counts("view") == {"i02": 1, "i03": 1, "i04": 1}
    assert await store.neighbours("i00", "view") == {}
    assert await store.neighbours("i03", "view") == {"i02": 1, "i04": 1}
    assert await store.orders_of("u0") == []

    popular = dict(await store.popular(1000, now_ms=T0))
    for item, n in ref.counts.items():
        if n:
            assert popular[item] == pytest.approx(
                sum(
                    0.5 ** ((T0 - (T0 + i)) / (7.0 * popularity.DAY_MS))
                    for i, (vid, _, items) in enumerate(orders)
                    if vid not in ("u0", "u1") and item in cooccur.order_items(items)
                )
            )
    assert not alice_only & set(popular)
    by_category = dict(await store.popular(1000, category="dairy", now_ms=T0))
    assert set(by_category) == {i for i in popular if i < "i10"}

    # the stream brings nothing back: alice's visitors are tombstoned
    await worker_steps(world, events)
    await assert_same_counts(store, ref)
    # and a second erasure subtracts nothing more
    await updater.forget("alice", [{"id": "u0"}, {"id": "u1"}])
    await assert_same_counts(store, ref)


async def test_visitors_without_analytics_consent_are_not_counted(world):
    events = [
        consent("shy", T0, analytics=False),
        purchase("shy", "o-shy", ["a", "b"], T0 + 1),
        view("shy", "a", T0 + 2, session_id="s"),
        view("shy", "b", T0 + 3, session_id="s"),
        purchase("ok", "o-ok", ["a", "c"], T0 + 4),
    ]
    await worker_steps(world, events)
    store = world[2].store
    assert await store.counts() == {"a": 1, "c": 1}
    assert await store.counts("view") == {}
    assert await store.orders_of("shy") == []


async def test_popularity_decays_and_knows_categories(world):
    day = popularity.DAY_MS
    events = [
        purchase("p", "o1", ["old"], T0, category=lambda i: "x"),
        purchase("p", "o2", ["new"], T0 + 14 * day, category=lambda i: "y"),
        view("p", "seen", T0, session_id="s", category="z"),
    ]
    await worker_steps(world, events)
    store = world[2].store
    ranked = await store.popular(10, now_ms=T0 + 14 * day)
    assert ranked == [("new", pytest.approx(1.0)), ("old", pytest.approx(0.25))]  # two half-lives
    assert await store.popular(10, category="x", now_ms=T0) == [("old", pytest.approx(1.0))]
    assert await store.categories(["old", "new", "seen", "nope"]) == {"old": "x", "new": "y", "seen": "z"}


async def test_popularity_stays_finite_and_continuous_over_many_eras(redis_client):
    """A 1-hour half-life: 24 half-lives a day, so a year crosses 17 eras (a single weight would overflow)."""
    prefix = f"t{uuid.uuid4().hex[:10]}"
    hour = 3_600_000
    updater = CooccurrenceUpdater(redis_client, prefix, half_life_days=1 / 24)
    store = updater.store
    era_ms = popularity.ERA_HALF_LIVES * hour
    boundary = popularity.EPOCH_MS + 40 * era_ms  # the start of era 40
    try:
        # "a" bought long ago and twice just before the boundary, "b" once just after it
        events = [
            purchase("v1", "o1", ["a"], popularity.EPOCH_MS + 365 * 24 * hour),
            purchase("v2", "o2", ["a"], boundary - 2 * hour),
            purchase("v3", "o3", ["a"], boundary - 2 * hour),
            purchase("v4", "o4", ["b"], boundary + hour),
        ]
        profiles = {e["visitor_id"]: {"consent": {}} for e in events}
        await updater(events, BatchResult(profiles=profiles))
        ranked = dict(await store.popular(10, now_ms=boundary + hour))
        assert ranked["a"] == pytest.approx(2 * 0.5**3) and ranked["b"] == pytest.approx(1.0)
        later = dict(await store.popular(10, now_ms=boundary + 5 * hour))
        assert later["a"] == pytest.approx(2 * 0.5**7) and later["b"] == pytest.approx(0.5**4)
        await updater.forget("v2", [{"id": "v2"}])
        assert dict(await store.popular(10, now_ms=boundary + hour))["a"] == pytest.approx(0.5**3)
    finally:
        keys = [k async for k in redis_client.scan_iter(match=f"{prefix}:*")]
        if keys:
            await redis_client.delete(*keys)


async def test_clear_wipes_every_count_and_a_replay_rebuilds_them(world, redis_client):
    events = [
        purchase("r", "o1", ["a", "b"], T0),
        purchase("s", "o2", ["a", "b"], T0),
        view("r", "a", T0, session_id="s1"),
        view("r", "b", T0 + 1, session_id="s1"),
    ]
    await worker_steps(world, events)
    store = world[2].store
    before = (await store.counts(), await store.counts("view"), await store.popular(10, now_ms=T0))
    assert await store.clear() > 0
    assert [k async for k in redis_client.scan_iter(match=f"{store.prefix}:rec:*")] == []
    assert await store.counts() == {} and await store.popular(10) == []
    await worker_steps(world, events)
    assert (await store.counts(), await store.counts("view"), await store.popular(10, now_ms=T0)) == before


async def test_a_back_end_order_replaces_the_browsers_copy_and_no_browser_claims_its_id(world):
    profiles, people, updater = world
    store = updater.store
    await worker_steps(world, [purchase("v1", "o1", ["a", "junk"], T0)])  # the browser says it first
    await worker_steps(
        world, [purchase("v2", "o1", ["a", "fake"], T0 + 1)]
    )  # a stranger, the same id, their own cookie
    await worker_steps(world, [dict(purchase("v1", "o1", ["a", "b"], T0 + 2), trusted=True, event_id="shop-o1")])
    assert await store.neighbours("a") == {"b": 1, "fake": 1}  # the customer's browser copy gave way
    assert await store.orders_of("v1") == ["o1"] and await store.orders_of("v2") == ["u:v2:o1"]
    await worker_steps(
        world,
        [
            purchase("v1", "o1", ["a", "junk"], T0 + 3, event_id="again"),
            dict(purchase("v1", "o1", ["a", "c"], T0 + 4), trusted=True, event_id="shop-again"),
        ],
    )
    assert await store.neighbours("a") == {"b": 1, "fake": 1} and (await store.totals())["orders"] == 2
    await worker_steps(world, [dict(purchase("v3", "o9", ["a", "z"], T0 + 5), claim=True)])  # counted nowhere
    assert "z" not in await store.neighbours("a") and await store.orders_of("v3") == []
    await updater.forget("v1", [])
    assert await store.neighbours("a") == {"fake": 1}


async def test_until_trusted_browsers_orders_count_until_any_worker_saw_the_shops_first(redis_client):
    from engine.profiles.orders import OrderTrust

    prefix = f"t{uuid.uuid4().hex[:8]}"
    one, two = OrderTrust(redis_client, prefix), OrderTrust(redis_client, prefix)
    browser = lambda: {"type": "purchase", "trusted": False}  # noqa: E731
    first = [browser()]
    await one.mark(first)
    assert first[0]["claim"] is False
    await one.mark([{"type": "purchase", "trusted": True}])
    later = [browser()]
    await two.mark(later)  # another worker: the flag is shared in Redis
    assert later[0]["claim"] is True
    await two.clear()
    again = [browser()]
    await OrderTrust(redis_client, prefix).mark(again)
    assert again[0]["claim"] is False
    await redis_client.delete(f"{prefix}:orders:trusted")
