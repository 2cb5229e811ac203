"""Attacks through the collector: events for someone else, ids the engine never issued, bots, the pixel."""

import datetime as dt
import re

import pytest

from attacks import T0, auth, customer, profile_when, send
from helpers import topic_offsets, unique, wait_until


async def test_with_a_cookie_the_events_are_the_cookies_visitors(secure):
    victim, victim_vid, _ = await customer(secure)
    await victim.aclose()
    async with secure.client() as stranger:
        await send(stranger, [{"type": "page_view", "url": "/mine", "ts": T0}])
        mine = stranger.cookies["clickstream_vid"]
        refused = await send(
            stranger,
            [
                {"type": "page_view", "visitor_id": victim_vid, "url": "/theirs", "ts": T0 + 1},
                {"type": "consent", "visitor_id": victim_vid, "ts": T0 + 2, "props": {"consent": {"analytics": False}}},
            ],
            status=403,
        )
        mixed = await send(
            stranger,
            [
                {"type": "page_view", "visitor_id": victim_vid, "url": "/theirs", "ts": T0 + 3},
                {"type": "page_view", "url": "/mine-too", "ts": T0 + 4},
            ],
        )
    assert refused.json()["error"].startswith("events[0].visitor_id:")
    assert mixed.json()["accepted"] == 1 and mixed.json()["rejected"][0]["error"].startswith("visitor_id:")
    await profile_when(secure, mine, lambda p: p["counts"].get("page_view") == 2, "the stranger's own events")
    victim_now = await profile_when(secure, victim_vid, lambda p: True, "the victim")
    assert victim_now["counts"].get("page_view") == 1 and victim_now["consent"] == {}


@pytest.mark.parametrize(
    "kind, props",
    [
        ("consent", {"consent": {"analytics": False, "personalization": False}}),
        ("preference", {"preferences": {"do_not_personalize": True}}),
        ("identify", {"traits": {"first_name": "Mallory"}}),
        ("purchase", {"order": {"id": "o-fake", "revenue": 9999.0, "items": [{"id": "gold", "price": 9999.0}]}}),
    ],
)
async def test_without_their_cookie_nothing_changes_a_visitors_consent_preferences_identity_or_orders(
    secure, kind, props
):
    victim, victim_vid, _ = await customer(secure)
    await victim.aclose()
    event = {"type": kind, "visitor_id": victim_vid, "ts": T0 + 5, "props": props}
    if kind == "identify":
        event["user_id"] = unique("user")
    async with secure.client() as stranger:  # no cookie at all
        response = await send(stranger, [event], status=403)
    assert (
        response.json()["error"]
        == f"events[0].visitor_id: a {kind} event needs that visitor's own cookie, or an API key"
    )
    async with secure.client() as anonymous:  # a page view for a known visitor id is still taken (an e-mail's pixel)
        await send(anonymous, [{"type": "page_view", "visitor_id": victim_vid, "url": "/from-mail", "ts": T0 + 6}])
    after = await profile_when(secure, victim_vid, lambda p: p["counts"].get("page_view") == 2, "the page view")
    assert after["consent"] == {} and after["commerce"]["orders"] == 0 and "Mallory" not in str(after)


async def test_ids_not_of_the_issued_form_are_refused_or_replaced(secure):
    _, victim_vid, user = await customer(secure)
    async with secure.client() as client:
        named = await client.post("/v1/events", json={"type": "page_view", "visitor_id": "12345"})
        as_user = await client.post("/v1/events", json={"type": "page_view", "visitor_id": user})
    for response in (named, as_user):
        assert response.status_code == 400 and response.json()["error"].startswith("events[0].visitor_id:")
    async with secure.client(cookies={"clickstream_vid": user}) as forged:
        replaced = await forged.post("/v1/events", json={"type": "page_view", "url": "/forged"})
    assert replaced.status_code == 202
    issued = replaced.cookies["clickstream_vid"]
    assert issued != user and re.fullmatch(r"[0-9a-f-]{36}", issued)
    await profile_when(secure, issued, lambda p: p["counts"] == {"page_view": 1}, "the event under the new id")


async def test_the_pixel_records_nothing_under_do_not_track_or_gpc(secure):
    before = await topic_offsets(secure.settings, secure.settings.topic)
    async with secure.client() as client:
        for header in ({"DNT": "1"}, {"Sec-GPC": "1"}):
            r = await client.get("/v1/pixel.gif", params={"type": "page_view", "url": "/mail"}, headers=header)
            assert r.status_code == 200 and r.content.startswith(b"GIF89a") and "set-cookie" not in r.headers
    assert await topic_offsets(secure.settings, secure.settings.topic) == before
    async with secure.client() as client:
        r = await client.get("/v1/pixel.gif", params={"type": "page_view", "url": "/mail"})
    assert r.status_code == 200 and "clickstream_vid" in r.cookies
    assert await topic_offsets(secure.settings, secure.settings.topic) == before + 1


GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
HEADLESS = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/124.0.0.0 Safari/537.36"
)


async def bots_today(engine) -> int:
    day = dt.datetime.now(dt.timezone.utc).date().isoformat()
    async with engine.client() as client:
        text = (await client.get("/metrics")).text
    found = re.search(rf'^clickstream_bot_events\{{day="{day}"\}} (\S+)$', text, re.M)
    return int(float(found.group(1))) if found else 0


@pytest.mark.parametrize("agent", [GOOGLEBOT, HEADLESS, "python-requests/2.32.3"])
async def test_bots_are_marked_kept_out_of_every_store_and_counted(secure, redis_client, agent):
    from engine.recommend.store import CooccurrenceStore

    counted = await bots_today(secure)
    item = unique("item")
    async with secure.client(headers={"User-Agent": agent}) as bot:
        accepted = await send(
            bot,
            [
                {"type": "page_view", "url": "/", "ts": T0},
                {"type": "product_view", "ts": T0 + 1, "props": {"product": {"id": item, "category": "shoes"}}},
                {
                    "type": "purchase",
                    "ts": T0 + 2,
                    "props": {"order": {"id": unique("o"), "items": [{"id": item}, {"id": "sock"}]}},
                },
            ],
        )
        vid = bot.cookies["clickstream_vid"]
    assert accepted.json()["accepted"] == 3
    await wait_until(lambda: _at_least(bots_today(secure), counted + 3), timeout=10, message="/metrics counts the bot")
    # A back end's event for the same visitor id comes after them on the same partition: once it is
    # in the profile, the worker has passed the bot's events over.
    async with secure.client(headers=auth()) as shop:
        await send(shop, [{"type": "custom:marker", "visitor_id": vid, "ts": T0 + 3}])
    person = await profile_when(secure, vid, lambda p: True, "the marker")
    assert person["counts"] == {"custom:marker": 1} and person["viewed"] == [] and person["commerce"]["orders"] == 0
    store = CooccurrenceStore(redis_client, secure.settings.redis_prefix)
    assert await store.neighbours(item) == {} and await store.orders_of(vid) == []
    async with secure.client() as client:
        segments = (await client.get("/v1/segments/shoe-lovers", headers=auth())).json()
    assert vid not in str(segments)


async def _at_least(count, floor: int) -> bool:
    return await count >= floor
