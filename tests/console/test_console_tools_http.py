"""The console's tools over HTTP against a running engine (real broker and Redis): the rules
page's backtest, a segment's members as a download, the ALS model's age, a pasted profile
in the preview."""

import contextlib
import html
import json
import os
import re
import subprocess
import sys
import time
from urllib.parse import urlencode

import numpy as np
import pytest
from redis.asyncio import Redis

from engine.profiles.segment_export import export_csv
from engine.recommend import als_store, prior_job
from engine.recommend.als_model import AlsModel
from engine.recommend.store import CooccurrenceStore
from engine.wiring import build_stores
from helpers import REPO, Engine, csrf_of, sign_in, unique, user_hash, wait_until

AUTH = {"Authorization": "Bearer test-key"}
DEMO_RULES = REPO / "engine" / "defaults" / "rules"
CONTEXT = {"country": "SE", "weather": "sun", "device": "mobile"}  # no rule outranks the shoe fans


@contextlib.asynccontextmanager
async def signed_in(engine, key: str = "test-key"):
    async with engine.client(follow_redirects=False) as client:
        yield await sign_in(client, key)


async def shoe_shopper(engine, *, marketing: bool | None = None, email: str | None = None) -> tuple[str, str]:
    """A browser that views three pairs of shoes, then the home page (logged in when given an email)."""
    async with engine.client() as browser:
        send = lambda events: browser.post("/v1/events", json={"events": events})  # noqa: E731
        assert (await send([{"type": "page_view", "url": "/", "session_id": "s1"}])).status_code == 202
        vid = browser.cookies["clickstream_vid"]
        user = None
        if marketing is not None:
            await send([{"type": "consent", "session_id": "s1", "props": {"consent": {"marketing": marketing}}}])
        if email is not None:
            user = unique("user")
            await send(
                [
                    {
                        "type": "identify",
                        "user_id": user,
                        "session_id": "s1",
                        "props": {
                            "traits": {"email": email, "first_name": "Ada", "language": "en"},
                            "user_hash": user_hash(user),
                        },
                    }
                ]
            )
        views = [
            {
                "type": "product_view",
                "session_id": "s1",
                "props": {"product": {"id": f"shoe-{i}", "category": "shoes", "price": 30}},
            }
            for i in range(3)
        ]
        assert (await send(views + [{"type": "page_view", "url": "/", "session_id": "s1"}])).status_code == 202

    async def applied():
        profile = await engine.profile(user or vid)
        return profile and profile["counts"].get("page_view", 0) >= 2 and "shoe-lovers" in profile.get("segments", {})

    await wait_until(applied, 30, message="the shopper's events applied")
    return user or vid, vid


