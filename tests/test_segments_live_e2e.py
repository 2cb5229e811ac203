"""Live segments end to end, through the running engine (worker and API processes, real
broker and Redis) and real webhook receivers on 127.0.0.1: entries reach the receiver in
seconds, exits follow the (injected) clock with no new event, a new segment is backfilled
shortly after its file is saved, the export lists only consented identified members (over
HTTP and from `clickstream segments export` alike), a wished item back in stock or cheaper
reaches the receiver once, erasure reaches all of it and is told to the receivers as
`exited` (reason erased), and a withdrawn marketing consent is told to the mailer only."""

import asyncio
import json
import os
import time

import pytest
import redis.asyncio as aioredis
from helpers import Engine, Receiver, run_cli, started, unique, user_hash, wait_until

from engine.destinations import webhook

AUTH = {"Authorization": "Bearer test-key"}
SECRET = "e2e-signing-secret-0123456789"
DAY_MS = 86_400_000

RULES = """\
segments:
  - name: shoe-lovers
    when: {{history: {{event: product_view, category: shoes, min: 3, days: 7}}}}
destinations:
  - name: crm
    url: {crm}
    secret: {secret}
    segments: [shoe-lovers]
    purpose: analytics
  - name: mail
    url: {mail}
    secret: {secret}
    alerts: [back_in_stock, price_drop]
  - name: mailer
    url: {mailer}
    secret: {secret}
    segments: [shoe-lovers]
"""


@pytest.fixture(scope="module")
async def live(settings_for, tmp_path_factory):
    crm, mail, mailer = Receiver(), Receiver(), Receiver()
    folder = tmp_path_factory.mktemp("live-rules")
    (folder / "segments.yaml").write_text(RULES.format(crm=crm.url, mail=mail.url, mailer=mailer.url, secret=SECRET))
    settings = settings_for(rules=folder, test_clock=True, segment_sweep_s=0.5, webhook_retry_idle_s=1.0)
    running = await started(Engine(settings, folder.parent / f"{folder.name}-logs"))
    running.folder, running.crm, running.mail, running.mailer = folder, crm, mail, mailer
    running.redis = aioredis.Redis.from_url(settings.redis)
    yield running
    running.stop()
    crm.close()
    mail.close()
    mailer.close()
    await running.redis.aclose()


async def send(client, events, **kwargs):
    response = await client.post("/v1/events", json={"events": events}, **kwargs)
    assert response.status_code == 202 and not response.json()["rejected"], response.text


def shoe_views(n=3, category="shoes"):
    now = int(time.time() * 1000)
    return [
        {
            "type": "product_view",
            "ts": now + i,
            "session_id": "s1",
            "props": {"product": {"id": f"shoe-{i}", "category": category, "price": 50.0}},
        }
        for i in range(n)
    ]


def changes_for(receiver, person):
    return [d for d in receiver.documents() if d.get("person") == person]


async def segment_members(engine, name, **params):
    async with engine.client() as client:
        response = await client.get(f"/v1/segments/{name}", params=params, headers=AUTH)
    assert response.status_code == 200, response.text
    return response.json()


async def test_three_shoe_views_reach_the_webhook_in_seconds_and_the_exit_follows_the_clock(live):
    async with live.client() as browser:
        await send(browser, [{"type": "page_view", "url": "/", "session_id": "s1"}])
        vid = browser.cookies["clickstream_vid"]
        sent = time.monotonic()
        await send(browser, shoe_views())
    entered = await wait_until(lambda: changes_for(live.crm, vid), timeout=15, message="entered at the receiver")
    took = time.monotonic() - sent
    assert [d["change"] for d in entered] == ["entered"] and entered[0]["segment"] == "shoe-lovers"
    assert took < 10, f"entered arrived after {took:.1f}s"
    got = next(r for r in live.crm.received if r["json"]["person"] == vid)
    assert webhook.verify(SECRET, got["body"], got["headers"]["X-Clickstream-Signature"])
    assert got["headers"]["Idempotency-Key"] == got["json"]["id"]

    # Eight days later by the worker's clock, with no new event from the visitor: the window has passed.
    await live.redis.set(f"{live.settings.redis_prefix}:clock:offset", 8 * DAY_MS)
    try:
        await wait_until(lambda: len(changes_for(live.crm, vid)) == 2, timeout=15, message="exited at the receiver")
    finally:
        await live.redis.delete(f"{live.settings.redis_prefix}:clock:offset")
    exited = changes_for(live.crm, vid)[1]
    assert exited["change"] == "exited" and exited["reason"] == "time"
    assert vid not in {m["id"] for m in (await segment_members(live, "shoe-lovers", limit=1000))["members"]}
    async with live.client() as client:
        metrics = (await client.get("/metrics")).text
    assert 'clickstream_segment_changes_total{change="exited"}' in metrics
    assert 'clickstream_webhook_deliveries_total{destination="crm",outcome="delivered"}' in metrics


