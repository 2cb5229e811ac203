"""The pool of recent sessions against the real Redis: views in order, once; bounded; erasure removes a person's."""

from __future__ import annotations

import uuid
from functools import partial

import events as builders
import pytest
from helpers import worker_steps
from events import consent

from engine.recommend import sessions as pool
from engine.recommend.sessions import SessionStore

T0 = 1_795_400_000_000


async def read(store, vid, session, **options):
    """(the session, the other sessions read) below the rule's threshold."""
    found = await store.read(vid, session, **options)
    assert found.pairs is None
    return found.session, found.candidates


view = partial(builders.product_view, category="c")


@pytest.fixture
def world(world_of, redis_client):
    """With the session pool (4 sessions per item) as the step."""
    return world_of(lambda prefix: SessionStore(redis_client, prefix, pool=4))


def walk(vid, session, items, start=0):
    return [view(vid, item, T0 + start + n, session_id=session) for n, item in enumerate(items)]


async def test_a_session_is_its_views_in_order_once_and_others_are_read_newest_first(world):
    _, _, store = world
    await worker_steps(world, walk("u1", "a", ["x", "y", "x", "z"]))
    await worker_steps(world, walk("u2", "b", ["y", "q"], 10))
    await worker_steps(world, walk("u3", "c", ["w"], 20))  # shares nothing with u1's session
    await worker_steps(world, walk("u1", "a", ["x", "y"]))  # a redelivered batch adds nothing
    session, others = await read(store, "u1", "a")
    assert session == ["x", "y", "z"]
    assert others == {pool.session_key("u2", "b"): ["y", "q"]}
    await worker_steps(world, walk("u4", "d", ["z"], 30))
    _, others = await read(store, "u1", "a")
    assert list(others) == [pool.session_key("u4", "d"), pool.session_key("u2", "b")]


async def test_the_pool_keeps_its_newest_sessions_and_drops_the_index_of_the_others(world, redis_client):
    _, _, store = world
    for n in range(6):
        await worker_steps(world, walk(f"v{n}", "s", ["x", f"own{n}"], 10 * n))
    assert await store.size() == 4
    _, others = await read(store, "v5", "s")
    assert sorted(others) == sorted(pool.session_key(f"v{n}", "s") for n in (2, 3, 4))
    assert not await redis_client.exists(store.base + "by:own0")
    assert await store.sessions_of("v0") == []


async def test_bots_and_visitors_without_analytics_consent_add_nothing(world):
    _, _, store = world
    await worker_steps(world, [consent("nc", T0 - 1, analytics=False), *walk("nc", "s", ["x", "y"])])
    await worker_steps(world, [dict(e, bot=True) for e in walk("bot", "s", ["x", "y"])])
    assert await store.size() == 0


async def test_erasure_removes_every_session_of_the_person(world, redis_client):
    _, people, store = world
    await worker_steps(
        world, walk("e1", "a", ["x", "y"]) + walk("e1", "b", ["y", "z"], 10) + walk("k1", "c", ["x", "z"], 20)
    )
    assert len(await store.sessions_of("e1")) == 2
    await people.erase("e1")
    assert await store.sessions_of("e1") == []
    _, others = await read(store, "k1", "c")
    assert others == {}
    assert await store.size() == 1
    assert not await redis_client.exists(store.base + "s:" + pool.session_key("e1", "a"))
    assert await redis_client.zrange(store.base + "by:y", 0, -1) == []


async def test_every_session_holding_the_last_item_is_read_before_the_most_recent_others(world):
    _, _, store = world
    await worker_steps(world, walk("old", "s", ["z", "p"]))
    for n in range(2):  # the pool holds 4 sessions: these, the old one and mine
        await worker_steps(world, walk(f"new{n}", "s", ["x", f"q{n}"], 10 + n))
    await worker_steps(world, walk("me", "s", ["x", "z"], 20))
    _, others = await read(store, "me", "s", sample=2)
    assert list(others) == [pool.session_key("old", "s"), pool.session_key("new1", "s")]


