"""An erased person is exposed to no experiment again: decides after the erasure leave nothing in the
experiments' store, for the visitor's own cookie or a back end naming the erased user (real broker and Redis)."""

from engine.profiles.people import People
from helpers import unique, user_hash, wait_until

AUTH = {"Authorization": "Bearer test-key"}


async def test_decides_after_an_erasure_record_no_exposure_for_the_erased_person(engine, redis_client):
    prefix = engine.settings.redis_prefix
    user = unique("user")
    async with engine.client() as gone, engine.client() as other, engine.client() as shop:
        identify = {"type": "identify", "user_id": user, "props": {"user_hash": user_hash(user)}}
        sent = await gone.post("/v1/events", json={"events": [{"type": "page_view"}, identify]})
        assert sent.status_code == 202 and sent.json()["accepted"] == 2, sent.text
        vid = gone.cookies["clickstream_vid"]

        async def identified():
            r = await shop.get(f"/v1/profiles/{vid}", headers=AUTH)
            return r.status_code == 200 and r.json()["kind"] == "identified"

        await wait_until(identified, timeout=30, message="identified")
        assert (await gone.delete(f"/v1/profiles/{vid}")).status_code == 200

        async def tombstoned():
            return await redis_client.hexists(f"{prefix}:{{v:{vid}}}:p", "t")

        await wait_until(tombstoned, timeout=30, message="the erasure applied by the worker")
        assert (await gone.post("/v1/decide", json={"slots": ["hero"]})).status_code == 200
        assert (
            await shop.post("/v1/decide", json={"slots": ["hero"], "user_id": user}, headers=AUTH)
        ).status_code == 200
        # A new visitor's decide, after theirs on the log: once it is counted, theirs were read too.
        assert (await other.post("/v1/events", json={"type": "page_view"})).status_code == 202
        fresh = other.cookies["clickstream_vid"]
        assert (await other.post("/v1/decide", json={"slots": ["hero"]})).status_code == 200

        async def counted():
            return await redis_client.exists(f"{prefix}:{{xp:{fresh}}}:arms")

        await wait_until(counted, timeout=30, message="the new visitor's exposure")
    person = f"u:{People.digest(user)}"
    assert not await redis_client.exists(f"{prefix}:{{xp:{vid}}}:arms", f"{prefix}:{{xp:{person}}}:arms")
    members = await redis_client.smembers(f"{prefix}:xp:people:global")
    assert vid.encode() not in members and person.encode() not in members