async def test_a_new_segment_has_its_size_shortly_after_the_file_is_saved(live):
    category = unique("hats")
    async with live.client() as client:
        visitors = []
        for _ in range(5):
            async with live.client() as browser:
                await send(browser, shoe_views(2, category))
                visitors.append(browser.cookies["clickstream_vid"])
        await wait_until(lambda: _all_have(live, visitors, 2), timeout=20, message="the views applied")
        (live.folder / "hats.yaml").write_text(
            f"segments:\n  - name: {category}\n    when: {{history: {{event: product_view, category: {category}, min: 2, days: 7}}}}\n"
        )
        saved = time.monotonic()

        async def size():
            listing = (await client.get("/v1/segments", headers=AUTH)).json()["segments"]
            return next((s["size"] for s in listing if s["name"] == category), None) == 5

        await wait_until(size, timeout=30, message="the backfilled size")
    assert time.monotonic() - saved < 30
    members = await segment_members(live, category)
    assert sorted(m["id"] for m in members["members"]) == sorted(visitors) and members["next_cursor"] is None
    assert not [d for d in live.crm.documents() if d["segment"] == category]  # a backfill is no change


async def _all_have(engine, visitors, views):
    for vid in visitors:
        profile = await engine.profile(vid)
        if not profile or profile["counts"].get("product_view", 0) < views:
            return False
    return True


async def shopper(engine, *, marketing: bool | None, identified: bool, email: str | None = None):
    """A browser that (maybe) consents to marketing, (maybe) logs in, and views three pairs of shoes."""
    browser = engine.client()
    await send(browser, [{"type": "page_view", "url": "/", "session_id": "s1"}])
    vid = browser.cookies["clickstream_vid"]
    if marketing is not None:
        await send(browser, [{"type": "consent", "session_id": "s1", "props": {"consent": {"marketing": marketing}}}])
    user = None
    if identified:
        user = unique("user")
        traits = {"first_name": "Ada", "language": "en", **({"email": email} if email else {})}
        await send(
            browser,
            [
                {
                    "type": "identify",
                    "user_id": user,
                    "session_id": "s1",
                    "props": {"traits": traits, "user_hash": user_hash(user)},
                }
            ],
        )
    await send(browser, shoe_views())
    await browser.aclose()
    return user or vid, vid


async def export(engine, **params):
    async with engine.client() as client:
        response = await client.get("/v1/segments/shoe-lovers/export", params=params, headers=AUTH)
    assert response.status_code == 200, response.text
    return response


