"""ProfileStore against the real Redis: each event_id applied once, however often it comes."""

import asyncio
import uuid

import pytest
from hypothesis import given, settings as hsettings, strategies as st, HealthCheck

from engine.profiles.model import fold, new_profile
from engine.profiles.store import ProfileStore, event_hash


def events_for(visitor, n, start=1_700_000_000_000):
    return [
        {"event_id": f"{visitor}-{i}", "type": "page_view" if i % 3 else "page_ping", "visitor_id": visitor,
         "session_id": f"s{i // 5}", "ts": start + i * 1000, "url": f"/p{i}"}
        for i in range(n)
    ]


@pytest.fixture
async def store(redis_client):
    prefix = f"t{uuid.uuid4().hex[:8]}"
    yield ProfileStore(redis_client, prefix)
    keys = [k async for k in redis_client.scan_iter(match=f"{prefix}:*")]
    if keys:
        await redis_client.delete(*keys)


async def test_batch_equals_pure_fold(store):
    events = events_for("a", 12) + events_for("b", 7)
    assert await store.apply(events) == 19
    assert await store.get("a") == fold(new_profile("a"), events_for("a", 12))
    assert await store.get("b") == fold(new_profile("b"), events_for("b", 7))


async def test_redelivered_events_change_nothing(store):
    events = events_for("a", 10)
    await store.apply(events[:6])
    before = await store.get("a")
    assert await store.apply(events[:6]) == 0
    assert await store.get("a") == before
    assert await store.apply(events) == 4
    assert await store.get("a") == fold(new_profile("a"), events)


async def test_duplicates_inside_one_batch_count_once(store):
    events = events_for("a", 3)
    assert await store.apply(events + events) == 3
    assert (await store.get("a"))["counts"] == {"page_ping": 1, "page_view": 2}


async def test_concurrent_writers_on_one_profile_stay_exact(store):
    """Two workers (a replay and a live worker, or a rebalance) racing on the same profile."""
    events = events_for("a", 200)
    chunks = [events[i::4] for i in range(4)]
    results = await asyncio.gather(*(store.apply(chunk) for chunk in chunks + chunks))
    assert sum(results) == 200
    profile = await store.get("a")
    assert sum(profile["counts"].values()) == 200
    assert profile["first_seen"] == events[0]["ts"] and profile["last_seen"] == events[-1]["ts"]


async def test_dedup_set_is_compact_and_expires(store, redis_client):
    await store.apply(events_for("a", 5))
    key = store.seen_key("a")
    assert await redis_client.object("encoding", key) == b"intset"
    assert 0 < await redis_client.ttl(key) <= store.dedup_ttl_s


def test_event_hash_is_stable_and_fits_an_intset():
    assert event_hash("abc") == event_hash("abc") != event_hash("abd")
    assert 0 <= event_hash(str(uuid.uuid4())) < 2**62


async def test_clear_all_removes_profiles_and_dedup(store, redis_client):
    await store.apply(events_for("a", 3) + events_for("b", 3))
    assert sorted(await store.scan_ids()) == ["a", "b"]
    await store.clear_all()
    assert await store.scan_ids() == []
    assert await store.apply(events_for("a", 3)) == 3


@hsettings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.integers(0, 29), min_size=1, max_size=60))
async def test_any_redelivery_order_gives_the_live_state(store, order):
    """Property: applying events in batches with arbitrary repeats gives the fold of the distinct events in order."""
    visitor = f"h{uuid.uuid4().hex[:8]}"
    events = events_for(visitor, 30)
    seen = []
    for i in range(0, len(order), 7):
        await store.apply([events[j] for j in sorted(order[i : i + 7])])
        seen.extend(sorted(order[i : i + 7]))
    profile = await store.get(visitor)
    assert sum(profile["counts"].values()) == len(set(order))
