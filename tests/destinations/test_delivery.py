"""The delivery worker against the real Redis and a real HTTP receiver that fails on purpose."""

import asyncio
import uuid

import pytest
from helpers import Receiver, wait_until

from engine.destinations import webhook
from engine.destinations.delivery import Delivery
from engine.profiles.people import People
from engine.profiles.segments_index import SegmentIndex
from engine.profiles.store import ProfileStore
from engine.rules.ruleset import build_ruleset

SECRET = "a-signing-secret-of-some-length"


class Rules:
    def __init__(self, rs):
        self.current = rs


def rules_for(url: str, purpose: str = "analytics", events: str = "[entered, exited]"):
    text = f"""\
segments:
  - name: shoes
    when: {{history: {{event: product_view, category: shoes, min: 3, days: 7}}}}
destinations:
  - name: crm
    url: {url}
    secret: {SECRET}
    segments: [shoes]
    events: {events}
    purpose: {purpose}
""".encode()
    rs = build_ruleset([("d.yaml", text)], half_life_days=14.0)
    assert not rs.errors, rs.problems
    return Rules(rs)


@pytest.fixture
async def redis_parts(redis_client):
    prefix = f"t{uuid.uuid4().hex[:8]}"
    store = ProfileStore(redis_client, prefix)
    yield prefix, SegmentIndex(redis_client, prefix), People(redis_client, store), store
    keys = [k async for k in redis_client.scan_iter(match=f"{prefix}:*")]
    if keys:
        await redis_client.delete(*keys)


async def running(delivery: Delivery):
    stop = asyncio.Event()
    task = asyncio.create_task(delivery.run(stop.is_set))
    await wait_until(lambda: delivery.tasks, message="destination loop")
    return stop, task


async def record(index, people_in: dict[str, bool]):
    """Each person enters (True) or stays out of (False) `shoes`."""
    await index.update(
        {p: ({"shoes": 1.0} if inside else {}) for p, inside in people_in.items()}, ["shoes"], at=1_795_400_000_000
    )


async def test_every_change_arrives_once_by_delivery_id_after_the_receiver_recovers(redis_parts):
    prefix, index, people, _ = redis_parts
    receiver = Receiver(fail_first=6)
    delivery = Delivery(
        index.redis,
        prefix,
        rules_for(receiver.url),
        people,
        attempts=2,
        backoff_s=0.01,
        backoff_max_s=0.05,
        retry_idle_s=0.3,
        block_ms=100,
    )
    await delivery.ensure_groups()
    stop, task = await running(delivery)
    try:
        persons = [f"p{i}" for i in range(10)]
        await record(index, {p: True for p in persons})
        await record(index, {p: False for p in persons[:4]})  # four leave again
        await wait_until(lambda: len(receiver.by_id()) == 14, timeout=20, message="14 changes delivered")
        await asyncio.sleep(0.5)  # nothing more comes
    finally:
        stop.set()
        await task
        receiver.close()
    docs = receiver.by_id()
    assert len(docs) == 14 and len(receiver.received) == 14  # none twice
    changes = sorted((d["person"], d["change"]) for d in docs.values())
    assert changes == sorted([(p, "entered") for p in persons] + [(p, "exited") for p in persons[:4]])
    for got in receiver.received:
        assert webhook.verify(SECRET, got["body"], got["headers"]["X-Clickstream-Signature"])
        assert got["headers"]["Idempotency-Key"] == got["headers"]["X-Clickstream-Delivery"] == got["json"]["id"]
    for person in persons[:4]:  # one person's records in order
        entered, exited = (d for d in docs.values() if d["person"] == person and True)
        assert [entered["change"], exited["change"]] == ["entered", "exited"]
    counters = await index.counters()
    assert counters["delivery:crm:delivered"] == 14 and counters["delivery:crm:failed"] >= 6
    assert await delivery.pending() == {"crm": 0}


async def test_a_refusal_goes_to_the_dead_letter_stream_and_a_failing_receiver_keeps_it_pending(redis_parts):
    prefix, index, people, _ = redis_parts
    refusing = Receiver(fail_first=10**6, fail_status=400)
    delivery = Delivery(
        index.redis,
        prefix,
        rules_for(refusing.url),
        people,
        attempts=3,
        backoff_s=0.01,
        backoff_max_s=0.02,
        retry_idle_s=0.2,
        block_ms=100,
    )
    await delivery.ensure_groups()
    stop, task = await running(delivery)
    try:
        await record(index, {"p1": True})
        await wait_until(lambda: index.redis.xlen(delivery.dead_key), message="dead letter")
        assert refusing.attempts == 1  # a 400 is not retried
        refusing.fail_status = 503
        await record(index, {"p2": True})
        await wait_until(lambda: refusing.attempts >= 7, message="retried after the idle time")  # 3, then 3 more
        assert (await delivery.pending()) == {"crm": 1}
        assert await index.redis.xlen(delivery.dead_key) == 1
    finally:
        stop.set()
        await task
        refusing.close()
    dead = await index.redis.xrange(delivery.dead_key)
    assert dead[0][1][b"person"] == b"p1" and dead[0][1][b"failure"] == b"HTTP 400"


async def test_a_marketing_destination_hears_only_consented_people_with_their_traits(redis_parts):
    prefix, index, people, store = redis_parts
    receiver = Receiver()
    delivery = Delivery(
        index.redis, prefix, rules_for(receiver.url, purpose="marketing", events="[entered]"), people, block_ms=100
    )
    await delivery.ensure_groups()
    for vid, consent in (
        ("11111111-1111-4111-8111-111111111111", True),
        ("22222222-2222-4222-8222-222222222222", False),
    ):
        await store.apply(
            [
                {
                    "event_id": f"{vid}-c",
                    "type": "consent",
                    "visitor_id": vid,
                    "session_id": "s",
                    "ts": 1_795_400_000_000,
                    "props": {"consent": {"marketing": consent}},
                },
                {
                    "event_id": f"{vid}-i",
                    "type": "identify",
                    "visitor_id": vid,
                    "session_id": "s",
                    "ts": 1_795_400_000_001,
                    "verified": True,
                    "user_id": f"user-{vid[:4]}",
                    "props": {"traits": {"email": f"{vid[:4]}@example.com", "first_name": "Ada", "phone": "1"}},
                },
            ]
        )
    stop, task = await running(delivery)
    try:
        await record(
            index, {"11111111-1111-4111-8111-111111111111": True, "22222222-2222-4222-8222-222222222222": True}
        )
        await record(index, {"11111111-1111-4111-8111-111111111111": False})  # exits: not subscribed
        await wait_until(lambda: index.counters(), message="counters")
        await wait_until(lambda: _counted(index, "delivery:crm:skipped_no_consent"), message="the refusal skipped")
        await wait_until(lambda: receiver.received, message="one delivery")
        await asyncio.sleep(0.3)
    finally:
        stop.set()
        await task
        receiver.close()
    (doc,) = receiver.documents()
    assert doc["person"] == "11111111-1111-4111-8111-111111111111" and doc["change"] == "entered"
    assert doc["traits"] == {"email": "1111@example.com", "first_name": "Ada"}


async def _counted(index, field):
    return (await index.counters()).get(field)