def cli(engine, *args) -> subprocess.CompletedProcess:
    env = dict(os.environ, **engine.settings.environ())
    return subprocess.run(
        [sys.executable, "-m", "engine.cli", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )


def report_row(page: str, rule: str) -> list[int]:
    row = re.search(rf'<tr data-rule="{re.escape(rule)}">(.*?)</tr>', page, re.S).group(1)
    return [int(n.replace(",", "")) for n in re.findall(r'<td class="num[^"]*">([0-9,]+)</td>', row)]


# --- the backtest ---------------------------------------------------------------


async def test_the_backtest_button_replays_the_last_hours_with_its_progress_then_the_clis_table(engine):
    await shoe_shopper(engine)
    async with signed_in(engine) as client:
        rules = await client.get("/console/rules")
        assert 'id="backtest-form"' in rules.text and '<option value="24" selected>' in rules.text
        started = await client.post("/console/rules/backtest", data={"hours": "1", "csrf": csrf_of(rules.text)})
        assert started.status_code == 303 and started.headers["location"] == "/console/rules#backtest"
        states = []

        async def finished():
            part = await client.get("/console/rules/backtest")
            assert part.status_code == 200
            bar = re.search(r'<progress id="backtest-progress" max="1"(?: value="([0-9.]+)")?>', part.text)
            states.append(bar.group(1) or "0")  # no value: the log is still being opened
            return 'id="backtest-report"' in part.text and part.text

        part = await wait_until(finished, 90, 0.2, message="the backtest's report")
        assert states[-1] == "1" and all(0 <= float(s) <= 1 for s in states) and "data-poll-done" in part
        assert "Done: the last 1 h" in part and "backtest-error" not in part
        matched, decided, visitors = report_row(part, "shoe-fans")
        assert matched >= 1 and decided >= 1 and visitors >= 1, part

        # The same rows as `clickstream rules backtest` over the same folder and hours.
        ran = cli(engine, "rules", "backtest", str(DEMO_RULES), "--hours", "1", "--quiet")
        assert ran.returncode == 0, ran.stderr
        line = next(line for line in ran.stdout.splitlines() if line.startswith("shoe-fans "))
        assert [int(n.replace(",", "")) for n in line.split()[1:4]] == [matched, decided, visitors], (line, part)

        shown = await client.get("/console/rules")  # the page shows the last report when it is opened again
        assert shown.status_code == 200 and 'id="backtest-report"' in shown.text

        refused = await client.post("/console/rules/backtest", data={"hours": "a week", "csrf": csrf_of(rules.text)})
        assert refused.status_code == 400 and "hours: expected a number of hours" in refused.text
        forged = await client.post("/console/rules/backtest", data={"hours": "1", "csrf": "guessed"})
        assert forged.status_code == 403 and "csrf" in forged.text
    async with engine.client(follow_redirects=False) as anonymous:
        assert (await anonymous.get("/console/rules/backtest")).status_code == 303
        assert (await anonymous.post("/console/rules/backtest", data={"hours": "1"})).status_code == 401


@pytest.fixture(scope="module")
async def api_only(settings_for, tmp_path_factory):
    """An API process alone, its rules folder holding a file with an error, its own Redis prefix."""
    folder = tmp_path_factory.mktemp("console-tools-rules")
    (folder / "demo.yaml").write_text((DEMO_RULES / "demo.yaml").read_text())
    (folder / "broken.yaml").write_text(
        "rules:\n  - id: typo-rule\n    when: {segmnt: {name: shoe-lovers}}\n    then: {hero: hero-shoes}\n"
    )
    running = Engine(settings_for(rules=folder), folder.parent / "console-tools-logs")
    running.start_api()
    yield running
    running.stop()


async def test_a_backtest_that_cannot_run_shows_its_error_on_the_page_never_a_5xx(api_only):
    async with signed_in(api_only) as client:
        rules = await client.get("/console/rules")
        assert rules.status_code == 200 and "No backtest run yet" in rules.text
        started = await client.post("/console/rules/backtest", data={"hours": "6", "csrf": csrf_of(rules.text)})
        assert started.status_code == 303

        async def failed():
            part = await client.get("/console/rules/backtest")
            assert part.status_code == 200
            return 'id="backtest-error"' in part.text and html.unescape(part.text)

        part = await wait_until(failed, 30, 0.2, message="the backtest's error")
        assert "The backtest of the last 6 h failed: the rule files have errors" in part and "broken.yaml:3" in part
        assert "typo-rule" in part
        page = await client.get("/console/rules")
        assert page.status_code == 200 and 'id="backtest-error"' in page.text


# --- a segment's members as a download ---------------------------------------------


async def test_a_segments_download_is_every_page_of_its_export_as_a_csv_file(engine):
    ada = f"ada-{unique('m')}@example.com"
    bea = f"bea-{unique('m')}@example.com"
    yes, _ = await shoe_shopper(engine, marketing=True, email=ada)
    also, _ = await shoe_shopper(engine, marketing=True, email=bea)
    no, _ = await shoe_shopper(engine, marketing=False, email=f"no-{unique('m')}@example.com")

    async with signed_in(engine) as client:
        segment = await client.get("/console/segments/shoe-lovers")
        assert (
            'href="/console/segments/shoe-lovers/export"' in segment.text and "Download members (CSV)" in segment.text
        )
        download = await client.get("/console/segments/shoe-lovers/export")
        assert download.status_code == 200 and download.headers["content-type"].startswith("text/csv")
        assert download.headers["content-disposition"] == 'attachment; filename="segment-shoe-lovers.csv"'
        lines = download.text.splitlines()
        assert lines[0] == "id,email,first_name,language,score" and lines.count(lines[0]) == 1
        mine = {line.split(",")[0]: line for line in lines[1:]}
        assert ada in mine[yes] and bea in mine[also] and no not in mine

        # The API's export, one member a page, following its cursor: the same rows.
        paged, cursor = [], None
        for _ in range(1000):
            response = await client.get(
                "/v1/segments/shoe-lovers/export",
                headers=AUTH,
                params={"format": "csv", "limit": 1, **({"cursor": cursor} if cursor else {})},
            )
            paged += response.text.splitlines()[1:]
            cursor = response.headers.get("x-next-cursor")
            if cursor is None:
                break
        assert sorted(paged) == sorted(lines[1:])

        missing = await client.get("/console/segments/no-such-segment/export")
        assert missing.status_code == 404 and "no such segment" in missing.text
    async with engine.client(follow_redirects=False) as anonymous:
        away = await anonymous.get("/console/segments/shoe-lovers/export")
        assert away.status_code == 303 and away.headers["location"] == "/console/signin"

    # What the console streams, page after page of one member: one header, the same rows.
    redis = Redis.from_url(engine.settings.redis)
    try:
        stores = build_stores(engine.settings, redis)
        streamed = "".join([text async for text in export_csv(stores.segments, stores.people, "shoe-lovers", limit=1)])
    finally:
        await redis.aclose()
    assert streamed.splitlines()[0] == lines[0] and sorted(streamed.splitlines()[1:]) == sorted(lines[1:])


# --- the ALS model's version and age --------------------------------------------------


async def test_the_recommendations_page_shows_the_published_models_version_and_age(api_only):
    async with signed_in(api_only) as client:
        before = await client.get("/console/recommendations")
        assert before.status_code == 200 and "No model trained yet" in before.text
        redis = Redis.from_url(api_only.settings.redis)
        trained = int(time.time() * 1000) - 3 * 3_600_000 - 60_000
        model = AlsModel(
            f"{trained}-c0ffee",
            ["a", "b"],
            np.ones((2, 2), np.float32),
            {"trained_at": trained, "persons": 12, "items": 2, "interactions": 30},
        )
        try:
            await als_store.publish(redis, api_only.settings.redis_prefix, model)
        finally:
            await redis.aclose()
        after = await client.get("/console/recommendations")
        assert after.status_code == 200 and f'<code id="model-version">{model.version}</code>' in after.text
        assert '<b id="model-age">trained 3 h ago</b>' in after.text and "on 12 people × 2 items" in after.text


async def test_the_recommendations_page_shows_the_chosen_prior_strength(api_only):
    async with signed_in(api_only) as client:
        before = await client.get("/console/recommendations")
        assert before.status_code == 200 and "Not chosen from the orders yet" in before.text
        redis = Redis.from_url(api_only.settings.redis)
        store = CooccurrenceStore(redis, api_only.settings.redis_prefix)
        record = {"m": "256.0", "hits": '{"16": 30, "256": 45}', "queries": 150, "orders": 60}
        try:
            await redis.hset(prior_job.key(store), mapping=dict(record, chosen_at=int(time.time() * 1000) - 5 * 60_000))
            after = await client.get("/console/recommendations")
        finally:
            await redis.delete(prior_job.key(store))
            await redis.aclose()
        assert after.status_code == 200 and '<b id="prior-m">m = 256</b>, chosen 5 min ago' in after.text
        assert "on 60 orders (150 held-out items)" in after.text and '<td class="num">0.3000</td>' in after.text


# --- a pasted profile in the preview ------------------------------------------------


def preview_row(page: str, slot: str) -> str:
    return html.unescape(re.search(rf'<tr data-slot="{slot}">(.*?)</tr>', page, re.S).group(1))


async def test_a_pasted_profile_gets_the_decision_decide_gives_for_it_and_a_wrong_one_its_error(engine):
    vid, _ = await shoe_shopper(engine)
    async with signed_in(engine) as client:
        profile = (await client.get(f"/v1/profiles/{vid}", headers=AUTH)).json()
        profile["notes"] = "x" * 5000  # kept as it is; the form is larger than the console's usual bound
        rules = await client.get("/console/rules")
        csrf = csrf_of(rules.text)
        assert 'id="profile_json"' in rules.text
        fields = {"profile_json": json.dumps(profile), **CONTEXT, "csrf": csrf}
        assert len(urlencode(fields)) > 4096
        pasted = await client.post("/console/rules/preview", data=fields)
        assert pasted.status_code == 200, pasted.text
        assert f"the pasted profile {vid}" in pasted.text
        slots = re.findall(r'<tr data-slot="([^"]+)">', pasted.text)
        decided = (
            await client.post("/v1/decide", json={"visitor_id": vid, "slots": slots, "context": CONTEXT}, headers=AUTH)
        ).json()["decisions"]
        assert "hero" in slots and "shoe-fans" in decided["hero"]["reason"]
        for slot in slots:
            row, want = preview_row(pasted.text, slot), decided[slot]
            if want["source"] == "model":  # a bandit's exploring draw: random on every call, by id as well
                assert "<td>model</td>" in row, row
                continue
            assert (want["content_id"] or "-") in row and want["reason"] in row and (want["variant"] or "-") in row, (
                slot,
                row,
                want,
            )

        # Without the shoe views it is somebody else: the shoe rule no longer decides.
        bare = await client.post(
            "/console/rules/preview", data={"profile_json": json.dumps({"id": vid}), **CONTEXT, "csrf": csrf}
        )
        assert bare.status_code == 200 and "shoe-fans" not in preview_row(bare.text, "hero")

        for text, error in [
            ("{not json", "profile_json: not JSON this engine reads: malformed JSON"),
            ("[1, 2]", "profile_json: expected a JSON object"),
            (
                json.dumps({"id": vid, "commerce": {"orders": "many"}}),
                "profile_json: commerce.orders: expected a whole number",
            ),
        ]:
            refused = await client.post("/console/rules/preview", data={"profile_json": text, "csrf": csrf})
            assert refused.status_code == 400 and 'id="preview-error"' in refused.text, refused.text
            assert error in html.unescape(refused.text) and text in html.unescape(refused.text)
            assert 'id="preview"' not in refused.text

        by_id = await client.post("/console/rules/preview", data={"profile": vid, **CONTEXT, "csrf": csrf})
        assert by_id.status_code == 200 and decided["hero"]["reason"] in preview_row(by_id.text, "hero")
        forged = await client.post("/console/rules/preview", data={"profile": vid, "csrf": "guessed"})
        assert forged.status_code == 403
