"""The collector over real HTTP, with a real broker behind it."""

import json

import msgpack
import pytest

from helpers import Engine, Process, read_topic, topic_offsets, unique
from engine.embedded import free_port, wait_for_port


@pytest.fixture(scope="module")
async def collector(settings_for, tmp_session):
    """A collector alone (no worker needed) on topics of its own."""
    running = Engine(settings_for(site_origins=("https://shop.example",)), tmp_session / unique("collector"))
    running.api = Process(
        running.settings, "collector", "--port", str(running.port), log_path=running.log_dir / "collector.log"
    )
    wait_for_port(running.port, 30, running.api.popen)
    await running.wait_ready()
    yield running
    running.stop()


async def events_on_topic(collector):
    return await topic_offsets(collector.settings, collector.settings.topic)


async def test_accepted_events_reach_the_topic_keyed_and_enriched(collector):
    vid = unique()
    before = await events_on_topic(collector)
    async with collector.client(headers={"User-Agent": "test-agent/1"}) as client:
        response = await client.post(
            "/v1/events",
            json={
                "events": [
                    {"type": "page_view", "visitor_id": vid, "url": "https://shop.example/", "event_id": "e1"},
                    {"type": "bogus", "visitor_id": vid},
                    {
                        "type": "product_view",
                        "visitor_id": vid,
                        "props": {"product": {"id": "sku-1", "category": "shoes", "price": 9.5}},
                    },
                ]
            },
        )
    assert response.status_code == 202
    assert response.json() == {"accepted": 2, "rejected": [{"index": 1, "error": "type: unknown event type 'bogus'"}]}
    assert await events_on_topic(collector) == before + 2
    records = [
        r for r in await read_topic(collector.settings, collector.settings.topic, before + 2) if r.key == vid.encode()
    ]
    events = [msgpack.unpackb(r.value) for r in records]
    assert {e["type"] for e in events} == {"page_view", "product_view"}
    page = next(e for e in events if e["type"] == "page_view")
    assert page["event_id"] == "e1" and page["ua"] == "test-agent/1" and page["ip"] == "127.0.0.0"
    assert isinstance(page["received_at"], int) and page["v"] == 1
    rejected = await read_topic(collector.settings, collector.settings.rejected_topic, 1)
    assert any(msgpack.unpackb(r.value)["reason"].startswith("type:") for r in rejected)


@pytest.mark.parametrize(
    "body, content_type, status, field",
    [
        (b'{"type": "page_view"', "application/json", 400, "malformed JSON"),
        (b'{"events": {"type": "page_view"}}', "application/json", 400, "events"),
        (b'{"type": "page_view", "ts": "noon"}', "application/json", 400, "ts"),
        (b'{"type": "teleport"}', "application/json", 400, "type"),
        (json.dumps({"events": [{"type": "page_view"}] * 501}).encode(), "application/json", 413, "events"),
        (b'{"type": "page_view", "title": "' + b"x" * (1 << 20) + b'"}', "text/plain", 413, "body"),
    ],
)
async def test_bad_input_gets_a_json_4xx_and_nothing_reaches_the_topic(collector, body, content_type, status, field):
    before = await events_on_topic(collector)
    async with collector.client() as client:
        response = await client.post("/v1/events", content=body, headers={"Content-Type": content_type})
    assert response.status_code == status
    error = response.json()
    assert set(error) == {"error", "detail"} and field in error["error"]
    assert await events_on_topic(collector) == before


async def test_text_plain_body_from_send_beacon(collector):
    async with collector.client() as client:
        response = await client.post(
            "/v1/events",
            content=json.dumps({"type": "page_view", "visitor_id": unique()}),
            headers={"Content-Type": "text/plain;charset=UTF-8"},
        )
    assert response.status_code == 202 and response.json()["accepted"] == 1


async def test_cookie_set_when_missing_and_used_for_events(collector):
    async with collector.client() as client:
        first = await client.post("/v1/events", json={"type": "page_view"})
        cookie = first.headers["set-cookie"]
        assert "clickstream_vid=" in cookie and "Max-Age=63072000" in cookie and "SameSite=lax" in cookie
        assert "Secure" not in cookie
        vid = first.cookies["clickstream_vid"]
        second = await client.post("/v1/events", json={"type": "page_view"})
        assert "set-cookie" not in second.headers
    before = await events_on_topic(collector)
    records = await read_topic(collector.settings, collector.settings.topic, before)
    assert sum(1 for r in records if r.key == vid.encode()) == 2


async def test_cookie_is_secure_behind_https(collector):
    async with collector.client() as client:
        response = await client.post("/v1/events", json={"type": "page_view"}, headers={"X-Forwarded-Proto": "https"})
    assert "Secure" in response.headers["set-cookie"]


async def test_cors_allows_configured_origins_with_credentials(collector):
    async with collector.client() as client:
        allowed = await client.options(
            "/v1/events",
            headers={
                "Origin": "https://shop.example",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "content-type",
            },
        )
        other = await client.options(
            "/v1/events", headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"}
        )
        simple = await client.post("/v1/events", json={"type": "page_view"}, headers={"Origin": "https://shop.example"})
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == "https://shop.example"
    assert allowed.headers["access-control-allow-credentials"] == "true"
    assert other.headers.get("access-control-allow-origin") is None
    assert simple.headers["access-control-allow-origin"] == "https://shop.example"


async def test_pixel_fallback(collector):
    vid = unique()
    before = await events_on_topic(collector)
    async with collector.client() as client:
        ok = await client.get(
            "/v1/pixel.gif",
            params={
                "type": "page_view",
                "visitor_id": vid,
                "url": "/x",
                "ts": "1795400000000",
                "props.campaign": "spring",
            },
        )
        bad = await client.get("/v1/pixel.gif", params={"type": "page_view", "ts": "soon"})
    assert ok.status_code == 200 and ok.headers["content-type"] == "image/gif" and ok.content.startswith(b"GIF89a")
    assert bad.status_code == 400 and "ts" in bad.json()["error"]
    records = await read_topic(collector.settings, collector.settings.topic, before + 1)
    event = next(msgpack.unpackb(r.value) for r in records if r.key == vid.encode())
    assert event["ts"] == 1795400000000 and event["props"] == {"campaign": "spring"}


async def test_opt_out_cookie_sends_nothing(collector):
    before = await events_on_topic(collector)
    async with collector.client(cookies={"clickstream_optout": "1"}) as client:
        response = await client.post("/v1/events", json={"type": "page_view", "visitor_id": unique()})
    assert response.status_code == 202 and response.json()["accepted"] == 0
    assert await events_on_topic(collector) == before


async def test_broker_down_gives_503_with_retry_after(settings_for, tmp_session):
    dead = Engine(settings_for(kafka=f"127.0.0.1:{free_port()}"), tmp_session / unique("dead"))
    dead.api = Process(dead.settings, "collector", "--port", str(dead.port), log_path=dead.log_dir / "collector.log")
    try:
        wait_for_port(dead.port, 30, dead.api.popen)
        async with dead.client() as client:
            response = await client.post("/v1/events", json={"type": "page_view"})
            health = await client.get("/healthz")
        assert response.status_code == 503 and int(response.headers["retry-after"]) > 0
        assert response.json()["error"]
        assert health.status_code == 503 and health.json()["detail"]["missing"] == ["broker"]
    finally:
        dead.stop()
