"""People end to end through collector, Kafka and worker: stitching, export, erasure, consent."""

import asyncio
import os

from helpers import run_cli, unique, user_hash, wait_until

AUTH = {"Authorization": "Bearer test-key"}
T0 = 1_795_400_000_000


async def send(engine, client, events):
    response = await client.post("/v1/events", json={"events": events})
    assert response.status_code == 202 and not response.json()["rejected"], response.text


async def person_when(engine, profile_id, predicate, message):
    async def check():
        async with engine.client() as client:
            r = await client.get(f"/v1/profiles/{profile_id}", headers=AUTH)
        return r.status_code == 200 and predicate(r.json()) and r.json()

    return await wait_until(check, timeout=30, message=message)


def shoes(pid):
    return {"product": {"id": pid, "category": "shoes", "price": 40.0}}


async def test_two_devices_log_in_and_become_one_person(engine):
    user = unique("user")
    async with engine.client() as laptop, engine.client() as phone:
        await send(
            engine,
            laptop,
            [
                {"type": "page_view", "url": "/", "ts": T0, "session_id": "l1"},
                {"type": "product_view", "ts": T0 + 1, "session_id": "l1", "props": shoes("s1")},
            ],
        )
        await send(
            engine,
            phone,
            [
                {"type": "page_view", "url": "/sale", "ts": T0 + 2, "session_id": "p1"},
                {
                    "type": "purchase",
                    "ts": T0 + 3,
                    "session_id": "p1",
                    "props": {
                        "order": {"id": unique("o"), "revenue": 80.0, "items": [{"id": "s2", "qty": 2, "price": 40.0}]}
                    },
                },
            ],
        )
        laptop_vid, phone_vid = laptop.cookies["clickstream_vid"], phone.cookies["clickstream_vid"]
        assert laptop_vid != phone_vid
        await send(
            engine,
            laptop,
            [
                {
                    "type": "identify",
                    "user_id": user,
                    "ts": T0 + 4,
                    "session_id": "l1",
                    "props": {"traits": {"first_name": "Ada"}, "user_hash": user_hash(user)},
                }
            ],
        )
        await send(
            engine,
            phone,
            [
                {
                    "type": "identify",
                    "user_id": user,
                    "ts": T0 + 5,
                    "session_id": "p1",
                    "props": {"user_hash": user_hash(user)},
                }
            ],
        )

    person = await person_when(engine, user, lambda p: len(p["visitor_ids"]) == 2, "both devices linked")
    assert sorted(person["visitor_ids"]) == sorted([laptop_vid, phone_vid])
    assert person["kind"] == "identified" and person["user_id"] == user and person["id"] == user
    assert person["counts"] == {"page_view": 2, "product_view": 1, "purchase": 1, "identify": 2}
    assert person["first_seen"] == T0 and person["traits"]["first_name"] == "Ada"
    assert person["commerce"]["orders"] == 1 and person["commerce"]["revenue"] == 80.0
    assert person["interest_scores"]["shoes"] > 0
    # either device's visitor id gives the same person
    by_device = await person_when(engine, phone_vid, lambda p: True, "person by visitor id")
    assert by_device["counts"] == person["counts"] and by_device["id"] == user


async def test_a_second_user_on_one_cookie_is_refused_and_audited(engine):
    first, second = unique("user"), unique("user")
    async with engine.client() as device:
        await send(
            engine, device, [{"type": "identify", "user_id": first, "ts": T0, "props": {"user_hash": user_hash(first)}}]
        )
        await send(
            engine,
            device,
            [
                {"type": "identify", "user_id": "guest", "ts": T0 + 1},
                {"type": "identify", "user_id": second, "ts": T0 + 2, "props": {"user_hash": user_hash(second)}},
            ],
        )
        vid = device.cookies["clickstream_vid"]
    await person_when(engine, first, lambda p: p["counts"].get("identify") == 3, "all identifies applied")
    async with engine.client() as client:
        assert (await client.get(f"/v1/profiles/{second}", headers=AUTH)).status_code == 404
        export = (await client.get(f"/v1/profiles/{first}/export", headers=AUTH)).json()
    assert [e["action"] for e in export["audit"]] == ["linked", "refused"] and export["audit"][0]["visitor_id"] == vid


