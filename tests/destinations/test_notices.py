"""Erasure and withdrawn marketing consent, told to destinations: real Redis, real HTTP receivers.

An erased person's segments are each told once as `exited` (reason erased), however
often the erasure hook runs (the API's, then the worker's); a withdrawn marketing
consent is told once, to marketing destinations only, and the person stays a member."""

import asyncio
import uuid
from functools import partial

import events as builders
import pytest
from helpers import Receiver, wait_until

from engine.destinations.delivery import Delivery
from engine.profiles.people import People
from engine.profiles.segments_index import SegmentIndex
from engine.profiles.store import BatchResult, ProfileStore
from engine.profiles.withdrawals import ConsentWatch
from engine.rules.ruleset import build_ruleset

SECRET = "a-signing-secret-of-some-length"
AT = 1_795_400_000_000
ADA, BOB = "11111111-1111-4111-8111-111111111111", "22222222-2222-4222-8222-222222222222"
ADA_EMAIL = {"email": "ada@example.com"}

# Every event here comes from one browser session and has its own id.
consent = partial(builders.consent, event_id=builders.new_id, session_id="s")
identify = partial(builders.identify, event_id=builders.new_id, session_id="s")


class Rules:
    def __init__(self, rs):
        self.current = rs


def rules_for(crm: str, mail: str):
    text = f"""\
segments:
  - name: shoes
    when: always
  - name: hats
    when: always
destinations:
  - name: crm
    url: {crm}
    secret: {SECRET}
    segments: [shoes, hats]
    purpose: analytics
  - name: mail
    url: {mail}
    secret: {SECRET}
    segments: [shoes, hats]
""".encode()
    rs = build_ruleset([("d.yaml", text)], half_life_days=14.0)
    assert not rs.errors, rs.problems
    return Rules(rs)


@pytest.fixture
async def parts(redis_client):
    prefix = f"t{uuid.uuid4().hex[:8]}"
    store = ProfileStore(redis_client, prefix)
    index = SegmentIndex(redis_client, prefix)
    people = People(redis_client, store)
    people.erasure_hooks.append(index.forget)
    crm, mail = Receiver(), Receiver()
    delivery = Delivery(redis_client, prefix, rules_for(crm.url, mail.url), people, block_ms=100, retry_idle_s=0.3)
    await delivery.ensure_groups()
    stop = asyncio.Event()
    task = asyncio.create_task(delivery.run(stop.is_set))
    await wait_until(lambda: len(delivery.tasks) == 2, message="destination loops")
    yield index, people, store, crm, mail
    stop.set()
    await task
    crm.close()
    mail.close()
    keys = [k async for k in redis_client.scan_iter(match=f"{prefix}:*")]
    if keys:
        await redis_client.delete(*keys)


async def apply(store, people, watch, events):
    """What the worker does with a batch, for these steps: fold, link, then watch consent."""
    result = await store.apply_batch(events)
    await people.link(events, result)
    await watch(events, result)
    return result


def notices(receiver, person, reason):
    return [d for d in receiver.documents() if d.get("person") == person and d.get("reason") == reason]


async def test_an_erased_person_is_told_exited_once_per_segment_to_every_destination_that_heard_them(parts):
    index, people, store, crm, mail = parts
    await store.apply(
        [
            consent(ADA, AT, marketing=True),
            identify(ADA, "ada", AT + 1, traits=ADA_EMAIL),
            consent(BOB, AT, marketing=False),
        ]
    )
    await people.link(
        [identify(ADA, "ada", AT + 1, traits=ADA_EMAIL)], BatchResult(profiles={ADA: await store.get(ADA)})
    )
    await index.update({"ada": {"shoes": 2.0, "hats": 1.0}, BOB: {"shoes": 1.0}}, ["shoes", "hats"], at=AT)
    await wait_until(lambda: len(crm.documents()) == 3 and len(mail.documents()) == 2, message="the entries")

    await people.request_erasure("ada")  # no log here: the hooks run as the worker's would
    await people.erase(BOB)
    pieces = [{"id": ADA, "user_id": "ada", "consent": {"marketing": True}}]
    await index.forget("ada", pieces)  # the worker's run of the hook, when the log reaches the erasure
    await wait_until(
        lambda: len(notices(crm, "ada", "erased")) == 2 and notices(crm, BOB, "erased"),
        message="the erasure notices at the analytics destination",
    )
    await wait_until(lambda: len(notices(mail, "ada", "erased")) == 2, message="and at the marketing one")
    await asyncio.sleep(0.5)  # nothing more comes
    told = notices(crm, "ada", "erased")
    assert sorted((d["segment"], d["change"], d["score"]) for d in told) == [
        ("hats", "exited", 1.0),
        ("shoes", "exited", 2.0),
    ]
    assert len(notices(crm, "ada", "erased")) == 2 and len(notices(mail, "ada", "erased")) == 2
    assert not notices(mail, BOB, "erased")  # never had marketing consent: the mailer never heard of them
    assert all("traits" not in d and "marketing" not in d for d in mail.documents() if d["reason"] == "erased")
    assert await index.sizes(["shoes", "hats"]) == {"shoes": 0, "hats": 0}
    assert await index.redis.zscore(index.due_key, "ada") is None

    # Nothing of them is left in the outbox once every destination has its notices: erasure leaves no trace.
    async def left():
        return [f for _, f in await index.redis.xrange(index.outbox_key) if f[b"person"] in (b"ada", BOB.encode())]

    await wait_until(lambda: _empty(left()), message="the delivered notices gone from the outbox")


