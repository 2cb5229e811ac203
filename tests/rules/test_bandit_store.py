"""The bandit's Redis side against the real Redis: attribution, idempotence, conversions, report."""

import uuid

import pytest
from redis.cluster import key_slot

from engine.profiles.model import ProfileConfig, new_profile
from engine.profiles.store import BatchResult
from engine.rules.bandit import GLOBAL, HOLDOUT
from engine.rules.bandit_store import BanditLearner, BanditStore
from engine.rules.ruleset import ModelSpec

from helpers import unique

T0 = 1_795_400_000_000
MINUTE = 60_000
MOBILE, DESKTOP = "mobile|new|none", "desktop|key|shoes"
SPEC = ModelSpec(("a", "b"), min_impressions=10, exploration=0.1, holdout=5)


@pytest.fixture
async def bandit(redis_client):
    prefix = unique("tb")
    yield BanditStore(redis_client, prefix, cache_s=0), BanditLearner(redis_client, prefix, ProfileConfig())
    keys = [k async for k in redis_client.scan_iter(match=f"{prefix}:*")]
    if keys:
        await redis_client.delete(*keys)


def event(kind, visitor, decision=None, slot="hero", ts=T0, **props):
    if decision is not None:
        props.update(slot=slot, decision_id=decision, content="x")
    return {
        "event_id": uuid.uuid4().hex,
        "type": kind,
        "visitor_id": visitor,
        "session_id": "s",
        "ts": ts,
        "props": props,
    }


def purchase(visitor, ts):
    return event(
        "purchase",
        visitor,
        ts=ts,
        order={"id": uuid.uuid4().hex, "revenue": 10, "items": [{"id": "i1", "qty": 1, "price": 10}]},
    )


def result_for(events, consent=True):
    profiles = {}
    for e in events:
        profile = new_profile(e["visitor_id"])
        if not consent:
            profile["consent"] = {"analytics": False}
        profiles[e["visitor_id"]] = profile
    return BatchResult(applied=len(events), profiles=profiles)


async def feed(learner, events, **kw):
    await learner(events, result_for(events, **kw))


async def decide(store, visitor, variant, context=MOBILE, holdout=False, slot="hero"):
    decision = uuid.uuid4().hex
    await store.record_decision(decision, slot, variant, context, 0.5, holdout, visitor)
    return decision


async def test_impressions_and_clicks_are_credited_to_their_decisions(bandit):
    store, learner = bandit
    d1 = await decide(store, "v1", "a", MOBILE)
    d2 = await decide(store, "v2", "b", DESKTOP)
    d3 = await decide(store, "v3", "a", DESKTOP, holdout=True)
    await feed(
        learner,
        [
            event("impression", "v1", d1),
            event("content_click", "v1", d1),
            event("impression", "v2", d2),
            event("impression", "v3", d3),
            event("content_click", "v3", d3),
        ],
    )
    assert await store.stats("hero") == {
        MOBILE: {"a": (1, 1)},
        DESKTOP: {"b": (1, 0), HOLDOUT: (1, 1)},
        GLOBAL: {"a": (1, 1), "b": (1, 0), HOLDOUT: (1, 1)},
    }


async def test_the_same_events_twice_change_nothing(bandit):
    store, learner = bandit
    d1, d2 = await decide(store, "v1", "a"), await decide(store, "v2", "b")
    batch = [event("impression", "v1", d1), event("content_click", "v1", d1), event("impression", "v2", d2)]
    await feed(learner, batch)
    before = await store.stats("hero")
    assert before[GLOBAL] == {"a": (1, 1), "b": (1, 0)}
    await feed(learner, batch)  # redelivered
    await feed(learner, list(reversed(batch)))  # replayed, in another order
    await feed(learner, [event("impression", "v1", d1), event("content_click", "v1", d1)])  # shown and clicked again
    assert await store.stats("hero") == before


