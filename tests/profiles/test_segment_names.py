"""The list of segment names: an erasure finds every set from it, not from a SCAN of the keyspace (real Redis)."""

import uuid

import pytest

from engine.profiles.segments_index import SegmentIndex


@pytest.fixture
async def index(redis_client):
    prefix = f"t{uuid.uuid4().hex[:8]}"
    yield SegmentIndex(redis_client, prefix)
    keys = [k async for k in redis_client.scan_iter(match=f"{prefix}:*")]
    if keys:
        await redis_client.delete(*keys)


async def test_erasure_reaches_sets_of_removed_definitions_through_the_list_alone(index):
    await index.update({"ada": {"old": 1.0}}, ["old"])  # a definition since removed from the rule files
    await index.update({"ada": {"shoes": 2.0}, "bob": {"shoes": 1.0}}, ["shoes", "hats"])
    # A set the list does not name is never looked for: only a SCAN would find it.
    await index.redis.zadd(index.key("unlisted"), {"ada": 1.0})
    assert sorted(await index.segment_keys()) == sorted(index.key(n).encode() for n in ("old", "shoes", "hats"))

    await index.remove_person("ada")
    assert await index.sizes(["old", "shoes", "hats", "unlisted"]) == {"old": 0, "shoes": 1, "hats": 0, "unlisted": 1}


async def test_a_redis_written_before_the_list_is_scanned_once_and_listed(index):
    await index.redis.zadd(index.key("shoes"), {"ada": 1.0})
    await index.redis.zadd(index.key("hats"), {"ada": 1.0, "bob": 1.0})
    assert not await index.redis.exists(index.names_key)
    assert sorted(await index.segment_keys()) == [index.key("hats").encode(), index.key("shoes").encode()]
    assert await index.redis.smembers(index.names_key) == {b"shoes", b"hats"}
    await index.remove_person("ada")
    assert await index.sizes(["shoes", "hats"]) == {"shoes": 0, "hats": 1}


async def test_a_rebuild_clears_the_list_with_the_sets(index):
    await index.update({"ada": {"shoes": 1.0}}, ["shoes"])
    await index.clear()
    assert not await index.redis.exists(index.names_key, index.key("shoes"))
