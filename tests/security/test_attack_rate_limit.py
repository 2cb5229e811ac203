"""Abuse at the door: a burst past the per-address limit, and a limiter whose Redis is gone."""

import asyncio

import pytest

from attacks import KEY, auth
from engine.embedded import free_port, wait_for_port
from helpers import Engine, Process, unique


def collector(settings, log_dir) -> Engine:
    running = Engine(settings, log_dir)
    running.api = Process(settings, "collector", "--port", str(running.port), log_path=log_dir / "collector.log")
    wait_for_port(running.port, 30, running.api.popen)
    return running


@pytest.fixture(scope="module")
async def tight(settings_for, tmp_session):
    """A collector that takes 3 requests at once per address, then 2 a second."""
    running = collector(settings_for(rate_limit_burst=3, rate_limit_per_s=2.0), tmp_session / unique("tight"))
    await running.wait_ready()
    yield running
    running.stop()


async def test_a_burst_past_the_limit_gets_429_with_retry_after(tight):
    async with tight.client() as client:
        answers = await asyncio.gather(*(client.post("/v1/events", json={"type": "page_view"}) for _ in range(12)))
        pixel = await client.get("/v1/pixel.gif", params={"type": "page_view"})
    statuses = sorted(r.status_code for r in answers)
    assert statuses.count(202) <= 4 and statuses.count(429) >= 8, statuses
    limited = next(r for r in answers if r.status_code == 429)
    assert int(limited.headers["retry-after"]) >= 1
    assert limited.json()["error"] == "too many requests from this address, retry later"
    assert pixel.status_code == 429
    # A back end with a key is not limited; the address gets its tokens back with time.
    async with tight.client(headers=auth(KEY)) as shop:
        keyed = [await shop.post("/v1/events", json={"type": "page_view", "visitor_id": unique()}) for _ in range(6)]
    assert [r.status_code for r in keyed] == [202] * 6
    await asyncio.sleep(int(limited.headers["retry-after"]))
    async with tight.client() as client:
        assert (await client.post("/v1/events", json={"type": "page_view"})).status_code == 202


async def test_without_its_redis_the_limiter_lets_events_through(settings_for, tmp_session):
    dead_redis = f"redis://127.0.0.1:{free_port()}/0"
    running = collector(
        settings_for(redis=dead_redis, rate_limit_burst=1, rate_limit_per_s=0.1), tmp_session / unique("open")
    )
    try:
        await running.wait_ready()
        async with running.client() as client:
            answers = [await client.post("/v1/events", json={"type": "page_view"}) for _ in range(5)]
            metrics = (await client.get("/metrics")).text
        assert [r.status_code for r in answers] == [202] * 5
        line = next(l for l in metrics.splitlines() if l.startswith("clickstream_rate_limit_unavailable_total"))
        assert float(line.split()[1]) >= 1
        assert "rate limiter: Redis unavailable" in running.api.log()
    finally:
        running.stop()
