"""ProfileStore against the real Redis: each event_id applied once, however often it comes."""

import asyncio
import uuid

import msgpack
import pytest
from hypothesis import given, settings as hsettings, strategies as st, HealthCheck

from engine.profiles.model import fold, new_profile
from engine.profiles.store import CHUNK, DAY_MS, SEEN_KEPT, ProfileStore, event_hash, next_seen, seen_hashes


def events_for(visitor, n, start=1_700_000_000_000):
    return [
        {
            "event_id": f"{visitor}-{i}",
            "type": "page_view" if i % 3 else "page_ping",
            "visitor_id": visitor,
            "session_id": f"s{i // 5}",
            "ts": start + i * 1000,
            "url": f"/p{i}",
        }
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


async def test_seen_ids_live_in_the_profile_hash_up_to_a_bound_then_move_in_chunks(store, redis_client):
    events = events_for("a", SEEN_KEPT + 10)
    assert await store.apply(events) == SEEN_KEPT + 10
    seen = await redis_client.hget(store.profile_key("a"), "s")
    assert len(seen) == (SEEN_KEPT + 10 - CHUNK) * 8
    assert seen_hashes(seen) == {event_hash(e["event_id"]) for e in events[CHUNK:]}
    older = await redis_client.hgetall(store.seen_key("a"))
    assert seen_hashes(older[b"1"]) == {event_hash(e["event_id"]) for e in events[:CHUNK]}
    assert older[b"1"] == b"".join(sorted(seen_hashes(older[b"1"])))
    assert await store.apply(events[-50:]) == 0


async def test_oldest_events_resent_after_3000_newer_ones_count_once(store):
    """Exactly once has no horizon by count: only by time (dedup_days)."""
    events = events_for("a", 3020)
    for i in range(0, len(events), 500):  # the live worker's way: batches as they come
        await store.apply(events[i : i + 500])
    before = await store.get("a")
    assert sum(before["counts"].values()) == 3020
    result = await store.apply_batch(events[:20] + events[-20:] + events_for("a", 3021)[-1:])
    assert result.applied == 1
    after = await store.get("a")
    assert sum(after["counts"].values()) == 3021


async def test_chunks_older_than_the_horizon_are_dropped(redis_client):
    prefix = f"t{uuid.uuid4().hex[:8]}"
    store = ProfileStore(redis_client, prefix, dedup_days=2)
    day = lambda events, d: [dict(e, received_at=1_700_000_000_000 + d * DAY_MS + n) for n, e in enumerate(events)]
    events = events_for("a", 6 * CHUNK)
    for d in range(6):  # a chunk of events a day; from day 2 on, each pushes the oldest chunk out of the profile
        await store.apply(day(events[d * CHUNK : (d + 1) * CHUNK], d))
    index = (await redis_client.hget(store.seen_key("a"), "i")).decode()
    stamps = [int(entry.split(":")[1]) for entry in index.split(",")]
    assert len(stamps) == 3 and max(stamps) - min(stamps) == 2 * DAY_MS
    assert await store.apply(day(events[CHUNK : CHUNK + 5], 6)) == 0  # day 1's ids, moved out on day 3: kept
    assert await store.apply(day(events[:5], 6)) == 5  # day 0's, moved out on day 2: past the horizon
    await redis_client.delete(*[k async for k in redis_client.scan_iter(match=f"{prefix}*")])


async def test_any_batching_writes_the_same_bytes(redis_client):
    """A replay batches differently from the live worker; the keys must come out the same."""
    prefix = f"t{uuid.uuid4().hex[:8]}"
    one, other = ProfileStore(redis_client, prefix + "a"), ProfileStore(redis_client, prefix + "b", cache_size=10)
    events = events_for("a", 2 * SEEN_KEPT + 100)
    await one.apply(events)
    start = 0
    for size in (1, 7, 300, 1500, 5000):
        await other.apply(events[start : start + size])
        start += size
    for key in ("profile_key", "seen_key"):
        a = await redis_client.hgetall(getattr(one, key)("a"))
        b = await redis_client.hgetall(getattr(other, key)("a"))
        assert a == b and a
    await redis_client.delete(*[k async for k in redis_client.scan_iter(match=f"{prefix}*")])


def test_next_seen_moves_whole_chunks_stamped_by_the_event_that_pushed_them():
    ids = [event_hash(str(i)) for i in range(SEEN_KEPT + CHUNK + 1)]
    seen, moves = next_seen(b"".join(ids[:SEEN_KEPT]), b"".join(ids[SEEN_KEPT:]), list(range(CHUNK + 1)))
    assert moves[0] == b"0" and moves[2] == str(CHUNK).encode()
    assert seen_hashes(moves[1]) == set(ids[:CHUNK]) and seen_hashes(moves[3]) == set(ids[CHUNK : 2 * CHUNK])
    assert seen == b"".join(ids[2 * CHUNK :])


def test_event_hash_is_stable_and_fixed_size():
    assert event_hash("abc") == event_hash("abc") != event_hash("abd")
    assert len(event_hash(str(uuid.uuid4()))) == 8


async def test_cluster_grouping_gives_the_same_profiles(redis_client):
    prefix = f"t{uuid.uuid4().hex[:8]}"
    single, cluster = ProfileStore(redis_client, prefix + "a"), ProfileStore(redis_client, prefix + "b", cluster=True)
    events = [e for v in "abcdefgh" for e in events_for(v, 9)]
    assert await single.apply(events) == await cluster.apply(events) == len(events)
    for v in "abcdefgh":
        assert await single.get(v) == await cluster.get(v)
    assert await cluster.apply(events) == 0
    await redis_client.delete(*[k async for k in redis_client.scan_iter(match=f"{prefix}*")])


async def test_commit_refuses_an_id_already_seen(store, redis_client):
    """The script itself checks seen ids, not only the read before it."""
    await store.apply(events_for("a", 2))
    version = await redis_client.hget(store.profile_key("a"), "v")
    commit = lambda ids: store._commit(
        keys=[store.profile_key("a")],
        args=[msgpack.packb([version, b"v2", b"x", ids, 0, []], use_bin_type=False), 0, 60],
    )
    assert (await commit(event_hash("a-1")))[0] == b"0"
    flags, _ = await commit(event_hash("new") + event_hash("a-1"))
    assert flags == b"0"
    assert (await store.get("a"))["counts"] == {"page_ping": 1, "page_view": 1}


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


async def test_an_event_that_breaks_the_fold_is_left_out_with_its_reason(store):
    def fragile(profile, events):
        for event in events:
            if event.get("props", {}).get("marker") == "boom":
                profile["counts"]["partial"] = 1  # a failure part way must not be stored
                raise ValueError("cannot convert float NaN to integer")
        return fold(profile, events)

    good = events_for("a", 3)
    broken = {
        "event_id": "bad",
        "type": "page_ping",
        "visitor_id": "a",
        "ts": 1_700_000_000_500,
        "props": {"marker": "boom"},
    }
    result = await store.apply_batch(good[:2] + [broken] + good[2:] + events_for("b", 2), fragile)
    assert result.applied == 5 and [(e["event_id"], r) for e, r in result.rejected] == [
        ("bad", "the profile fold failed: ValueError: cannot convert float NaN to integer")
    ]
    assert await store.get("a") == fold(new_profile("a"), good)
    # not marked seen: redelivered, it is refused again (and would apply once the fold is fixed)
    again = await store.apply_batch([broken], fragile)
    assert again.applied == 0 and len(again.rejected) == 1
    assert (await store.apply_batch([broken])).applied == 1


async def test_events_without_a_usable_envelope_are_rejected_not_fatal(store):
    bad = [
        {"type": "page_view", "ts": 1},
        {"event_id": "x", "visitor_id": "a", "type": "page_view", "ts": "soon"},
        "text",
    ]
    result = await store.apply_batch(bad + events_for("a", 2))
    assert result.applied == 2
    assert [reason for _, reason in result.rejected] == [
        "event_id: expected a non-empty string",
        "ts: expected integer milliseconds",
        "event: expected a map",
    ]


async def test_erased_profile_gets_a_tombstone_that_stops_new_events(store):
    await store.apply(events_for("a", 3))
    await store.erase("a", 1)
    assert await store.get("a") is None and await store.is_erased("a")
    result = await store.apply_batch(events_for("a", 5))
    assert result.applied == 0 and result.profiles == {"a": None}
    await store.clear_all()
    assert await store.is_erased("a")


async def test_in_memory_copies_stay_exact_when_someone_else_writes(redis_client):
    """A worker's cached copy is used only while Redis holds the same version."""
    prefix = f"t{uuid.uuid4().hex[:8]}"
    live, other = ProfileStore(redis_client, prefix, cache_size=100), ProfileStore(redis_client, prefix)
    events = events_for("a", 30)
    await live.apply(events[:10])
    assert "a" in live.cache
    await other.apply(events[10:20])  # e.g. a replay or a worker that took over the partition
    await live.apply(events[20:])
    assert await live.get("a") == fold(new_profile("a"), events)
    await live.apply(events)  # redelivery, served from the cache: nothing changes
    assert await live.get("a") == fold(new_profile("a"), events)
    await redis_client.delete(*[k async for k in redis_client.scan_iter(match=f"{prefix}*")])


async def test_a_profile_this_worker_wrote_last_is_not_read_and_its_duplicates_still_count_once(redis_client):
    prefix = f"t{uuid.uuid4().hex[:8]}"
    live, other = ProfileStore(redis_client, prefix, cache_size=100), ProfileStore(redis_client, prefix)
    reads = []
    real_read = live._read

    async def counted(*args, **kwargs):
        reads.append(kwargs["keys"])
        return await real_read(*args, **kwargs)

    live._read = counted
    events = events_for("a", 40)
    await live.apply(events[:10])
    assert len(reads) == 1
    assert await live.apply(events[5:20]) == 10  # half redelivered: dropped from the cached seen ids
    assert len(reads) == 1, "a profile written last by this worker is not read again"
    await other.apply(events[20:25])  # written by something else meanwhile
    assert await live.apply(events[20:30]) == 5  # the version check sends it back to a read
    assert len(reads) == 2
    assert await live.get("a") == fold(new_profile("a"), events[:30])
    await other.erase("a", 1)  # erased elsewhere: the cached copy must not revive it
    result = await live.apply_batch(events[30:])
    assert result.applied == 0 and result.profiles == {"a": None} and await live.get("a") is None
    await redis_client.delete(*[k async for k in redis_client.scan_iter(match=f"{prefix}*")])


async def test_a_profile_with_many_seen_ids_is_read_again_rather_than_cached_with_them(redis_client):
    from engine.profiles.store import SEEN_CACHED

    prefix = f"t{uuid.uuid4().hex[:8]}"
    live = ProfileStore(redis_client, prefix, cache_size=100)
    events = events_for("a", SEEN_CACHED + 10)
    await live.apply(events[:-5])
    assert live.cache["a"][2] is None  # the profile is kept, its seen ids are not
    assert await live.apply(events) == 5
    assert await live.get("a") == fold(new_profile("a"), events)
    await redis_client.delete(*[k async for k in redis_client.scan_iter(match=f"{prefix}*")])
