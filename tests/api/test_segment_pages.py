"""Paging through a segment beyond 1,000 members, and the export's filter (real Redis; pure)."""

import uuid

import pytest

from engine.api.segments import decode_cursor, encode_cursor
from engine.profiles.segment_export import export_row
from engine.errors import InvalidInput
from engine.profiles.segments_index import SegmentIndex


@pytest.fixture
async def index(redis_client):
    prefix = f"t{uuid.uuid4().hex[:8]}"
    yield SegmentIndex(redis_client, prefix)
    keys = [k async for k in redis_client.scan_iter(match=f"{prefix}:*")]
    if keys:
        await redis_client.delete(*keys)


async def test_pages_cover_2500_members_once_each_even_when_members_leave_between_pages(index):
    scores = {f"p{i:04d}": float(i % 7) for i in range(2500)}  # many ties
    await index.redis.zadd(index.key("s"), scores)
    seen, after, pages = [], None, 0
    while True:
        page = await index.page("s", after, 1000)
        if pages == 1:  # someone already served and someone not yet served both leave
            await index.redis.zrem(index.key("s"), seen[-1][0], page[-1][0])
            scores.pop(page[-1][0])
            page = page[:-1]
        seen += page
        pages += 1
        if len(page) < 999:
            break
        after = (seen[-1][1], seen[-1][0])
    ids = [m for m, _ in seen]
    assert len(ids) == len(set(ids)) == len(scores)
    assert [s for _, s in seen] == sorted((s for _, s in seen), reverse=True)


def test_a_cursor_goes_round_and_a_forged_one_is_a_400_naming_the_field():
    assert decode_cursor(encode_cursor(3.5, "user-é")) == (3.5, "user-é")
    assert decode_cursor(None) is None
    for bad in ("nope", encode_cursor(1, "x")[:-3], "W3RydWUsICJ4Il0", "e30"):
        with pytest.raises(InvalidInput, match="^cursor: "):
            decode_cursor(bad)


def test_only_identified_members_with_marketing_consent_and_an_email_are_exported():
    person = {
        "id": "u1",
        "user_id": "u1",
        "consent": {"marketing": True},
        "traits": {"email": "a@example.com", "first_name": "Ada", "phone": "1"},
    }
    assert export_row("u1", 2.0, person) == {
        "id": "u1",
        "email": "a@example.com",
        "first_name": "Ada",
        "language": None,
        "score": 2.0,
    }
    assert export_row("u1", 2.0, dict(person, consent={"marketing": False})) is None
    assert export_row("u1", 2.0, dict(person, consent={})) is None  # never assumed
    assert export_row("v1", 2.0, dict(person, id="v1", user_id=None)) is None  # anonymous
    assert export_row("u1", 2.0, dict(person, traits={"first_name": "Ada"})) is None  # no address to write to
    assert export_row("u1", 2.0, None) is None  # erased
