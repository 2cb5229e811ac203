"""A profile store, people and one worker step under a prefix of their own, on the real Redis."""

from __future__ import annotations

import uuid

import pytest

from engine.profiles.people import People
from engine.profiles.store import ProfileStore
from engine.recommend.store import CooccurrenceUpdater


@pytest.fixture
async def world_of(redis_client):
    """world_of(step_for_prefix) -> (profiles, people, step), the step erased with its people; keys gone after."""
    prefixes = []

    def make(step_for_prefix):
        prefix = f"t{uuid.uuid4().hex[:8]}"
        prefixes.append(prefix)
        profiles = ProfileStore(redis_client, prefix)
        people = People(redis_client, profiles)
        step = step_for_prefix(prefix)
        people.erasure_hooks.append(step.forget)
        return profiles, people, step

    yield make
    for prefix in prefixes:
        keys = [k async for k in redis_client.scan_iter(match=f"{prefix}:*")]
        if keys:
            await redis_client.delete(*keys)


@pytest.fixture
def world(world_of, redis_client):
    """With the co-occurrence updater as the step."""
    return world_of(lambda prefix: CooccurrenceUpdater(redis_client, prefix, half_life_days=7.0))
