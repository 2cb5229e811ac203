"""Segments that change with time alone: horizons (pure) and the sweeper against the real Redis."""

import uuid

import pytest

from engine.profiles.derived import SegmentEvaluator, SegmentSweeper, SegmentUpdater
from engine.profiles.model import DAY_MS, fold, new_profile
from engine.profiles.people import People
from engine.profiles.segments import derive, next_change
from engine.profiles.segments_index import SegmentIndex
from engine.profiles.store import ProfileStore
from engine.profiles.value_store import ValueStore
from engine.rules.ruleset import build_ruleset
from segment_inputs import NOW, Clock, Rules, views

TODAY = NOW // DAY_MS * DAY_MS
SEGMENTS = b"""\
segments:
  - name: shoe-lovers
    when: {history: {event: product_view, category: shoes, min: 3, days: 7}}
  - name: hat-fans
    when: {interest: {category: hats, min: 1}}
  - name: not-browsing
    when: {not: {history: {event: product_view, min: 1, days: 2}}}
"""


def rules():
    rs = build_ruleset([("s.yaml", SEGMENTS)], half_life_days=14.0)
    assert not rs.errors, rs.problems
    return rs


def by_name(rs, name):
    return next(s for s in rs.segments if s.name == name)


def test_a_window_membership_is_due_when_enough_of_its_oldest_days_fall_out():
    rs = rules()
    person = fold(new_profile("v"), views("v", "shoes", [5, 3, 1, 0]))
    segment = by_name(rs, "shoe-lovers")
    assert segment.condition.evaluate(person, {}, NOW)[0]
    # four views; dropping the one of 5 days ago still leaves three, dropping the one of 3 days ago leaves two
    due = segment.condition.next_change(person, {}, NOW)
    assert due == TODAY - 3 * DAY_MS + 7 * DAY_MS
    assert segment.condition.evaluate(person, {}, due - 1)[0] and not segment.condition.evaluate(person, {}, due)[0]


def test_a_decaying_interest_is_due_when_it_crosses_the_threshold():
    rs = rules()
    person = fold(new_profile("v"), views("v", "hats", [0, 0]))  # interest 2, half-life 14 days
    segment = by_name(rs, "hat-fans")
    due = segment.condition.next_change(person, {}, NOW)
    assert abs(due - (NOW + 14 * DAY_MS)) <= 1
    assert (
        segment.condition.evaluate(person, {}, due - 1000)[0]
        and not segment.condition.evaluate(person, {}, due + 1000)[0]
    )
    assert segment.condition.next_change(person, {}, due + 1000) is None  # below: decay never brings it back


def test_a_not_is_due_when_its_inner_window_ends_and_no_time_condition_means_no_due():
    rs = rules()
    person = fold(new_profile("v"), views("v", "bags", [1]))
    segment = by_name(rs, "not-browsing")
    assert not segment.condition.evaluate(person, {}, NOW)[0]
    assert segment.condition.next_change(person, {}, NOW) == TODAY + DAY_MS
    derived = derive(person, None, rs.segments, NOW)
    assert next_change(derived, rs.segments, NOW) == TODAY + DAY_MS
    plain = build_ruleset([("p.yaml", b"segments:\n  - name: all\n    when: always\n")], half_life_days=14.0)
    assert next_change(derive(person, None, plain.segments, NOW), plain.segments, NOW) is None


@pytest.fixture
async def parts(redis_client):
    prefix = f"t{uuid.uuid4().hex[:8]}"
    store = ProfileStore(redis_client, prefix, anonymous_ttl_s=3600)
    people = People(redis_client, store)
    index = SegmentIndex(redis_client, prefix)
    clock = Clock(NOW)
    evaluator = SegmentEvaluator(
        people,
        ValueStore(redis_client, store, 14.0),
        index,
        Rules(rules()),
        14.0,
        clock=clock,
        anonymous_ttl_ms=3_600_000,
    )
    yield store, index, evaluator, clock
    keys = [k async for k in redis_client.scan_iter(match=f"{prefix}:*")]
    if keys:
        await redis_client.delete(*keys)


