"""People against the real Redis: links with a cap, audit, retention, erasure."""

import uuid

import pytest

from engine.profiles.people import People
from engine.profiles.store import ProfileStore
from events import identify, page_view

T0 = 1_795_400_000_000


@pytest.fixture
async def people(redis_client):
    prefix = f"t{uuid.uuid4().hex[:8]}"
    store = ProfileStore(redis_client, prefix, anonymous_ttl_s=3600)
    yield People(redis_client, store, max_visitors=3)
    keys = [k async for k in redis_client.scan_iter(match=f"{prefix}:*")]
    if keys:
        await redis_client.delete(*keys)


async def run(people, events):
    result = await people.store.apply_batch(events)
    await people.link(events, result)
    return result


async def test_visitor_ids_per_user_are_capped_and_refusals_audited(people):
    events = [e for i in range(5) for e in (page_view(f"d{i}", T0 + i), identify(f"d{i}", "u1", T0 + 10 + i))]
    await run(people, events)
    assert await people.links("u1") == ["d0", "d1", "d2"]
    audit = await people.audit("u1")
    assert [e["action"] for e in audit] == ["linked"] * 3 + ["refused"] * 2
    assert "more than 3" in audit[-1]["reason"]


async def test_linking_is_repaired_by_a_redelivered_batch(people):
    events = [page_view("d", T0), identify("d", "u1", T0 + 1)]
    await people.store.apply_batch(events)  # the worker died before the link step
    assert await people.links("u1") == []
    await run(people, events)  # the batch comes again: profile unchanged, link made
    assert await people.links("u1") == ["d"]
    assert (await people.person("u1"))["counts"] == {"page_view": 1, "identify": 1}


async def test_anonymous_profiles_expire_identified_ones_stay(people, redis_client):
    await run(people, [page_view("anon", T0), page_view("known", T0), identify("known", "u2", T0 + 1)])
    assert 0 < await redis_client.ttl(people.store.profile_key("anon")) <= 3600
    assert await redis_client.ttl(people.store.profile_key("known")) == -1


async def test_user_keys_do_not_carry_the_user_id(people, redis_client):
    await run(people, [page_view("d", T0), identify("d", "ada@example.com", T0 + 1)])
    keys = [k async for k in redis_client.scan_iter(match=f"{people.prefix}:*")]
    assert len(keys) == 3 and not any(b"ada@example.com" in k for k in keys)


async def test_erasing_a_user_removes_every_device_and_blocks_relinking(people, redis_client):
    await run(
        people, [page_view("a", T0), identify("a", "u3", T0 + 1), page_view("b", T0), identify("b", "u3", T0 + 2)]
    )
    await people.set_preferences("u3", {"language": "nb"})
    outcome = await people.erase("a")  # a visitor id erases the whole person
    assert outcome == {"erased": "u3", "visitor_ids": ["a", "b"]}
    assert await people.person("u3") is None and await people.person("b") is None
    await run(people, [page_view("c", T0 + 5), identify("c", "u3", T0 + 6)])
    assert await people.links("u3") == []
    remaining = [k async for k in redis_client.scan_iter(match=f"{people.prefix}:*")]
    values = [await redis_client.dump(k) for k in remaining]
    assert not any(b"nb" in (v or b"") and b"language" in (v or b"") for v in values)


async def test_an_unverified_identify_links_nothing(people):
    claim = dict(identify("d", "u9", T0 + 1), verified=False)
    await run(people, [page_view("d", T0), claim])
    assert await people.links("u9") == [] and await people.linked_user("d") is None
    assert await people.resolve("u9") == (None, [])


async def test_a_refusal_is_in_both_logs_and_either_erasure_removes_both(people):
    await run(people, [page_view("d", T0), identify("d", "ada", T0 + 1), identify("d", "eve", T0 + 2)])
    assert [e["action"] for e in await people.audit("ada")] == ["linked", "refused"]
    assert [e["action"] for e in await people.audit("eve")] == ["refused"]
    assert await people.resolve("eve") == ("eve", [])  # a person: their export shows it
    export = await people.export("eve")
    assert export["user_id"] == "eve" and export["person"] is None and len(export["audit"]) == 1
    await people.erase("eve")
    assert [e["action"] for e in await people.audit("ada")] == ["linked"]
    await run(people, [identify("d", "eve", T0 + 3)])  # erased: no new entry in either log
    assert await people.audit("eve") == [] and [e["action"] for e in await people.audit("ada")] == ["linked"]


async def test_many_users_read_at_once_equal_each_read_alone(people):
    """The worker's segment step reads every identified person of a batch in two round trips."""
    events = [
        page_view("d0", T0),
        identify("d0", "u1", T0 + 1),
        page_view("d1", T0 + 2),
        identify("d1", "u1", T0 + 3),
        page_view("d2", T0 + 4),
        identify("d2", "u2", T0 + 5),
        page_view("d3", T0 + 6),
        identify("d3", "u3", T0 + 7),
    ]
    result = await run(people, events)
    await people.store.redis.hset(people.store.profile_key("d1"), "prefs", '{"topics": ["shoes"]}')
    await people.store.redis.set(people._key("u1", "prefs"), '{"language": "no"}')
    await people.store.hide("d2", "erasure-1")  # being erased: counts for nobody
    alone = {uid: await people.person(uid) for uid in ("u1", "u2", "u3", "nobody")}
    assert alone["u1"]["preferences"] == {"topics": ["shoes"], "language": "no"}
    assert alone["u2"] is None and alone["nobody"] is None
    assert await people.users(["u1", "u2", "u3", "nobody"]) == alone
    known = {vid: result.profiles[vid] for vid in ("d0", "d3")}  # the batch's own copies
    together = await people.users(["u1", "u2", "u3", "nobody"], known)
    assert together == alone and together["u3"]["id"] == "u3"
    assert result.profiles["d0"]["id"] == "d0" and result.profiles["d3"]["id"] == "d3"  # a single piece is copied