async def test_the_export_lists_only_identified_members_with_marketing_consent_and_erasure_removes_them(live):
    yes, _ = await shopper(live, marketing=True, identified=True, email="ada@example.com")
    no, _ = await shopper(live, marketing=False, identified=True, email="bob@example.com")
    silent, _ = await shopper(live, marketing=None, identified=True, email="cy@example.com")
    anonymous, _ = await shopper(live, marketing=True, identified=False)
    everyone = {yes, no, silent, anonymous}

    async def all_members():
        return everyone <= {m["id"] for m in (await segment_members(live, "shoe-lovers", limit=1000))["members"]}

    await wait_until(all_members, timeout=30, message="all four in the segment")

    rows = [json.loads(line) for line in (await export(live)).text.splitlines()]
    mine = [r for r in rows if r["id"] in everyone]
    assert mine == [{"id": yes, "email": "ada@example.com", "first_name": "Ada", "language": "en", "score": 1.0}]
    csv_text = (await export(live, format="csv")).text
    assert csv_text.splitlines()[0] == "id,email,first_name,language,score" and "bob@example.com" not in csv_text

    # Paged one member at a time, the consented one appears once.
    seen, cursor = [], None
    for _ in range(200):
        response = await export(live, limit=1, **({"cursor": cursor} if cursor else {}))
        seen += [json.loads(line)["id"] for line in response.text.splitlines()]
        cursor = response.headers.get("x-next-cursor")
        if cursor is None:
            break
    assert seen.count(yes) == 1 and not set(seen) & {no, silent, anonymous}

    async with live.client() as client:
        assert (await client.get("/v1/segments/shoe-lovers/export")).status_code == 401
        bad = await client.get("/v1/segments/shoe-lovers/export?format=xml", headers=AUTH)
        assert bad.status_code == 400 and bad.json()["error"].startswith("format")
        forged = await client.get("/v1/segments/shoe-lovers?cursor=nope", headers=AUTH)
        assert forged.status_code == 400 and forged.json()["error"].startswith("cursor")
        erased = await client.delete(f"/v1/profiles/{yes}", headers=AUTH)
        assert erased.status_code == 200
    assert yes not in {m["id"] for m in (await segment_members(live, "shoe-lovers", limit=1000))["members"]}
    assert yes not in (await export(live)).text
    outbox = await live.redis.xrange(f"{live.settings.redis_prefix}:segchanges")
    # The erasure notice alone, until every destination has taken it (then nothing of them).
    assert set(f[b"reason"] for _, f in outbox if f.get(b"person") == yes.encode()) <= {b"erased"}
    assert await live.redis.zscore(f"{live.settings.redis_prefix}:segdue", yes) is None

    # Both receivers that heard of them are told, once, so they can delete them too (the
    # worker's erasure, when the log reaches it, tells no one again).
    for receiver in (live.crm, live.mailer):
        await wait_until(
            lambda: [d for d in changes_for(receiver, yes) if d.get("reason") == "erased"],
            timeout=15,
            message="the erasure at the receiver",
        )
    await asyncio.sleep(2)
    for receiver in (live.crm, live.mailer):
        told = [d for d in changes_for(receiver, yes) if d.get("reason") == "erased"]
        assert [(d["segment"], d["change"]) for d in told] == [("shoe-lovers", "exited")]
        assert "traits" not in told[0]
    assert not [d for d in changes_for(live.mailer, no) if d.get("reason") == "erased"]  # never mailed


async def test_the_command_line_export_writes_the_rows_of_the_http_export(live, tmp_path):
    for n in range(3):
        await shopper(live, marketing=True, identified=True, email=f"cli{n}@example.com")
    expected, cursor = [], None

    async def exported():
        return sum(r.startswith('{"id"') and "@example.com" in r for r in (await export(live)).text.splitlines()) >= 3

    await wait_until(exported, timeout=30, message="three consented members")
    for _ in range(1000):  # every page over HTTP, a few members each
        response = await export(live, limit=2, **({"cursor": cursor} if cursor else {}))
        expected += [json.loads(line) for line in response.text.splitlines()]
        cursor = response.headers.get("x-next-cursor")
        if cursor is None:
            break
    env = dict(os.environ, **live.settings.environ())
    out = tmp_path / "shoe-lovers.jsonl"
    done = run_cli("segments", "export", "shoe-lovers", "--output", str(out), env=env)
    assert done.returncode == 0, done.stderr
    assert [json.loads(line) for line in out.read_text().splitlines()] == expected
    assert "members" in done.stderr and f"exported {len(expected)} rows" in done.stderr  # the progress bar, to stderr

    as_csv = run_cli("segments", "export", "shoe-lovers", "--format", "csv", env=env)
    assert as_csv.returncode == 0, as_csv.stderr
    lines = as_csv.stdout.splitlines()
    assert lines[0] == "id,email,first_name,language,score" and len(lines) == len(expected) + 1
    assert [line.split(",")[0] for line in lines[1:]] == [r["id"] for r in expected]
    missing = run_cli("segments", "export", "no-such-segment", env=env)
    assert missing.returncode == 1 and "no such segment" in missing.stderr