async def outbox(index):
    rows = await index.redis.xrange(index.outbox_key)
    return [{k.decode(): v.decode() for k, v in fields.items()} for _, fields in rows]


async def test_the_sweeper_moves_a_member_out_when_the_window_passes_and_records_it_once(parts):
    store, index, evaluator, clock = parts
    evaluator.anonymous_ttl_ms = 30 * DAY_MS  # retention far off: the window decides
    vid = str(uuid.uuid4())
    events = views(vid, "shoes", [6, 0, 0])
    result = await store.apply_batch(events)
    await SegmentUpdater(evaluator)(events, result)
    assert (await index.sizes(["shoe-lovers"]))["shoe-lovers"] == 1
    changes = await outbox(index)
    assert [(c["segment"], c["person"], c["change"]) for c in changes] == [("shoe-lovers", vid, "entered")]
    due = await index.redis.zscore(index.due_key, vid)
    assert due == TODAY + DAY_MS  # the view of 6 days ago leaves the 7-day window at midnight

    sweeper = SegmentSweeper(evaluator, every_s=0.1)
    assert await sweeper.sweep() == 0  # nothing due yet
    clock.now = int(due) + 1
    assert await sweeper.sweep() == 1
    assert await sweeper.sweep() == 0  # recorded once, however often it runs
    changes = await outbox(index)
    assert [(c["change"], c["reason"]) for c in changes] == [("entered", "events"), ("exited", "time")]
    assert (await index.sizes(["shoe-lovers"]))["shoe-lovers"] == 0
    assert await index.counters() == {"entered": 1, "exited": 1}


async def test_an_expired_anonymous_id_leaves_every_set(parts, redis_client):
    store, index, evaluator, clock = parts
    vid = str(uuid.uuid4())
    events = views(vid, "hats", [0, 0])
    await SegmentUpdater(evaluator)(events, await store.apply_batch(events))
    assert (await index.sizes(["hat-fans"]))["hat-fans"] == 1
    assert await redis_client.zscore(index.due_key, vid) == NOW + 3_600_000  # retention ends before the decay
    await redis_client.delete(store.profile_key(vid))  # what Redis does when the TTL runs out
    clock.now = NOW + 3_600_001
    assert await SegmentSweeper(evaluator, 0.1).sweep() == 1
    assert (await index.sizes(["hat-fans"]))["hat-fans"] == 0
    assert await redis_client.zscore(index.due_key, vid) is None
    assert (await outbox(index))[-1]["reason"] == "time"


async def test_a_replay_rebuilds_without_recording_changes(parts):
    store, index, evaluator, _clock = parts
    vid = str(uuid.uuid4())
    events = views(vid, "shoes", [0, 0, 0])
    await SegmentUpdater(evaluator, emit=False)(events, await store.apply_batch(events))
    assert (await index.sizes(["shoe-lovers"]))["shoe-lovers"] == 1 and await outbox(index) == []


async def test_erasure_removes_the_person_from_sets_due_times_and_outbox(parts):
    store, index, evaluator, _clock = parts
    vid, other = str(uuid.uuid4()), str(uuid.uuid4())
    events = views(vid, "shoes", [0, 0, 0]) + views(other, "shoes", [0, 0, 0])
    await SegmentUpdater(evaluator)(events, await store.apply_batch(events))
    await index.forget(vid, [{"id": vid}])
    assert [m for m, _ in await index.members("shoe-lovers")] == [other]
    left = await outbox(index)
    assert {c["person"] for c in left} == {other, vid}
    # Of the erased one, only the notice that they left (destinations delete them too).
    assert [(c["change"], c["reason"]) for c in left if c["person"] == vid] == [("exited", "erased")]
    await index.forget(vid, [{"id": vid}])  # the worker's run of the hook: neither removed nor told twice
    assert [(c["change"], c["reason"]) for c in await outbox(index) if c["person"] == vid] == [("exited", "erased")]
    assert await index.redis.zscore(index.due_key, vid) is None