async def test_from_the_threshold_on_the_last_items_pair_counts_are_read_instead_of_the_sessions(redis_client):
    prefix = f"t{uuid.uuid4().hex[:8]}"
    store = SessionStore(redis_client, prefix)
    views = []
    for n, items in enumerate([["b", "x"], ["b", "x", "y"], ["b", "y"], ["x", "b"], ["q", "x"]]):
        views += [[f"v{n}", pool.session_key(f"v{n}", "s"), item, T0] for item in items]
    views += [["me", pool.session_key("me", "s"), item, T0] for item in ("a", "b")]
    await store.add(views)
    found = await store.read("me", "s", threshold=4)
    assert found.session == ["a", "b"] and found.n_last == 4 and found.candidates is None
    assert found.pairs == {"b": 4, "x": 3, "y": 2}
    below = await store.read("me", "s", threshold=5)
    assert below.pairs is None and len(below.candidates) == 4  # q's session shares nothing with mine
    keys = [k async for k in redis_client.scan_iter(match=f"{prefix}:*")]
    await redis_client.delete(*keys)


async def test_the_item_looked_at_now_is_read_as_the_sessions_latest_moved_or_added_at_its_end(world):
    _, _, store = world
    await worker_steps(world, walk("me", "s", ["x", "y", "z"]))
    await worker_steps(world, walk("u1", "s", ["x", "q"], 10))
    await worker_steps(world, walk("u2", "s", ["w", "r"], 20))
    # x, viewed first, is looked at again: the session's latest, and the sessions holding x are read first
    session, others = await read(store, "me", "s", latest="x")
    assert session == ["y", "z", "x"] and list(others) == [pool.session_key("u1", "s")]
    assert await store.head("me", "s", "x") == (["y", "z", "x"], True)
    # w, never viewed in the session: added at its end, its sessions read; the session's index does not hold it
    session, others = await read(store, "me", "s", latest="w")
    assert session == ["x", "y", "z", "w"] and pool.session_key("u2", "s") in others
    assert await store.head("me", "s", "w") == (["x", "y", "z", "w"], False)
    # without one, the session as viewed; a session the pool does not hold stays empty whatever the item
    assert await store.head("me", "s") == (["x", "y", "z"], True)
    assert await store.head("nobody", "s", "x") == ([], False)


async def test_clear_empties_the_pool_for_a_rebuild_and_the_same_views_rebuild_it(world, redis_client):
    _, _, store = world
    batch = walk("r1", "a", ["x", "y"]) + walk("r2", "b", ["y", "z"], 10)
    await worker_steps(world, batch)
    before = await read(store, "r1", "a")
    await store.clear()
    assert [
        k async for k in redis_client.scan_iter(match=store.base.replace("{", "\\{").replace("}", "\\}") + "*")
    ] == []
    await worker_steps(world, batch)
    assert await read(store, "r1", "a") == before


async def test_sessions_last_seen_longer_ago_than_the_retention_leave_the_pool(redis_client):
    prefix = f"t{uuid.uuid4().hex[:8]}"
    store = SessionStore(redis_client, prefix, retention_s=3600)
    key = pool.session_key
    await store.add([["old", key("old", "s"), "x", T0], ["kept", key("kept", "s"), "x", T0 + 1000]])
    await store.add([["kept", key("kept", "s"), "y", T0 + 3_600_001]])  # old: just over 1 h ago; kept: now
    assert await store.size() == 1
    assert await store.sessions_of("old") == [] and await store.sessions_of("kept") == [key("kept", "s")]
    assert await redis_client.zrange(store.base + "by:x", 0, -1) == [key("kept", "s").encode()]
    keys = [k async for k in redis_client.scan_iter(match=f"{prefix}:*")]
    await redis_client.delete(*keys)
