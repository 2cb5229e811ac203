"""Session fixtures: a real Tansu broker and a real Redis, never mocks.

The broker is started on a free port for the session. Redis is the one at
127.0.0.1:6379 when it answers, else one started here; each test isolates itself
with its own key prefix, topic names and consumer group (see `settings_for`).
"""

from __future__ import annotations

import os
import subprocess
import uuid
from dataclasses import replace
from pathlib import Path

import pytest
import redis as redis_sync

from engine.embedded import broker_command, free_port, redis_command, wait_for_port
from engine.settings import Settings

from helpers import IDENTITY_SECRET, Engine, started


def _redis_answers(url: str) -> bool:
    try:
        return redis_sync.Redis.from_url(url, socket_connect_timeout=0.5).ping()
    except redis_sync.RedisError:
        return False


@pytest.fixture(scope="session")
def tmp_session(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("clickstream")


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_session):
    port = free_port()
    log = open(tmp_session / "broker.log", "wb")
    process = subprocess.Popen(broker_command(port), stdout=log, stderr=subprocess.STDOUT)
    wait_for_port(port, 30, process)
    yield f"127.0.0.1:{port}"
    process.terminate()
    process.wait(10)


@pytest.fixture(scope="session")
def redis_url(tmp_session):
    url = os.environ.get("CLICKSTREAM_TEST_REDIS", "redis://127.0.0.1:6379/0")
    if _redis_answers(url):
        yield url
        return
    port = free_port()
    process = subprocess.Popen(redis_command(port, tmp_session), stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    wait_for_port(port, 30, process)
    yield f"redis://127.0.0.1:{port}/0"
    process.terminate()
    process.wait(10)


@pytest.fixture(scope="session")
def settings_for(kafka_bootstrap, redis_url, tmp_session):
    """Settings with names of their own: topics, consumer group and Redis prefix."""

    def make(**overrides) -> Settings:
        tag = uuid.uuid4().hex[:10]
        base = Settings(
            kafka=kafka_bootstrap,
            redis=redis_url,
            api_keys=("test-key",),
            topic=f"events-{tag}",
            rejected_topic=f"rejected-{tag}",
            consumer_group=f"group-{tag}",
            redis_prefix=f"t{tag}",
            rebalance_timeout_s=1.0,
            partitions=2,
            data_dir=tmp_session / tag,
            worker_heartbeat_s=0.5,
            identity_secret=IDENTITY_SECRET,
        )
        return replace(base, **overrides)

    return make


@pytest.fixture
def redis_client(redis_url):
    from redis.asyncio import Redis

    return Redis.from_url(redis_url)


@pytest.fixture(scope="session")
async def engine(settings_for, tmp_session):
    """One running engine shared by the end-to-end tests (each uses its own visitor ids)."""
    running = await started(Engine(settings_for(), tmp_session / "engine"))
    yield running
    running.stop()
