"""Robustness end to end: Redis paused, stopped or unreachable; a Redis lost and rebuilt from the log.

Each test runs a redis-server of its own (engine.embedded.redis_command), so it can
pause, kill, restart and flush it; the broker is the session's.
"""

import asyncio
import os
import signal
import subprocess
import time

import pytest
import redis.asyncio as aioredis

from engine.embedded import free_port, redis_command, wait_for_port
from helpers import Engine, run_cli, unique, visitor, wait_until

AUTH = {"Authorization": "Bearer test-key"}
T0 = 1_795_400_000_000


class OwnRedis:
    """A redis-server on a port of its own, to pause (SIGSTOP), kill and start again."""

    def __init__(self, workdir) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            redis_command(self.port, self.workdir), stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT
        )
        wait_for_port(self.port, 30, self.process)

    def pause(self) -> None:
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        self.process.send_signal(signal.SIGCONT)

    def kill(self) -> None:
        self.process.kill()
        self.process.wait(10)

    def client(self) -> aioredis.Redis:
        return aioredis.Redis.from_url(self.url)


@pytest.fixture
def own_redis(tmp_path):
    server = OwnRedis(tmp_path)
    server.start()
    yield server
    if server.process.poll() is None:
        server.resume()
        server.kill()


async def post(client, events, **kwargs):
    """Posts as the shop's back end (a key): these tests name many visitors and send their purchases."""
    kwargs.setdefault("headers", AUTH)
    response = await client.post("/v1/events", json={"events": events}, **kwargs)
    assert response.status_code == 202 and not response.json()["rejected"], response.text
    return response


def every_route(vid: str) -> list[tuple[str, str, dict]]:
    """(method, path, request options) of every API route, as a back end calls it."""
    return [
        ("GET", f"/v1/profiles/{vid}", {}),
        ("GET", f"/v1/profiles/{vid}/export", {}),
        ("PUT", f"/v1/profiles/{vid}/preferences", {"json": {"language": "nb"}}),
        ("DELETE", f"/v1/profiles/{unique()}", {}),
        ("POST", "/v1/decide", {"json": {"visitor_id": vid, "slots": ["hero"]}}),
        ("GET", "/v1/recommendations/also-bought?item=sku-new", {}),
        ("GET", f"/v1/recommendations/also-bought?item=sku-1&visitor_id={vid}", {}),
        ("GET", f"/v1/recommendations/for-you?visitor_id={vid}", {}),
        ("PUT", "/v1/catalog/items", {"json": [{"id": "sku-9", "category": "hats"}]}),
        ("GET", "/v1/segments", {}),
        ("GET", "/v1/segments/shoe-lovers", {}),
        ("GET", "/v1/slots/hero/report", {}),
        ("GET", "/healthz", {}),
    ]


async def outage_answers(engine: Engine, vid: str) -> dict[str, tuple[int, float]]:
    """Every route during an outage: each a 503 with Retry-After and a JSON error, within a second."""
    answers = {}
    async with engine.client() as client:
        for method, path, options in every_route(vid):
            started = time.monotonic()
            response = await client.request(method, path, headers=AUTH, **options)
            elapsed = time.monotonic() - started
            answers[f"{method} {path.split('?')[0]}"] = (response.status_code, elapsed)
            assert elapsed < 1.0, (method, path, elapsed)
            assert response.status_code == 503, (method, path, response.status_code, response.text)
            assert response.headers.get("retry-after") and "error" in response.json(), (method, path)
        started = time.monotonic()
        metrics = await client.get("/metrics")
        assert metrics.status_code == 200 and time.monotonic() - started < 1.0
        assert 'clickstream_dependency_up{dependency="redis"} 0.0' in metrics.text
        # the collector needs only the broker: it keeps accepting
        accepted = await client.post("/v1/events", json={"type": "page_view", "visitor_id": vid, "ts": T0 + 50})
        assert accepted.status_code == 202, accepted.text
    return answers


async def all_routes_serve(engine: Engine, vid: str) -> None:
    async with engine.client() as client:
        for method, path, options in every_route(vid):
            response = await client.request(method, path, headers=AUTH, **options)
            assert response.status_code < 500, (method, path, response.status_code, response.text)


