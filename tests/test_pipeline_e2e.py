"""End to end: HTTP collector -> Kafka -> faust worker -> Redis -> API, all real."""

import asyncio
import signal
import subprocess
import sys


from engine.stream import codec, kafka
from helpers import REPO, Engine, unique, wait_until

AUTH = {"Authorization": "Bearer test-key"}


async def post(engine, events, **kwargs):
    async with engine.client(**kwargs) as client:
        response = await client.post("/v1/events", json={"events": events})
    assert response.status_code == 202, response.text
    return response.json()


async def test_events_posted_show_up_in_the_profile(engine):
    vid = unique()
    events = [
        {
            "type": "page_view",
            "visitor_id": vid,
            "session_id": "s1",
            "ts": 1_795_400_000_000 + i,
            "url": f"https://shop.example/{i}",
            "title": f"Page {i}",
        }
        for i in range(25)
    ] + [
        {
            "type": "product_view",
            "visitor_id": vid,
            "session_id": "s2",
            "ts": 1_795_400_100_000,
            "props": {"product": {"id": "sku-1", "category": "shoes"}},
        }
    ]
    assert (await post(engine, events))["accepted"] == 26
    profile = await wait_until(lambda: engine.profile(vid), message="profile")
    profile = await wait_until(
        lambda: _when(engine.profile(vid), lambda p: sum(p["counts"].values()) == 26), message="26 events"
    )
    assert profile["counts"] == {"page_view": 25, "product_view": 1}
    assert profile["first_seen"] == 1_795_400_000_000 and profile["last_seen"] == 1_795_400_100_000
    assert profile["sessions"]["count"] == 2
    assert len(profile["pages"]) == 20 and profile["pages"][-1] == {
        "url": "https://shop.example/24",
        "title": "Page 24",
        "ts": 1_795_400_000_024,
    }


async def _when(awaitable, predicate):
    value = await awaitable
    return value if value is not None and predicate(value) else None


async def test_resent_batch_is_counted_once(engine):
    vid = unique()
    events = [{"type": "page_view", "visitor_id": vid, "event_id": f"{vid}-{i}", "session_id": "s"} for i in range(5)]
    await post(engine, events)
    await post(engine, events)  # the tracker retrying after a timeout
    await post(engine, [{"type": "page_ping", "visitor_id": vid, "event_id": f"{vid}-last", "session_id": "s"}])
    profile = await wait_until(
        lambda: _when(engine.profile(vid), lambda p: "page_ping" in p["counts"]), message="last event"
    )
    assert profile["counts"] == {"page_view": 5, "page_ping": 1}


async def test_profile_api_requires_the_key(engine):
    async with engine.client() as client:
        missing = await client.get("/v1/profiles/anyone")
        wrong = await client.get("/v1/profiles/anyone", headers={"Authorization": "Bearer nope"})
        unknown = await client.get(f"/v1/profiles/{unique()}", headers=AUTH)
        route = await client.get("/v1/nothing-here")
    assert missing.status_code == 401 and missing.json()["error"] == "missing API key"
    assert wrong.status_code == 401 and wrong.json()["error"] == "wrong API key"
    assert unknown.status_code == 404 and unknown.json()["error"] == "no such profile"
    assert route.status_code == 404 and "error" in route.json()


async def test_healthz_and_metrics(engine):
    await post(engine, [{"type": "page_view", "visitor_id": unique()}])
    async with engine.client() as client:
        health = await client.get("/healthz")
        await wait_until(lambda: _metric_positive(client, "clickstream_worker_events_total"), message="worker metrics")
        metrics = (await client.get("/metrics")).text
    body = health.json()
    assert {k: body[k] for k in ("status", "checks")} == {
        "status": "ok",
        "checks": {"broker": "ok", "redis": "ok", "worker": "ok"},
    }
    log_id = body["log"]["collector"]["log_id"]
    assert body["log"]["collector"]["resets"] == 0 and log_id
    assert [w["log_id"] for w in body["log"]["workers"].values()] == [log_id]
    for name in (
        "clickstream_events_accepted_total",
        "clickstream_events_rejected_total",
        "clickstream_consumer_lag",
        "clickstream_worker_batch_size_bucket",
        "clickstream_http_request_duration_seconds_bucket",
        "clickstream_log_resets_total",
        "clickstream_spool_events",
        "clickstream_worker_log_resets_total",
    ):
        assert name in metrics, name
    assert 'route="/v1/events"' in metrics


async def _metric_positive(client, name):
    for line in (await client.get("/metrics")).text.splitlines():
        if line.startswith(name) and float(line.rsplit(" ", 1)[1]) > 0:
            return True
    return False


async def test_healthz_waits_for_the_worker(settings_for, tmp_session):
    engine = Engine(settings_for(), tmp_session / unique("health"))
    try:
        engine.start_api()
        async with engine.client() as client:

            async def not_ready_only_for_worker():
                r = await client.get("/healthz")
                return r.status_code == 503 and r.json()["detail"]["missing"] == ["worker"] and r

            await wait_until(not_ready_only_for_worker, message="503 naming the worker")
            engine.start_worker()
            await engine.wait_ready()
            assert (await client.get("/healthz")).status_code == 200
    finally:
        engine.stop()


