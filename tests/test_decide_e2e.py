"""Decisions end to end: a marketer's Norway-rain rule is checked, previewed, backtested and
live within 2 seconds; a bad edit is refused while the last good set keeps serving; a
visitor's preference changes the very next decision."""

import os
import subprocess
import sys
import time

import pytest

from helpers import REPO, engine_with_rules, unique, user_hash, wait_until
from helpers import visitor as visitor_named

AUTH = {"Authorization": "Bearer test-key"}

CATALOG = """\
slots:
  hero:
    default: welcome
    content:
      welcome: {html: "<h2>Welcome, {first_name|there}</h2>"}
      umbrella: {html: "<h2>Rain in Norway? An umbrella for {first_name|you}</h2>", topics: [rain-gear]}
      sun: {html: "<h2>Sunglasses</h2>", topics: [summer]}
"""

RULE = """\
rules:
  - id: umbrella-norway-rain
    description: Visitors from Norway when it rains see the umbrella banner, 10% control
    priority: 100
    when:
      all:
        - country: {in: [NO]}
        - weather: {in: [rain]}
    then:
      hero: {variants: [{content: umbrella, weight: 1}], control: 10}
"""


@pytest.fixture(scope="module")
async def rules_engine(settings_for, tmp_path_factory):
    running = await engine_with_rules(settings_for, tmp_path_factory.mktemp("rules"), {"catalog.yaml": CATALOG})
    yield running
    running.stop()