RULES = """
slots:
  hero:
    default: welcome
    content:
      welcome: {html: "<h2>Welcome</h2>"}
      sale: {html: "<h2>Sale</h2>"}
    model: {variants: [welcome, sale]}
segments:
  - name: shoe-lovers
    when: {interest: {category: shoes, min: 1}}
    score: {interest: shoes}
"""


def with_rules(settings_for, folder, **overrides):
    """Settings whose rules define a model-driven slot and a segment, so their routes read Redis."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "shop.yaml").write_text(RULES)
    return settings_for(rules=folder, **overrides)


async def test_redis_paused_stopped_or_unreachable_answers_503_within_a_second_and_recovers(
    settings_for, tmp_session, tmp_path, own_redis
):
    settings = with_rules(settings_for, tmp_path / "rules", redis=own_redis.url)
    engine = Engine(settings, tmp_session / unique("outage"))
    engine.start_worker()
    engine.start_api()
    try:
        await engine.wait_ready()
        vid = unique()
        async with engine.client() as client:
            await post(
                client,
                [
                    {
                        "type": "product_view",
                        "visitor_id": vid,
                        "ts": T0,
                        "session_id": "s",
                        "props": {"product": {"id": "sku-1", "category": "shoes"}},
                    }
                ],
            )
        await wait_until(lambda: engine.profile(vid), message="profile")

        own_redis.pause()
        try:
            paused = await outage_answers(engine, vid)
        finally:
            own_redis.resume()
        await wait_until(engine_ready(engine), timeout=30, message="ready after SIGCONT")
        await all_routes_serve(engine, vid)

        own_redis.kill()
        stopped = await outage_answers(engine, vid)
        own_redis.start()  # empty: the embedded Redis keeps nothing on disk
        await wait_until(engine_ready(engine), timeout=30, message="ready after a restart of Redis")
        await all_routes_serve(engine, vid)
        # the worker resumed too: a new event shows
        fresh = unique()
        async with engine.client() as client:
            await post(client, [{"type": "page_view", "visitor_id": fresh, "ts": T0}])
        await wait_until(lambda: engine.profile(fresh), timeout=30, message="a new profile after the outage")
        slowest = max(elapsed for _, elapsed in [*paused.values(), *stopped.values()])
        print(f"slowest 503 while paused or stopped: {slowest * 1000:.0f} ms")
    finally:
        engine.stop()


def engine_ready(engine: Engine):
    async def ready():
        async with engine.client() as client:
            return (await client.get("/healthz")).status_code == 200

    return ready


async def test_an_api_started_before_redis_answers_503_then_serves_without_a_restart(
    settings_for, tmp_session, tmp_path
):
    server = OwnRedis(tmp_path)  # nothing listens on its port yet
    settings = with_rules(settings_for, tmp_path / "rules", redis=server.url)
    engine = Engine(settings, tmp_session / unique("unreachable"))
    engine.start_api()
    try:
        vid = unique()
        await wait_until(lambda: _broker_only(engine), timeout=30, message="/healthz 503 with the broker connected")
        await outage_answers(engine, vid)
        server.start()
        engine.start_worker()
        await engine.wait_ready()
        await all_routes_serve(engine, vid)
    finally:
        engine.stop()
        if server.process is not None:
            server.kill()


async def _broker_only(engine: Engine) -> bool:
    """Not ready (no Redis), but the collector's broker connection is up."""
    async with engine.client() as client:
        response = await client.get("/healthz")
    return response.status_code == 503 and response.json()["detail"]["checks"].get("broker") == "ok"


# --- Redis lost: flush, replay, the same keys -------------------------------------------

# What a replay does not rebuild, by design: each is derived or operational, never personal.
NOT_FROM_THE_LOG = (
    ":workers",  # live workers' heartbeats
    ":rec:catalog:version",  # a counter that tells API processes to drop their cached item info
    ":value:model",  # refitted from the profiles (replay refits it)
    ":rec:als:",  # published by `clickstream train`
    ":rec:{co}:prior",  # also-bought's prior strength, chosen by the worker from the orders (and its lock)
    ":{bandit",  # the bandit's counters and decisions (engine.rules.bandit_store)
    ":flow:",
    ":served:",  # the console's per-minute counts of events and decisions (no person in them)
    ":segsize:",  # segment sizes sampled over time for the console
    ":segstats",
    ":segdue:lock",
    ":segbackfill",  # segment change counters; the sweeper's lock; the last backfill's progress
    ":segchanges",  # the outbox of membership changes: delivered once, not sent again by a replay
)