async def produce_direct(settings, events):
    """Puts events on the topic as the collector would (faster than HTTP for volume)."""
    await kafka.ensure_topics(settings)
    producer = kafka.producer(settings)
    await producer.start()
    try:
        futures = [await producer.send(settings.topic, codec.encode(e), key=e["visitor_id"].encode()) for e in events]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


def traffic(n, visitors, tag):
    return [
        {
            "event_id": f"{tag}-{i}",
            "type": ("page_view", "page_ping", "product_view")[i % 3],
            "visitor_id": f"{tag}-v{i % visitors}",
            "session_id": f"s{i // (visitors * 5)}",
            "ts": 1_795_400_000_000 + i,
            "url": f"/p{i}",
            "props": {"product": {"id": f"p{i % 50}", "category": f"c{i % 5}"}} if i % 3 == 2 else {},
        }
        for i in range(n)
    ]


async def snapshot(redis_client, settings):
    from engine.profiles.store import ProfileStore

    store = ProfileStore(redis_client, settings.redis_prefix)
    return {vid: await store.get(vid) for vid in sorted(await store.scan_ids())}


def orders(visitors, per_visitor, tag):
    """Purchases of 2-4 items out of 40, spread evenly over the traffic's visitors."""
    out = []
    for n in range(visitors * per_visitor):
        items = [f"p{(n * 7 + k * 13) % 40}" for k in range(2 + n % 3)]
        out.append(
            {
                "event_id": f"{tag}-o{n}",
                "type": "purchase",
                "visitor_id": f"{tag}-v{n % visitors}",
                "session_id": "s0",
                "ts": 1_795_400_000_000 + n,
                "props": {
                    "order": {"id": f"{tag}-order{n}", "items": [{"id": i, "qty": 1, "price": 1.0} for i in items]}
                },
            }
        )
    return out


async def cooccurrence_snapshot(redis_client, settings):
    """Every co-occurrence count (pairs, item counts, totals, popularity) the worker keeps; the prior strength chosen
    from a sample of the orders (rec:{co}:prior) aside, a cache of a choice made at whatever moment a worker runs it."""
    from engine.recommend.store import CooccurrenceStore

    store = CooccurrenceStore(redis_client, settings.redis_prefix)
    out = {}
    async for key in redis_client.scan_iter(match=store.base.replace("{", "\\{").replace("}", "\\}") + "*"):
        kind = (await redis_client.type(key)).decode()
        if kind == "hash" and not key.endswith((b":order", b":prior")):
            out[key] = await redis_client.hgetall(key)
        elif kind == "zset":
            # sums of floats: equal to 12 digits whatever order the batches added them in
            out[key] = {m: float(f"{s:.12g}") for m, s in await redis_client.zrange(key, 0, -1, withscores=True)}
    return out


async def test_sigkill_mid_stream_then_restart_counts_exactly(settings_for, tmp_session, redis_client):
    settings = settings_for(batch_size=500)
    engine = Engine(settings, tmp_session / unique("kill"))
    visitors, tag = 300, unique("k")
    events = traffic(60_000, visitors, tag) + orders(visitors, 2, tag)
    total = len(events)
    await produce_direct(settings, events)
    store_total = lambda snap: sum(sum(p["counts"].values()) for p in snap.values())
    try:
        worker = engine.start_worker()
        await wait_until(
            lambda: _when(snapshot(redis_client, settings), lambda s: store_total(s) > 0),
            timeout=40,
            interval=0.02,
            message="first batches",
        )
        worker.stop(signal.SIGKILL)
        partial = store_total(await snapshot(redis_client, settings))
        assert 0 < partial < total, "the kill should land mid-stream"
        engine.start_worker()
        final = await wait_until(
            lambda: _when(snapshot(redis_client, settings), lambda s: store_total(s) >= total),
            timeout=60,
            message="all events after restart",
        )
        await asyncio.sleep(1.0)  # anything counted twice would show up now
        final = await snapshot(redis_client, settings)
        assert store_total(final) == total
        assert len(final) == visitors
        assert all(sum(p["counts"].values()) == total // visitors for p in final.values())
        counts = await cooccurrence_snapshot(redis_client, settings)
        base = f"{settings.redis_prefix}:rec:{{co}}:".encode()
        assert counts[base + b"totals"][b"orders"] == b"600"  # each order once, kill or not
        bought = {}
        for event in events[-600:]:
            for line in event["props"]["order"]["items"]:
                bought[line["id"]] = bought.get(line["id"], 0) + 1
        assert {k.decode(): int(v) for k, v in counts[base + b"np"].items()} == bought

        # Replay rebuilds the same state from the topic, with the worker still running.
        replay = subprocess.run(
            [sys.executable, "-m", "engine.cli", "replay", "--quiet"],
            cwd=REPO,
            env={**__import__("os").environ, **settings.environ()},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert replay.returncode == 0, replay.stderr
        assert f"replayed {total} events" in replay.stdout
        assert await snapshot(redis_client, settings) == final
        assert await cooccurrence_snapshot(redis_client, settings) == counts
    finally:
        engine.stop()