async def test_a_click_without_its_impression_counts_both(bandit):
    store, learner = bandit
    d = await decide(store, "v1", "b")
    await feed(learner, [event("content_click", "v1", d)])
    await feed(learner, [event("impression", "v1", d)])  # arrives late
    assert (await store.stats("hero"))[GLOBAL] == {"b": (1, 1)}


async def test_events_that_name_no_known_decision_are_ignored(bandit):
    store, learner = bandit
    d = await decide(store, "v1", "a")
    await feed(
        learner,
        [
            event("content_click", "v1", uuid.uuid4().hex),  # unknown decision
            event("content_click", "v2", d),  # someone else's decision
            event("content_click", "v1", d, slot="footer"),  # the wrong slot
            event("content_click", "v1", "../../{x}"),  # not a decision id
            event("content_click", "v1", d, slot="{hero}"),  # not a slot name
            event("impression", "v1"),  # no decision at all
        ],
    )
    assert await store.stats("hero") == {}
    assert await store.stats("footer") == {}
    await feed(learner, [event("content_click", "v1", d)], consent=False)  # no analytics consent
    await learner([event("content_click", "v1", d)], BatchResult(profiles={"v1": None}))  # erased
    assert await store.stats("hero") == {}
    await feed(learner, [event("content_click", "v1", d)])
    assert (await store.stats("hero"))[GLOBAL] == {"a": (1, 1)}


async def test_a_purchase_soon_after_a_click_is_a_conversion_once(bandit):
    store, learner = bandit
    fast, slow, idle = await decide(store, "v1", "a"), await decide(store, "v2", "b"), await decide(store, "v3", "b")
    await feed(
        learner,
        [
            event("impression", "v1", fast, ts=T0),
            event("content_click", "v1", fast, ts=T0 + 1000),
            event("content_click", "v2", slow, ts=T0),
            event("impression", "v3", idle, ts=T0),
        ],
    )
    first = purchase("v1", T0 + 20 * MINUTE)
    await feed(learner, [first, purchase("v2", T0 + 31 * MINUTE), purchase("v3", T0 + MINUTE)])
    await feed(learner, [first, purchase("v1", T0 + 25 * MINUTE)])  # redelivered, and a second order
    report = await store.report("hero", SPEC, "welcome")
    assert report["variants"]["a"]["conversions"] == 1
    assert report["variants"]["b"]["conversions"] == 0  # v2 bought after the window, v3 never clicked
    assert (await store.counts("hero"))[MOBILE]["a"]["v"] == 1


async def test_a_purchase_in_the_same_batch_as_its_click_converts(bandit):
    store, learner = bandit
    d = await decide(store, "v1", "b")
    await feed(learner, [event("content_click", "v1", d, ts=T0), purchase("v1", T0 + 5 * MINUTE)])
    assert (await store.report("hero", SPEC, "welcome"))["variants"]["b"]["conversions"] == 1


async def test_report_numbers_and_lift_over_the_holdout(bandit):
    store, learner = bandit
    batch = []
    plan = [("a", False, 40, 4), ("b", False, 60, 12), ("holdout", True, 50, 4)]  # (variant, holdout, shown, clicked)
    for variant, held, shown, clicked in plan:
        for n in range(shown):
            visitor = f"{variant}-{n}"
            d = await decide(store, visitor, "a" if held else variant, DESKTOP if n % 2 else MOBILE, holdout=held)
            batch.append(event("impression", visitor, d))
            if n < clicked:
                batch.append(event("content_click", visitor, d))
    await feed(learner, batch)
    report = await store.report("hero", SPEC, "welcome")
    assert report["variants"] == {
        "a": {"impressions": 40, "clicks": 4, "ctr": 0.1, "conversions": 0},
        "b": {"impressions": 60, "clicks": 12, "ctr": 0.2, "conversions": 0},
    }
    assert report["model"] == {"impressions": 100, "clicks": 16, "ctr": 0.16, "conversions": 0}
    assert report["holdout"] == {"impressions": 50, "clicks": 4, "ctr": 0.08, "conversions": 0, "content": "welcome"}
    assert report["lift"]["estimate"] == pytest.approx(1.0)  # 16% against 8%
    assert -0.5 < report["lift"]["low"] < 1.0 < report["lift"]["high"]
    assert (await store.stats("hero"))[MOBILE]["b"] == (30, 6)