async def dump(redis: aioredis.Redis, prefix: str) -> dict:
    """Every key of the engine with its whole value (TTLs aside); zset scores to 12 digits (float sums).

    Segment sets compare by members: a member's score (e.g. an interest decayed to now) is
    computed at the moment the worker evaluates the person, so a rebuild scores anew.
    """
    out = {}
    async for key in redis.scan_iter(match=f"{prefix}:*", count=1000):
        name = key.decode()
        if any(part in name for part in NOT_FROM_THE_LOG):
            continue
        kind = (await redis.type(key)).decode()
        if kind == "hash":
            out[name] = await redis.hgetall(key)
        elif kind == "set":
            out[name] = await redis.smembers(key)
        elif kind == "zset" and (":seg:" in name or name.endswith(":segdue")):  # due times: from the evaluation's now
            out[name] = set(await redis.zrange(key, 0, -1))
        elif kind == "zset":
            out[name] = {m: float(f"{s:.12g}") for m, s in await redis.zrange(key, 0, -1, withscores=True)}
        elif kind == "string":
            out[name] = await redis.get(key)
        elif kind == "list":  # each visitor's recent events, rebuilt by the replay
            out[name] = await redis.lrange(key, 0, -1)
        elif kind == "list":
            out[name] = await redis.lrange(key, 0, -1)
        else:
            out[name] = kind
    return out


def replay(settings) -> subprocess.CompletedProcess:
    done = run_cli("replay", "--quiet", env={**os.environ, **settings.environ()}, timeout=180)
    assert done.returncode == 0, done.stderr
    return done


def order(oid, *items):
    return {"order": {"id": oid, "items": [{"id": i, "qty": 1, "price": 10.0, "category": "shoes"} for i in items]}}


