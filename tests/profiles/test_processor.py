"""The worker's profile step over real Redis: state changes where they stand, the same keys however batches fall."""

import uuid

import pytest

from engine.profiles import changes
from engine.rules.live import LiveRules
from engine.wiring import batch_handlers, build_stores

T0 = 1_795_400_000_000


def ids():
    return uuid.uuid4().hex


def ev(kind, vid, n, **props):
    return {
        "event_id": f"{vid}-{kind}-{n}",
        "type": kind,
        "visitor_id": vid,
        "ts": T0 + n,
        "session_id": "s",
        "received_at": T0 + n,
        "props": props,
    }


def bought(vid, n, *items):
    return ev(
        "purchase", vid, n, order={"id": f"o-{vid}-{n}", "items": [{"id": i, "qty": 1, "price": 5.0} for i in items]}
    )


def viewed(vid, n, item):
    return ev("product_view", vid, n, product={"id": item, "category": "shoes"})


async def dump(redis, prefix):
    out = {}
    async for key in redis.scan_iter(match=f"{prefix}:*"):
        kind = (await redis.type(key)).decode()
        if kind == "hash":
            out[key.decode()[len(prefix) :]] = await redis.hgetall(key)
        elif kind == "set":
            out[key.decode()[len(prefix) :]] = await redis.smembers(key)
        elif kind == "zset":
            out[key.decode()[len(prefix) :]] = {
                m: round(s, 9) for m, s in await redis.zrange(key, 0, -1, withscores=True)
            }
        elif kind == "list":  # each visitor's recent events (engine.stream.recent)
            out[key.decode()[len(prefix) :]] = await redis.lrange(key, 0, -1)
        else:
            out[key.decode()[len(prefix) :]] = await redis.get(key)
    return out


@pytest.fixture
async def worlds(settings_for, redis_client, tmp_path):
    """Two engines' stores and handlers over their own prefixes, to feed the same log batched two ways."""
    made = []

    def make():
        settings = settings_for(rules=tmp_path / "no-rules")
        stores = build_stores(settings, redis_client)
        made.append(settings.redis_prefix)
        return (
            settings.redis_prefix,
            stores,
            batch_handlers(
                settings, stores, LiveRules(settings.rules, half_life_days=settings.interest_half_life_days)
            )[0],
        )

    yield make
    for prefix in made:
        keys = [k async for k in redis_client.scan_iter(match=f"{prefix}:*")]
        if keys:
            await redis_client.delete(*keys)


async def feed_both_ways(worlds, redis_client, log):
    (p1, _, one), (p2, _, other) = worlds(), worlds()
    await one(log)  # the live worker: one batch
    for event in log:  # a replay that happens to batch one by one
        await other([event])
    return await dump(redis_client, p1), await dump(redis_client, p2), p1


async def test_an_erasure_in_a_batch_subtracts_what_came_before_and_drops_what_comes_after(worlds, redis_client):
    a, b = str(uuid.uuid4()), str(uuid.uuid4())
    log = [
        viewed(a, 1, "x"),
        bought(a, 2, "x", "y"),
        bought(b, 3, "x", "y"),
        changes.erasure(a, None, T0 + 4, ids),
        viewed(a, 5, "z"),
        bought(a, 6, "x", "z"),
    ]
    first, second, prefix = await feed_both_ways(worlds, redis_client, log)
    assert first == second
    assert first[f":{{v:{a}}}:p"] == {b"t": str(T0 + 4).encode()}
    assert first[":rec:{co}:np"] == {b"x": b"1", b"y": b"1"}  # b's order alone
    assert first[":buyers"] == {b.encode()}


async def test_consent_withdrawn_in_a_batch_still_counts_what_came_before(worlds, redis_client):
    v = str(uuid.uuid4())
    log = [
        viewed(v, 1, "x"),
        bought(v, 2, "x", "y"),
        ev("consent", v, 3, consent={"analytics": False}),
        bought(v, 4, "x", "z"),
        viewed(v, 5, "w"),
    ]
    first, second, _ = await feed_both_ways(worlds, redis_client, log)
    assert first == second
    assert first[":rec:{co}:np"] == {b"x": b"1", b"y": b"1"}


async def test_preferences_from_the_log_keep_the_latest_stamp_whatever_the_order(worlds, redis_client):
    v = str(uuid.uuid4())
    older = changes.preferences(v, None, '{"language": "en"}', T0, ids)
    newer = changes.preferences(v, None, '{"language": "nb"}', T0 + 1, ids)
    (prefix, stores, handle) = worlds()
    await handle([newer, older, newer])  # redelivered, and out of order
    assert await stores.profiles.get_preferences(v) == b'{"language": "nb"}'
    user = changes.preferences(None, "d1g3st", '{"hide": ["hats"]}', T0, ids)
    await handle([user])
    assert await redis_client.get(f"{prefix}:{{u:d1g3st}}:prefs") == b'{"hide": ["hats"]}'


async def test_a_malformed_state_change_is_rejected_with_its_reason(worlds):
    (_, _, handle) = worlds()
    bad = {"event_id": ids(), "type": "server:preferences", "visitor_id": "v", "ts": T0, "props": {"document": 3}}
    result = await handle(
        [bad, {"event_id": ids(), "type": "server:nothing", "visitor_id": "v", "ts": T0, "props": {}}]
    )
    assert [reason for _, reason in result.rejected] == [
        "state change: props.document: expected a non-empty string",
        "state change: type: unknown state change 'server:nothing'",
    ]


async def test_a_redelivered_batch_leaves_every_key_as_one_delivery(worlds, redis_client):
    """Redelivered events are not first-time ones: the steps that trust first-time events check them again."""
    a, b = str(uuid.uuid4()), str(uuid.uuid4())
    log = [viewed(a, 1, "x"), ev("page_view", a, 2, url="https://s/2"), bought(b, 3, "x", "y"), viewed(b, 4, "z")]
    (p1, _, one), (p2, _, other) = worlds(), worlds()
    await one(log)
    await other(log[:2])
    await other(log)  # the first two again, with the rest
    await other(log[1:] + [viewed(a, 5, "y")])  # all but one again, and a new one
    await one([viewed(a, 5, "y")])
    first, second = await dump(redis_client, p1), await dump(redis_client, p2)
    assert first == second
    assert len(first[f":recent:{a}"]) == 3 and len(first[f":recent:{b}"]) == 2