async def test_export_and_erasure_by_the_visitor_own_cookie(engine, redis_client):
    async with engine.client() as visitor, engine.client() as stranger:
        ada = unique("user")
        await send(
            engine,
            visitor,
            [
                {"type": "page_view", "url": "/private", "ts": T0, "session_id": "s"},
                {
                    "type": "identify",
                    "user_id": ada,
                    "ts": T0 + 1,
                    "session_id": "s",
                    "props": {"traits": {"email": "ada@example.com"}, "user_hash": user_hash(ada)},
                },
            ],
        )
        vid = visitor.cookies["clickstream_vid"]
        await send(engine, stranger, [{"type": "page_view", "url": "/", "ts": T0}])
        await person_when(engine, vid, lambda p: p["kind"] == "identified", "identified")

        export = await visitor.get(f"/v1/profiles/{vid}/export")
        assert export.status_code == 200
        assert export.json()["person"]["traits"]["email"] == "ada@example.com"
        assert (await stranger.get(f"/v1/profiles/{vid}/export")).status_code == 403
        assert (await engine.client().get(f"/v1/profiles/{vid}/export")).status_code == 401

        assert (await stranger.delete(f"/v1/profiles/{vid}")).status_code == 403
        erased = await visitor.delete(f"/v1/profiles/{vid}")
        assert erased.status_code == 200 and erased.json()["visitor_ids"] == [vid]
        # events still in flight from that cookie do not bring it back
        await send(engine, visitor, [{"type": "page_view", "url": "/again", "ts": T0 + 2}])
    await asyncio.sleep(1.5)
    async with engine.client() as client:
        assert (await client.get(f"/v1/profiles/{vid}", headers=AUTH)).status_code == 404
    keys = [k async for k in redis_client.scan_iter(match=f"{engine.settings.redis_prefix}:*")]
    values = b"".join([await redis_client.dump(k) or b"" for k in keys])
    assert b"ada@example.com" not in values and b"/private" not in values


async def test_withdrawn_consent_stops_profile_changes(engine):
    async with engine.client() as visitor:
        await send(
            engine,
            visitor,
            [
                {"type": "page_view", "url": "/a", "ts": T0, "session_id": "s"},
                {
                    "type": "consent",
                    "ts": T0 + 1,
                    "session_id": "s",
                    "props": {"consent": {"analytics": False, "personalization": False}},
                },
                {"type": "page_view", "url": "/b", "ts": T0 + 2, "session_id": "s"},
            ],
        )
        vid = visitor.cookies["clickstream_vid"]
        await send(
            engine, visitor, [{"type": "page_ping", "ts": T0 + 3, "session_id": "s", "event_id": unique("marker")}]
        )
    person = await person_when(engine, vid, lambda p: p["consent"].get("analytics") is False, "consent recorded")
    await asyncio.sleep(1.0)
    person = await person_when(engine, vid, lambda p: True, "profile")
    assert person["counts"] == {"page_view": 1} and [p["url"] for p in person["pages"]] == ["/a"]


async def test_preferences_by_cookie_take_effect_at_once(engine):
    async with engine.client() as visitor, engine.client() as stranger:
        await send(engine, visitor, [{"type": "page_view", "ts": T0}])
        vid = visitor.cookies["clickstream_vid"]
        await send(engine, stranger, [{"type": "page_view", "ts": T0}])
        ok = await visitor.put(f"/v1/profiles/{vid}/preferences", json={"hide": ["shoes"], "language": "nb"})
        assert ok.status_code == 200 and ok.json()["preferences"] == {"hide": ["shoes"], "language": "nb"}
        bad = await visitor.put(f"/v1/profiles/{vid}/preferences", json={"hide": "shoes"})
        assert bad.status_code == 400 and bad.json()["error"].startswith("hide:")
        assert (await stranger.put(f"/v1/profiles/{vid}/preferences", json={"language": "en"})).status_code == 403
        shop = await engine.client().put(
            f"/v1/profiles/{vid}/preferences", json={"do_not_personalize": True}, headers=AUTH
        )
        assert shop.status_code == 200
    person = await person_when(engine, vid, lambda p: True, "profile")
    assert person["preferences"] == {"hide": ["shoes"], "language": "nb", "do_not_personalize": True}


async def test_erased_person_stays_erased_after_replay(settings_for, tmp_session, redis_client):
    from helpers import Engine

    engine = Engine(settings_for(), tmp_session / unique("replay"))
    engine.start_worker()
    engine.start_api()
    try:
        await engine.wait_ready()
        user = unique("user")
        async with engine.client() as a, engine.client() as b:
            signed = {"user_hash": user_hash(user)}
            await send(
                engine,
                a,
                [{"type": "page_view", "ts": T0}, {"type": "identify", "user_id": user, "ts": T0 + 1, "props": signed}],
            )
            await send(
                engine,
                b,
                [{"type": "page_view", "ts": T0}, {"type": "identify", "user_id": user, "ts": T0 + 1, "props": signed}],
            )
        async with engine.client() as c:
            await send(engine, c, [{"type": "page_view", "ts": T0}])
            bystander = c.cookies["clickstream_vid"]
        await person_when(engine, user, lambda p: len(p["visitor_ids"]) == 2, "linked")
        await person_when(engine, bystander, lambda p: True, "bystander")
        async with engine.client() as client:
            assert (await client.delete(f"/v1/profiles/{user}", headers=AUTH)).status_code == 200
        replay = run_cli("replay", "--quiet", env={**os.environ, **engine.settings.environ()}, timeout=120)
        assert replay.returncode == 0, replay.stderr
        async with engine.client() as client:
            assert (await client.get(f"/v1/profiles/{user}", headers=AUTH)).status_code == 404
            assert (await client.get(f"/v1/profiles/{bystander}", headers=AUTH)).status_code == 200
    finally:
        engine.stop()