async def test_flush_and_replay_rebuild_every_key_byte_for_byte(settings_for, tmp_session, own_redis):
    settings = settings_for(redis=own_redis.url)
    engine = Engine(settings, tmp_session / unique("rebuild"))
    engine.start_worker()
    engine.start_api()
    redis = own_redis.client()
    try:
        await engine.wait_ready()
        names = {
            n: visitor(f"{n}-{settings.redis_prefix}") for n in ("ann", "bob", "cat", "laptop", "phone", "bystander")
        }
        user = unique("user")
        async with engine.client() as c:
            for n, vid in names.items():
                await post(
                    c,
                    [
                        {"type": "page_view", "visitor_id": vid, "ts": T0, "session_id": f"s-{n}", "url": f"/{n}"},
                        {
                            "type": "product_view",
                            "visitor_id": vid,
                            "ts": T0 + 1,
                            "session_id": f"s-{n}",
                            "props": {"product": {"id": f"sku-{len(n)}", "category": "shoes"}},
                        },
                        {
                            "type": "product_view",
                            "visitor_id": vid,
                            "ts": T0 + 2,
                            "session_id": f"s-{n}",
                            "props": {"product": {"id": "sku-common", "category": "shoes"}},
                        },
                        {
                            "type": "purchase",
                            "visitor_id": vid,
                            "ts": T0 + 3,
                            "session_id": f"s-{n}",
                            "props": order(f"o-{n}-{settings.redis_prefix}", "sku-common", f"sku-{len(n)}"),
                        },
                    ],
                )
            for device in ("laptop", "phone"):
                await post(
                    c, [{"type": "identify", "visitor_id": names[device], "user_id": user, "ts": T0 + 4}], headers=AUTH
                )
            await post(
                c,
                [
                    {
                        "type": "consent",
                        "visitor_id": names["cat"],
                        "ts": T0 + 5,
                        "props": {"consent": {"analytics": False, "personalization": True}},
                    },
                    {"type": "page_view", "visitor_id": names["cat"], "ts": T0 + 6},
                ],
            )
            person = await wait_until(
                lambda: _person(engine, user, lambda p: len(p["visitor_ids"]) == 2),
                timeout=30,
                message="both devices linked",
            )
            assert person["commerce"]["orders"] == 2
            for n in names:
                orders = 2 if n in ("laptop", "phone") else 1
                await wait_until(
                    lambda: _person(engine, names[n], lambda p: p["commerce"]["orders"] == orders), message=n
                )

            # state changes through the API: preferences (visitor's and user's), catalog, two erasures
            for pid, prefs in (
                (names["bob"], {"hide": ["hats"]}),
                (user, {"language": "nb"}),
                (names["cat"], {"do_not_personalize": True}),
            ):
                assert (await c.put(f"/v1/profiles/{pid}/preferences", json=prefs, headers=AUTH)).status_code == 200
            assert (
                await c.put(f"/v1/profiles/{names['bob']}/preferences", json={"language": "en"}, headers=AUTH)
            ).status_code == 200
            catalog = [
                {"id": "sku-common", "category": "shoes", "available": False},
                {"id": "sku-3", "category": "hats", "title": "Cap"},
            ]
            assert (await c.put("/v1/catalog/items", json=catalog, headers=AUTH)).status_code == 200
            erased = (await c.delete(f"/v1/profiles/{user}", headers=AUTH)).json()
            assert sorted(erased["visitor_ids"]) == sorted([names["laptop"], names["phone"]])
            assert (await c.delete(f"/v1/profiles/{names['ann']}", headers=AUTH)).status_code == 200
            for pid in (user, names["ann"], names["laptop"], names["phone"]):
                assert (await c.get(f"/v1/profiles/{pid}", headers=AUTH)).status_code == 404  # at once
            # the decide right after sees the preference
            decided = await c.post("/v1/decide", json={"visitor_id": names["cat"], "slots": ["hero"]}, headers=AUTH)
            assert decided.status_code == 200
        base = settings.redis_prefix

        async def settled():  # the worker has applied every change from the log
            keys = [k async for k in redis.scan_iter(match=f"{base}:{{v:*}}:p")]
            pending = [k for k in keys if await redis.hexists(k, "e")]
            tombs = [k for k in keys if await redis.hexists(k, "t")]
            return not pending and len(tombs) == 3

        await wait_until(settled, timeout=30, message="erasures applied by the worker")
        await asyncio.sleep(1.0)  # anything still moving would show in the comparison
        live = await dump(redis, base)
        assert any(":rec:{co}:" in k for k in live) and f"{base}:rec:catalog" in live
        assert live[f"{base}:{{v:{names['bob']}}}:p"][b"prefs"] == b'{"hide": ["hats"], "language": "en"}'

        await redis.flushall()  # Redis lost
        assert replay(settings).stdout.strip().endswith("events")
        rebuilt = await dump(redis, base)
        assert rebuilt.keys() == live.keys()
        for key in live:
            assert rebuilt[key] == live[key], key

        async with engine.client() as c:
            for pid in (user, names["ann"], names["laptop"], names["phone"]):
                assert (await c.get(f"/v1/profiles/{pid}", headers=AUTH)).status_code == 404
            bob = (await c.get(f"/v1/profiles/{names['bob']}", headers=AUTH)).json()
            assert bob["preferences"] == {"hide": ["hats"], "language": "en"}
        buyers = await redis.smembers(f"{base}:buyers")
        assert names["ann"].encode() not in buyers and names["bob"].encode() in buyers
        np_counts = await redis.hgetall(f"{base}:rec:{{co}}:np")
        assert np_counts[b"sku-common"] == b"3"  # bob, cat, bystander: the erased people's orders are not counted
    finally:
        await redis.aclose()
        engine.stop()


async def _person(engine, pid, predicate):
    async with engine.client() as client:
        response = await client.get(f"/v1/profiles/{pid}", headers=AUTH)
    return response.status_code == 200 and predicate(response.json()) and response.json()


# --- exactly once without a horizon by count -----------------------------------------------


async def test_oldest_events_resent_after_3000_newer_ones_are_ignored(engine):
    vid = unique()
    events = [
        {
            "type": "page_view",
            "visitor_id": vid,
            "event_id": f"{vid}-{i}",
            "session_id": "s",
            "ts": T0 + i,
            "url": f"/{i}",
        }
        for i in range(3020)
    ]
    async with engine.client() as client:
        for start in range(0, len(events), 500):
            await post(client, events[start : start + 500])
        await wait_until(
            lambda: _person(engine, vid, lambda p: p["counts"]["page_view"] == 3020), timeout=60, message="3020"
        )
        await post(client, events[:20] + events[-20:])  # a tracker's outbox resent long after
        await post(
            client,
            [{"type": "page_ping", "visitor_id": vid, "event_id": f"{vid}-marker", "session_id": "s", "ts": T0 + 9999}],
        )
        person = await wait_until(lambda: _person(engine, vid, lambda p: "page_ping" in p["counts"]), message="marker")
    assert person["counts"] == {"page_view": 3020, "page_ping": 1}