async def _empty(rows) -> bool:
    return not await rows


async def test_a_replayed_erasure_tells_no_one(parts):
    index, people, store, crm, _ = parts
    await index.update({BOB: {"shoes": 1.0}}, ["shoes", "hats"], at=AT, emit=False)  # rebuilt by a replay
    index.notify_erasures = False
    await people.erase(BOB)
    assert await index.sizes(["shoes"]) == {"shoes": 0}
    assert await index.redis.xlen(index.outbox_key) == 0


async def test_withdrawn_marketing_consent_is_told_once_to_marketing_destinations_and_the_person_stays(parts):
    index, people, store, crm, mail = parts
    watch = ConsentWatch(people, index)
    await apply(
        store, people, watch, [consent(ADA, AT, marketing=True), identify(ADA, "ada", AT + 1, traits=ADA_EMAIL)]
    )
    await apply(store, people, watch, [consent(BOB, AT, marketing=True)])
    await index.update({"ada": {"shoes": 2.0, "hats": 1.0}, BOB: {"shoes": 1.0}}, ["shoes", "hats"], at=AT)
    await wait_until(lambda: len(mail.documents()) == 3, message="the entries at the mailer")

    withdrawal = [consent(ADA, AT + 10, marketing=False)]
    await apply(store, people, watch, withdrawal)
    await apply(store, people, watch, withdrawal)  # the batch redelivered
    await apply(store, people, watch, [consent(BOB, AT + 10, marketing=True)])  # consent given again: nothing to tell
    await wait_until(
        lambda: len(notices(mail, "ada", "consent_withdrawn")) == 2, message="the withdrawal at the mailer"
    )
    await asyncio.sleep(0.5)
    told = notices(mail, "ada", "consent_withdrawn")
    assert sorted((d["segment"], d["change"], d["at"]) for d in told) == [
        ("hats", "exited", AT + 10),
        ("shoes", "exited", AT + 10),
    ]
    assert all(d["traits"] == {"email": "ada@example.com"} for d in told)  # so the mailer finds the contact
    assert not [d for d in crm.documents() if d.get("reason") == "consent_withdrawn"]
    assert not notices(mail, BOB, "consent_withdrawn")
    assert {m for m, _ in await index.members("shoes")} == {"ada", BOB}  # still members: the segment holds

    await index.update({"ada": {"shoes": 2.0}}, ["shoes", "hats"], at=AT + 20)  # leaves hats for real
    await wait_until(
        lambda: [
            d
            for d in crm.documents()
            if d["person"] == "ada" and d.get("reason") == "events" and d["change"] == "exited"
        ],
        message="the real exit at the analytics destination",
    )
    assert not [d for d in mail.documents() if d.get("reason") == "events" and d["change"] == "exited"]  # no consent


async def test_a_replayed_withdrawal_rebuilds_the_consent_set_and_tells_no_one(parts):
    index, people, store, _, _ = parts
    quiet = ConsentWatch(people, index, emit=False)
    await apply(store, people, quiet, [consent(BOB, AT, marketing=True)])
    assert await index.redis.sismember(index.marketing_key, BOB)
    await index.update({BOB: {"shoes": 1.0}}, ["shoes", "hats"], at=AT, emit=False)
    await apply(store, people, quiet, [consent(BOB, AT + 1, marketing=False)])
    assert not await index.redis.sismember(index.marketing_key, BOB)
    assert await index.redis.xlen(index.outbox_key) == 0
    assert await index.sizes(["shoes"]) == {"shoes": 1}
