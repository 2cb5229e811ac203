"""People against the real Redis: links with a cap, audit, retention, erasure."""

import uuid

import pytest

from engine.profiles.people import People
from engine.profiles.store import ProfileStore

T0 = 1_795_400_000_000


@pytest.fixture
async def people(redis_client):
    prefix = f"t{uuid.uuid4().hex[:8]}"
    store = ProfileStore(redis_client, prefix, anonymous_ttl_s=3600)
    yield People(redis_client, store, max_visitors=3)
    keys = [k async for k in redis_client.scan_iter(match=f"{prefix}:*")]
    if keys:
        await redis_client.delete(*keys)


def identify(vid, uid, ts):
    return {"event_id": f"{vid}-{uid}-{ts}", "type": "identify", "visitor_id": vid, "user_id": uid, "ts": ts, "props": {},
            "verified": True}


def view(vid, ts):
    return {"event_id": f"{vid}-view-{ts}", "type": "page_view", "visitor_id": vid, "ts": ts, "url": "/", "props": {}}


async def run(people, events):
    result = await people.store.apply_batch(events)
    await people.link(events, result)
    return result


async def test_visitor_ids_per_user_are_capped_and_refusals_audited(people):
    events = [e for i in range(5) for e in (view(f"d{i}", T0 + i), identify(f"d{i}", "u1", T0 + 10 + i))]
    await run(people, events)
    assert await people.links("u1") == ["d0", "d1", "d2"]
    audit = await people.audit("u1")
    assert [e["action"] for e in audit] == ["linked"] * 3 + ["refused"] * 2
    assert "more than 3" in audit[-1]["reason"]


async def test_linking_is_repaired_by_a_redelivered_batch(people):
    events = [view("d", T0), identify("d", "u1", T0 + 1)]
    await people.store.apply_batch(events)  # the worker died before the link step
    assert await people.links("u1") == []
    await run(people, events)               # the batch comes again: profile unchanged, link made
    assert await people.links("u1") == ["d"]
    assert (await people.person("u1"))["counts"] == {"page_view": 1, "identify": 1}


async def test_anonymous_profiles_expire_identified_ones_stay(people, redis_client):
    await run(people, [view("anon", T0), view("known", T0), identify("known", "u2", T0 + 1)])
    assert 0 < await redis_client.ttl(people.store.profile_key("anon")) <= 3600
    assert await redis_client.ttl(people.store.profile_key("known")) == -1


async def test_user_keys_do_not_carry_the_user_id(people, redis_client):
    await run(people, [view("d", T0), identify("d", "ada@example.com", T0 + 1)])
    keys = [k async for k in redis_client.scan_iter(match=f"{people.prefix}:*")]
    assert len(keys) == 3 and not any(b"ada@example.com" in k for k in keys)


async def test_erasing_a_user_removes_every_device_and_blocks_relinking(people, redis_client):
    await run(people, [view("a", T0), identify("a", "u3", T0 + 1), view("b", T0), identify("b", "u3", T0 + 2)])
    await people.set_preferences("u3", {"language": "nb"})
    outcome = await people.erase("a")  # a visitor id erases the whole person
    assert outcome == {"erased": "u3", "visitor_ids": ["a", "b"]}
    assert await people.person("u3") is None and await people.person("b") is None
    await run(people, [view("c", T0 + 5), identify("c", "u3", T0 + 6)])
    assert await people.links("u3") == []
    remaining = [k async for k in redis_client.scan_iter(match=f"{people.prefix}:*")]
    values = [await redis_client.dump(k) for k in remaining]
    assert not any(b"nb" in (v or b"") and b"language" in (v or b"") for v in values)


async def test_an_unverified_identify_links_nothing(people):
    claim = dict(identify("d", "u9", T0 + 1), verified=False)
    await run(people, [view("d", T0), claim])
    assert await people.links("u9") == [] and await people.linked_user("d") is None
    assert await people.resolve("u9") == (None, [])


async def test_a_refusal_is_in_both_logs_and_either_erasure_removes_both(people):
    await run(people, [view("d", T0), identify("d", "ada", T0 + 1), identify("d", "eve", T0 + 2)])
    assert [e["action"] for e in await people.audit("ada")] == ["linked", "refused"]
    assert [e["action"] for e in await people.audit("eve")] == ["refused"]
    assert await people.resolve("eve") == ("eve", [])  # a person: their export shows it
    export = await people.export("eve")
    assert export["user_id"] == "eve" and export["person"] is None and len(export["audit"]) == 1
    await people.erase("eve")
    assert [e["action"] for e in await people.audit("ada")] == ["linked"]
    await run(people, [identify("d", "eve", T0 + 3)])  # erased: no new entry in either log
    assert await people.audit("eve") == [] and [e["action"] for e in await people.audit("ada")] == ["linked"]