async def test_report_before_any_data(bandit):
    store, _ = bandit
    report = await store.report("hero", SPEC, "welcome")
    assert report["model"] == {"impressions": 0, "clicks": 0, "ctr": None, "conversions": 0}
    assert report["lift"] is None


async def test_stats_are_cached_briefly_and_clear_forgets_the_slot(bandit, redis_client):
    store, learner = bandit
    cached = BanditStore(redis_client, store.keys.prefix, cache_s=3600)
    d = await decide(store, "v1", "a")
    await feed(learner, [event("impression", "v1", d)])
    assert (await cached.stats("hero"))[GLOBAL] == {"a": (1, 0)}
    await feed(learner, [event("content_click", "v1", d)])
    assert (await cached.stats("hero"))[GLOBAL] == {"a": (1, 0)}  # served from memory
    assert (await store.stats("hero"))[GLOBAL] == {"a": (1, 1)}

    assert await store.clear("hero") == 2  # the counts and the one decision
    assert await store.stats("hero") == {}
    await feed(learner, [event("content_click", "v1", d)])  # its decision is gone too
    assert await store.stats("hero") == {}


async def test_decisions_expire_and_keys_of_a_slot_share_one_cluster_slot(bandit, redis_client):
    store, _ = bandit
    d = await decide(store, "v1", "a")
    key = store.keys.decision("hero", d)
    assert 86_000 < await redis_client.ttl(key) <= 86_400
    assert key_slot(key.encode()) == key_slot(store.keys.counts("hero").encode())
    assert key_slot(store.keys.counts("hero").encode()) != key_slot(store.keys.counts("footer").encode())
    raw = await redis_client.hgetall(key)
    assert b"v1" not in raw.values()  # only a hash of the visitor
    with pytest.raises(ValueError):
        await store.record_decision(d, "{hero}", "a", MOBILE, 0.5, False, "v1")


async def test_the_configured_reward_is_what_the_bandit_reads(redis_client):
    prefix = unique("tb")
    store = BanditStore(redis_client, prefix, cache_s=0)
    learner = BanditLearner(redis_client, prefix, ProfileConfig(), reward_cap=lambda slot: 40.0)
    try:
        d1, d2 = await decide(store, "v1", "a"), await decide(store, "v2", "b")
        cart = event("add_to_cart", "v1", ts=T0 + MINUTE, product={"id": "i1", "price": 10})
        big = event("purchase", "v2", ts=T0 + MINUTE, order={"id": "o9", "revenue": 100, "items": []})
        batch = [
            event("impression", "v1", d1),
            event("content_click", "v1", d1),
            event("impression", "v2", d2),
            event("content_click", "v2", d2),
            cart,
            purchase("v1", T0 + 2 * MINUTE),
            big,
        ]
        await feed(learner, batch)
        await feed(learner, batch)  # redelivered: nothing twice
        assert (await store.stats("hero", "click"))[GLOBAL] == {"a": (1, 1), "b": (1, 1)}
        assert (await store.stats("hero", "add_to_cart"))[GLOBAL] == {"a": (1, 1), "b": (1, 0)}
        assert (await store.stats("hero", "purchase"))[GLOBAL] == {"a": (1, 1), "b": (1, 1)}
        # revenue: 10 of a cap of 40 is a quarter of a success; 100 is capped at one
        assert (await store.stats("hero", "revenue"))[GLOBAL] == {"a": (1, 0.25), "b": (1, 1)}
    finally:
        keys = [k async for k in redis_client.scan_iter(match=f"{prefix}:*")]
        if keys:
            await redis_client.delete(*keys)
