"""A profile store, people and co-occurrence updater under a prefix of their own, on the real Redis."""

from __future__ import annotations

import uuid

import pytest

from engine.profiles.people import People
from engine.profiles.store import ProfileStore
from engine.recommend.store import CooccurrenceUpdater


@pytest.fixture
async def world(redis_client):
    prefix = f"t{uuid.uuid4().hex[:8]}"
    profiles = ProfileStore(redis_client, prefix)
    people = People(redis_client, profiles)
    updater = CooccurrenceUpdater(redis_client, prefix, half_life_days=7.0)
    people.erasure_hooks.append(updater.forget)
    yield profiles, people, updater
    keys = [k async for k in redis_client.scan_iter(match=f"{prefix}:*")]
    if keys:
        await redis_client.delete(*keys)