async def test_a_withdrawn_marketing_consent_is_told_to_the_mailer_and_the_person_stays_a_member(live):
    user, vid = await shopper(live, marketing=True, identified=True, email="withdraw@example.com")
    await wait_until(lambda: changes_for(live.mailer, user), timeout=30, message="entered at the mailer")
    async with live.client(cookies={"clickstream_vid": vid}) as browser:
        await send(browser, [{"type": "consent", "session_id": "s1", "props": {"consent": {"marketing": False}}}])
    told = await wait_until(
        lambda: [d for d in changes_for(live.mailer, user) if d.get("reason") == "consent_withdrawn"],
        timeout=20,
        message="the withdrawal at the mailer",
    )
    await asyncio.sleep(2)
    assert len([d for d in changes_for(live.mailer, user) if d.get("reason") == "consent_withdrawn"]) == 1
    assert told[0]["change"] == "exited" and told[0]["segment"] == "shoe-lovers"
    assert told[0]["traits"]["email"] == "withdraw@example.com"  # so the mailer finds the contact to drop
    assert not [d for d in changes_for(live.crm, user) if d.get("reason") == "consent_withdrawn"]  # analytics: not told
    assert user in {m["id"] for m in (await segment_members(live, "shoe-lovers", limit=1000))["members"]}
    assert user not in (await export(live)).text  # no consent: no row


async def wisher(live, item, email):
    """A new identified person with marketing consent and `email` who wishes for `item`; their id."""
    async with live.client() as browser:
        await send(
            browser,
            [
                {"type": "page_view", "url": "/", "session_id": "s1"},
                {"type": "consent", "session_id": "s1", "props": {"consent": {"marketing": True}}},
            ],
        )
        user = unique("user")
        login = {"traits": {"email": email}, "user_hash": user_hash(user)}
        await send(browser, [{"type": "identify", "user_id": user, "session_id": "s1", "props": login}])
        await send(browser, [{"type": "add_to_wishlist", "session_id": "s1", "props": {"product": {"id": item}}}])
    return user


async def test_a_wished_item_back_in_stock_reaches_the_receiver_once(live):
    item = unique("boot")
    user = await wisher(live, item, "wish@example.com")
    async with (
        live.client() as other
    ):  # wishes too, without marketing consent: the mail destination never hears of them
        await send(other, [{"type": "add_to_wishlist", "session_id": "s2", "props": {"product": {"id": item}}}])
    wish_key = f"{live.settings.redis_prefix}:wish:{item}"
    await wait_until(lambda: _scard(live.redis, wish_key, 2), timeout=20, message="both wishes applied")

    async with live.client() as client:

        async def put(available):
            response = await client.put(
                "/v1/catalog/items", headers=AUTH, json=[{"id": item, "category": "shoes", "available": available}]
            )
            assert response.status_code == 200, response.text

        await put(False)
        await put(True)
        alerts = await wait_until(
            lambda: [d for d in live.mail.documents() if d.get("item") == item], timeout=20, message="the alert"
        )
        await put(True)  # still available: no second alert
        await asyncio.sleep(2)
    alerts = [d for d in live.mail.documents() if d.get("item") == item]
    assert len(alerts) == 1 and alerts[0]["kind"] == "back_in_stock" and alerts[0]["person"] == user
    assert alerts[0]["traits"] == {"email": "wish@example.com"}


async def _scard(redis, key, n):
    return await redis.scard(key) == n


async def test_a_wished_item_for_less_reaches_the_receiver_once_per_price_change(live):
    item = unique("sandal")
    user = await wisher(live, item, "drop@example.com")
    await wait_until(
        lambda: _scard(live.redis, f"{live.settings.redis_prefix}:wish:{item}", 1),
        timeout=20,
        message="the wish applied",
    )

    def drops():
        return [d for d in live.mail.documents() if d.get("item") == item and d.get("kind") == "price_drop"]

    async with live.client() as client:

        async def put(price):
            response = await client.put(
                "/v1/catalog/items",
                headers=AUTH,
                json=[{"id": item, "category": "shoes", "available": True, "price": price}],
            )
            assert response.status_code == 200, response.text

        await put(100)
        await put(80)
        await wait_until(drops, timeout=20, message="the price drop")
        await put(80)  # the same price again: nothing
        await put(90)  # dearer: nothing
        await asyncio.sleep(2)
    (alert,) = drops()
    assert (alert["person"], alert["old_price"], alert["new_price"]) == (user, 100.0, 80.0)
    assert alert["traits"] == {"email": "drop@example.com"} and isinstance(alert["at"], int)
