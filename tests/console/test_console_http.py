"""The console over HTTP against a running engine: sign-in, CSRF, every page with real data, erase."""

import contextlib
import html
import re
import redis as redis_sync

from engine.settings import ApiKey
from helpers import Engine, csrf_of, sign_in, unique, wait_until

T0 = 1_795_400_000_000


@contextlib.asynccontextmanager
async def signed_in(engine, key: str = "test-key"):
    async with engine.client(follow_redirects=False) as client:
        yield await sign_in(client, key)


async def test_a_page_without_a_session_goes_to_sign_in_and_a_wrong_key_is_refused(engine):
    async with engine.client(follow_redirects=False) as client:
        first = await client.get("/console/people")
        assert first.status_code == 303 and first.headers["location"] == "/console/signin"
        form = await client.get("/console/signin")
        refused = await client.post("/console/signin", data={"key": "not-a-key", "csrf": csrf_of(form.text)})
        assert refused.status_code == 401 and "not one of this engine&#39;s API keys" in refused.text
        assert (await client.get("/console/")).status_code == 303


async def test_a_post_without_the_session_csrf_token_is_refused(engine):
    async with engine.client(follow_redirects=False) as client:
        await client.get("/console/signin")
        without = await client.post("/console/signin", data={"key": "test-key"})
        assert without.status_code == 403 and "csrf" in without.text
    async with signed_in(engine) as client:
        forged = await client.post("/console/people/erase", data={"id": unique(), "csrf": "guessed"})
        assert forged.status_code == 403 and "csrf" in forged.text


async def test_the_session_cookie_holds_no_key_and_a_tampered_one_signs_nobody_in(engine):
    async with signed_in(engine) as client:
        value = client.cookies["clickstream_console"]
        assert "test-key" not in value
        payload, _, signature = value.rpartition(".")
        forged = payload + "." + ("A" if signature[0] != "A" else "B") + signature[1:]
        client.cookies.set("clickstream_console", forged, path="/console")
        assert (await client.get("/console/")).status_code == 303


async def test_pages_show_what_the_engine_knows_and_erase_removes_the_person(engine):
    user = unique("user")
    async with engine.client() as shopper:
        events = [{"type": "page_view", "url": "/", "ts": T0, "session_id": "s1"}] + [
            {
                "type": "product_view",
                "ts": T0 + i,
                "session_id": "s1",
                "props": {"product": {"id": f"shoe-{i}", "category": "shoes", "price": 30}},
            }
            for i in range(1, 4)
        ]
        events.append({"type": "identify", "user_id": user, "ts": T0 + 9, "session_id": "s1"})
        assert (await shopper.post("/v1/events", json={"events": events + [{"type": "nope"}]})).status_code == 202
        vid = shopper.cookies["clickstream_vid"]

    async with signed_in(engine) as client:

        async def shows_events():
            page = await client.get("/console/people", params={"q": vid})
            return page.status_code == 200 and "shoe-3 (shoes)" in page.text and page

        page = await wait_until(shows_events, 30, message="recent events on the people page")
        assert "product_view" in page.text and "Erase this person" in page.text
        assert "hero" in page.text  # what each slot shows now

        overview = await wait_until(lambda: _overview_counts(client), 10, message="the flow on the overview")
        assert "Last rejected events" in overview and "type: expected one of" in overview or "type" in overview

        segments = await client.get("/console/segments")
        assert segments.status_code == 200 and "shoe-lovers" in segments.text and "demo.yaml:" in segments.text
        assert 'class="spark"' in segments.text  # the workers sample the sizes from their start
        segment = await client.get("/console/segments/shoe-lovers")
        assert segment.status_code == 200 and "Top members" in segment.text and "<polyline points=" in segment.text
        rules = await client.get("/console/rules")
        assert rules.status_code == 200 and "demo.yaml" in rules.text and "live" in rules.text
        recs = await client.get("/console/recommendations", params={"item": "shoe-1"})
        assert recs.status_code == 200 and "also bought" in recs.text
        mine = await client.get("/console/recommendations", params={"visitor": vid})
        assert mine.status_code == 200 and f"For <code>{vid}</code>" in mine.text and 'id="for-you"' in mine.text

        exported = await client.get("/console/people/export", params={"q": vid})
        assert exported.status_code == 200 and "attachment" in exported.headers["content-disposition"]
        assert vid in exported.json()["profiles"]

        context = {"country": "NO", "weather": "rain", "device": "desktop"}
        preview = await client.get("/console/rules/preview", params={"profile": vid, **context})
        decided = await client.post(
            "/v1/decide",
            json={"visitor_id": vid, "slots": ["hero"], "context": context},
            headers={"Authorization": "Bearer test-key"},
        )
        hero = decided.json()["decisions"]["hero"]
        row = html.unescape(re.search(r'<tr data-slot="hero">(.*?)</tr>', preview.text, re.S).group(1))
        assert preview.status_code == 200 and hero["content_id"] in row and hero["reason"] in row, (row, hero)
        bad = await client.get("/console/rules/preview", params={"time": "noon"})
        assert bad.status_code == 400 and "time: expected HH:MM" in bad.text

        erase_form = await client.get("/console/people", params={"q": vid})
        erased = await client.post("/console/people/erase", data={"id": vid, "csrf": csrf_of(erase_form.text)})
        assert erased.status_code == 200 and vid in erased.text
        gone = await client.get("/console/people", params={"q": vid})
        assert "No profile for" in gone.text
        assert (await engine.profile(vid)) is None
        recent = redis_sync.Redis.from_url(engine.settings.redis)
        await wait_until(
            lambda: not recent.exists(f"{engine.settings.redis_prefix}:recent:{vid}"),
            10,
            message="the recent events erased",
        )


async def _overview_counts(client) -> str | bool:
    page = await client.get("/console/?part=live")
    match = re.search(r'id="accepted">([0-9,]+)<', page.text)
    return page.status_code == 200 and match and int(match.group(1).replace(",", "")) > 0 and page.text


async def test_an_erase_button_only_for_a_key_with_the_erase_scope(settings_for, tmp_session):
    settings = settings_for(api_keys=(ApiKey("reader", frozenset({"read"})), ApiKey("test-key")))
    running = Engine(settings, tmp_session / unique("console"))
    running.start_api()
    try:
        async with signed_in(running, "reader") as client:
            page = await client.get("/console/people", params={"q": unique()})
            assert page.status_code == 200 and "Erase" not in page.text
            refused = await client.post("/console/people/erase", data={"id": unique(), "csrf": csrf_of(page.text)})
            assert refused.status_code == 403 and "erase scope" in refused.text
    finally:
        running.stop()