# --- nothing accepted is dropped silently -------------------------------------------------


async def test_records_the_worker_cannot_apply_go_to_the_dead_letter_topic(engine):
    """Records written straight to the topic (past the collector) that no handler can apply."""
    from engine.stream import codec, kafka
    from helpers import read_topic, topic_offsets

    settings = engine.settings
    vid = unique()
    broken = [
        {"event_id": unique("e"), "type": "page_view", "visitor_id": vid},  # no ts
        {
            "event_id": unique("e"),
            "type": "page_view",
            "visitor_id": 42,
            "ts": T0,
            "session_id": vid,
        },  # a number for an id
        {"event_id": unique("e"), "type": "server:erase", "visitor_id": vid, "ts": T0, "props": {}},  # no props.at
    ]
    good = [
        {"event_id": unique("e"), "type": "page_view", "visitor_id": vid, "ts": T0 + i, "session_id": "s", "props": {}}
        for i in range(3)
    ]
    before = await topic_offsets(settings, settings.rejected_topic)
    producer = kafka.producer(settings)
    await producer.start()
    try:
        for event in [good[0], *broken, good[1], good[2]]:  # one key, one partition: the bad ones sit between the good
            await producer.send_and_wait(settings.topic, codec.encode(event), key=vid.encode())
    finally:
        await producer.stop()
    person = await wait_until(
        lambda: _person(engine, vid, lambda p: p["counts"].get("page_view") == 3), message="good events"
    )
    assert person["id"] == vid
    records = []

    async def dead_letters():
        nonlocal records
        records = [
            codec.decode(r.value) for r in await read_topic(settings, settings.rejected_topic, before + 3, timeout=3)
        ]
        records = [
            r
            for r in records
            if r.get("source", {}).get("topic") == settings.topic and vid.encode() in r.get("raw", b"")
        ]
        return len(records) == 3

    await wait_until(dead_letters, timeout=30, message="dead letters")
    reasons = sorted(r["reason"] for r in records)
    assert reasons == [
        "not applied: state change: props.at: expected integer milliseconds",
        "not applied: ts: expected integer milliseconds",
        "not applied: visitor_id: expected a non-empty string",
    ]
    assert sorted(codec.decode(r["raw"])["event_id"] for r in records) == sorted(e["event_id"] for e in broken)

    async def counted():
        async with engine.client() as client:
            text = (await client.get("/metrics")).text
        return [
            line
            for line in text.splitlines()
            if line.startswith("clickstream_worker_unapplied_events_total") and float(line.split()[-1]) >= 3
        ]

    await wait_until(counted, timeout=20, message="unapplied events in /metrics")


async def test_a_profile_holding_a_number_json_cannot_carry_still_reads(engine):
    """A NaN written past the collector's checks must not turn every read of the profile into a 500."""
    from engine.stream import codec, kafka

    vid, user = unique(), unique("user")
    producer = kafka.producer(engine.settings)
    await producer.start()
    try:
        event = {
            "event_id": unique("e"),
            "type": "identify",
            "visitor_id": vid,
            "user_id": user,
            "ts": T0,
            "verified": True,
            "props": {"traits": {"score": float("nan"), "name": "Ada"}},
        }
        await producer.send_and_wait(engine.settings.topic, codec.encode(event), key=vid.encode())
    finally:
        await producer.stop()
    person = await wait_until(
        lambda: _person(engine, vid, lambda p: p["traits"].get("name") == "Ada"), message="profile"
    )
    assert person["traits"].get("score") is None
    async with engine.client() as client:
        assert (await client.get(f"/v1/profiles/{vid}/export", headers=AUTH)).status_code == 200


def test_the_api_alone_needs_the_broker_too(settings_for):
    """Its state changes go on the log: without CLICKSTREAM_KAFKA it does not start."""
    env = {k: v for k, v in {**os.environ, **settings_for().environ()}.items() if k != "CLICKSTREAM_KAFKA"}
    done = run_cli("api", "--api-only", "--port", "0", env=env)
    assert done.returncode == 2 and "CLICKSTREAM_KAFKA must be set" in done.stderr