def cli(engine, *args):
    env = dict(os.environ, **engine.settings.environ())
    return subprocess.run(
        [sys.executable, "-m", "engine.cli", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=60
    )


async def decide(client, visitor_id=None, context=None, headers=None):
    body = {"slots": ["hero"], "context": context or {}}
    if visitor_id:
        body["visitor_id"] = visitor_id
    r = await client.post("/v1/decide", json=body, headers=headers or {})
    assert r.status_code == 200, r.text
    return r.json()["decisions"]["hero"]


async def test_norway_rain_rule_from_file_to_live(rules_engine):
    engine = rules_engine
    rain_in_norway = {"weather": "rain"}
    kari = unique("user")
    async with engine.client(headers={"cf-ipcountry": "NO"}) as visitor:
        r = await visitor.post(
            "/v1/events",
            json={
                "events": [
                    {
                        "type": "identify",
                        "user_id": kari,
                        "ts": int(time.time() * 1000),
                        "props": {"traits": {"first_name": "Kari"}, "user_hash": user_hash(kari)},
                    },
                    *[
                        {
                            "type": "page_view",
                            "url": "/",
                            "ts": int(time.time() * 1000) + i,
                            "props": {"context": {"weather": "rain"}},
                        }
                        for i in range(3)
                    ],
                ]
            },
        )
        assert r.status_code == 202
        vid = visitor.cookies["clickstream_vid"]
        await wait_until(lambda: _profile_has_name(engine, vid), timeout=30, message="profile with the first name")

        before = await decide(visitor, context=rain_in_norway)
        assert (before["source"], before["content_id"]) == ("default", "welcome") and "Kari" in before["content"]

        # The marketer writes the rule, checks it and previews it for this visitor.
        draft = engine.folder.parent / f"{engine.folder.name}-draft"
        draft.mkdir()
        (draft / "catalog.yaml").write_text(CATALOG)
        (draft / "umbrella.yaml").write_text(RULE)
        checked = cli(engine, "rules", "check", str(draft))
        assert checked.returncode == 0 and "1 rules" in checked.stdout and "0 errors" in checked.stdout, (
            checked.stdout + checked.stderr
        )
        preview = cli(
            engine, "rules", "preview", str(draft), "--profile", vid, "--context", "country=NO", "weather=rain"
        )
        assert preview.returncode == 0, preview.stderr
        assert "umbrella-norway-rain matched" in preview.stdout and "country in ['no']" in preview.stdout
        assert "Kari" in preview.stdout
        backtest = cli(engine, "rules", "backtest", str(draft), "--hours", "1")
        assert backtest.returncode == 0, backtest.stderr
        row = next(line for line in backtest.stdout.splitlines() if line.startswith("umbrella-norway-rain"))
        matched, decided, visitors = (int(x.replace(",", "")) for x in row.split()[1:4])
        assert matched >= 3 and decided >= 1 and visitors >= 1, backtest.stdout
        assert "backtest: read" in backtest.stderr and "100%" in backtest.stderr  # the progress bar

        # Live within 2 seconds of the file landing in the served folder.
        (engine.folder / "umbrella.yaml").write_text(RULE)
        written = time.monotonic()

        async def live():
            return (await decide(visitor, context=rain_in_norway))["reason"].startswith(
                "rule umbrella-norway-rain matched"
            )

        await wait_until(live, timeout=10, interval=0.05, message="the rule live")
        assert time.monotonic() - written < 2.0

        after = await decide(visitor, context=rain_in_norway)
        assert after["source"] == "rule" and after["decision_id"]
        if after["variant"] != "control":
            assert "Kari" in after["content"] and "umbrella" in after["content"]
        for _ in range(3):  # the same visitor keeps their variant
            assert (await decide(visitor, context=rain_in_norway))["variant"] == after["variant"]
        elsewhere = await decide(visitor, context={"weather": "rain", "country": "SE"})
        assert elsewhere["source"] == "rule"  # the CDN header outranks the page's own context

    # Across many visitors, about 10% are the control group.
    async with engine.client() as shop:
        variants = [
            (await decide(shop, visitor_named(f"ab-{i}"), {"weather": "rain", "country": "NO"}, AUTH))["variant"]
            for i in range(300)
        ]
    assert 0.04 <= variants.count("control") / 300 <= 0.18
    assert set(variants) == {"umbrella", "control"}


async def test_a_bad_edit_is_refused_and_the_last_good_set_keeps_serving(rules_engine):
    engine = rules_engine
    (engine.folder / "umbrella.yaml").write_text(RULE)
    async with engine.client() as shop:

        async def rule_live():
            return (await decide(shop, visitor_named("bad-edit"), {"weather": "rain", "country": "NO"}, AUTH))[
                "source"
            ] == "rule"

        await wait_until(rule_live, timeout=10, message="rule live")
        refused_before = await _refused(shop)
        (engine.folder / "umbrella.yaml").write_text(
            RULE.replace("weather: {in: [rain]}", "weather: {in: rain, colour: red}")
        )
        await wait_until(lambda: _more_refused(shop, refused_before), timeout=10, message="the edit refused")
        assert (await decide(shop, visitor_named("bad-edit"), {"weather": "rain", "country": "NO"}, AUTH))[
            "source"
        ] == "rule"
    checked = cli(engine, "rules", "check", str(engine.folder))
    assert checked.returncode == 1
    assert (
        f"{engine.folder / 'umbrella.yaml'}:8: [umbrella-norway-rain] error: unknown parameter 'colour'"
        in checked.stdout
    )
    (engine.folder / "umbrella.yaml").write_text(RULE)


async def test_a_preference_changes_the_very_next_decision(rules_engine):
    engine = rules_engine
    (engine.folder / "umbrella.yaml").write_text(RULE)
    context = {"weather": "rain", "country": "NO"}
    async with engine.client() as visitor:
        r = await visitor.post("/v1/events", json={"type": "page_view", "url": "/", "ts": int(time.time() * 1000)})
        assert r.status_code == 202
        vid = visitor.cookies["clickstream_vid"]
        await wait_until(lambda: _decides_by_rule(visitor, context), timeout=10, message="rule live")

        r = await visitor.put(f"/v1/profiles/{vid}/preferences", json={"hero": "sun"})
        assert r.status_code == 200, r.text
        chosen = await decide(visitor, context=context)
        assert (chosen["source"], chosen["content_id"]) == ("preference", "sun")

        r = await visitor.put(f"/v1/profiles/{vid}/preferences", json={"hero": None, "do_not_personalize": True})
        assert r.status_code == 200
        plain = await decide(visitor, context=context)
        assert (plain["source"], plain["content_id"]) == ("default", "welcome")
        assert plain["reason"] == "the visitor chose not to personalize"

        # A visitor may not decide as somebody else.
        r = await visitor.post("/v1/decide", json={"visitor_id": visitor_named("someone-else"), "slots": ["hero"]})
        assert r.status_code == 403 and "visitor_id" in r.json()["error"]
        r = await visitor.post("/v1/decide", json={"slots": "hero"})
        assert r.status_code == 400 and r.json()["error"].startswith("slots")


async def _decides_by_rule(client, context):
    return (await decide(client, context=context))["source"] == "rule"


async def _profile_has_name(engine, vid):
    profile = await engine.profile(vid)
    return bool(profile) and profile["traits"].get("first_name") == "Kari" and profile["counts"].get("page_view") == 3


async def _refused(client) -> float:
    text = (await client.get("/metrics")).text
    for line in text.splitlines():
        if line.startswith("clickstream_rules_refused_total"):
            return float(line.split()[-1])
    return 0.0


async def _more_refused(client, before):
    return await _refused(client) > before
