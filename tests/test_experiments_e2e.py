"""Experiments through the running engine: a rule with two variants and a control gets simulated
visitors with known conversion rates; the report counts each arm's conversions and revenue, its
intervals cover the truth, the split passes the sample-ratio check and a broken one fails it; one
customer on two devices stays in one arm; the command line prints the same report."""

import os
import re
import time

import pytest

from helpers import engine_with_rules, run_cli, sign_in, unique, wait_until

KEY = {"Authorization": "Bearer test-key"}

RULES = """\
slots:
  hero:
    default: welcome
    content:
      welcome: {html: "<h2>Welcome</h2>"}
      umbrella: {html: "<h2>Umbrellas</h2>"}
      sun: {html: "<h2>Sunglasses</h2>"}
rules:
  - id: summer-test
    description: two banners against the default
    priority: 10
    when: always
    then:
      hero: {variants: [{content: umbrella, weight: 1}, {content: sun, weight: 1}], control: CONTROL}
"""
TRUE_RATE = {"control": 0.10, "umbrella": 0.30, "sun": 0.20}
PRICE = {"control": 20.0, "umbrella": 50.0, "sun": 30.0}
VISITORS = 360
EXPERIMENT = "rule:summer-test:hero"


@pytest.fixture(scope="module")
async def shop(settings_for, tmp_path_factory):
    running = await engine_with_rules(
        settings_for,
        tmp_path_factory.mktemp("xp-rules"),
        {"shop.yaml": RULES.replace("CONTROL", "34")},
        global_holdout=10.0,
    )
    yield running
    running.stop()


def now_ms():
    return int(time.time() * 1000)


async def decide(client, visitor_id):
    r = await client.post("/v1/decide", json={"visitor_id": visitor_id, "slots": ["hero"]}, headers=KEY)
    assert r.status_code == 200, r.text
    return r.json()["decisions"]["hero"]


def arm_of(decision):
    return "control" if decision["variant"] == "control" else decision["content_id"]


async def report(client, experiment=EXPERIMENT):
    r = await client.get(f"/v1/experiments/{experiment}", headers=KEY)
    assert r.status_code == 200, r.text
    return r.json()


async def test_a_rule_split_is_measured_per_arm_with_valid_intervals(shop):
    async with shop.client() as client:
        listed = (await client.get("/v1/experiments", headers=KEY)).json()["experiments"]
        assert {e["id"]: e["state"] for e in listed}[EXPERIMENT] == "running"
        assert (await client.get("/v1/experiments")).status_code == 401
        assert (await client.get("/v1/experiments/rule:nope:hero", headers=KEY)).status_code == 404

        arms: dict[str, list[str]] = {}
        decisions = {}
        for _ in range(VISITORS):
            vid = unique()
            decision = await decide(client, vid)
            decisions[vid] = decision
            if decision["reason"].startswith("global holdout"):
                continue
            arms.setdefault(arm_of(decision), []).append(vid)
        assert set(arms) == {"control", "umbrella", "sun"}
        # Known conversion rates: exactly round(rate * n) of each arm's visitors buy, after an impression.
        events, expected = [], {}
        for arm, vids in arms.items():
            buyers = round(TRUE_RATE[arm] * len(vids))
            expected[arm] = (len(vids), buyers)
            for n, vid in enumerate(vids):
                d = decisions[vid]
                events.append(
                    {
                        "event_id": unique("e"),
                        "type": "impression",
                        "visitor_id": vid,
                        "ts": now_ms(),
                        "props": {"slot": "hero", "decision_id": d["decision_id"], "content": d["content_id"]},
                    }
                )
                if n < buyers:
                    events.append(
                        {
                            "event_id": unique("e"),
                            "type": "purchase",
                            "visitor_id": vid,
                            "ts": now_ms(),
                            "props": {
                                "order": {
                                    "id": unique("order"),
                                    "revenue": PRICE[arm],
                                    "items": [{"id": "sku", "qty": 1, "price": PRICE[arm]}],
                                }
                            },
                        }
                    )
        for start in range(0, len(events), 200):
            r = await client.post("/v1/events", json={"events": events[start : start + 200]}, headers=KEY)
            assert r.status_code == 202 and not r.json()["rejected"], r.text

        async def counted():
            rows = (await report(client))["arms"]
            return all(rows.get(arm, {}).get("conversions") == buyers for arm, (_, buyers) in expected.items())

        await wait_until(counted, timeout=40, message="every purchase credited")
        # Sent again (a tracker's retry): nothing counts twice. A marker event after them says the worker got there.
        marker = unique()
        r = await client.post(
            "/v1/events",
            json={"events": events[:150] + [{"type": "page_view", "visitor_id": marker, "ts": now_ms()}]},
            headers=KEY,
        )
        assert r.status_code == 202
        await wait_until(lambda: shop.profile(marker), timeout=30, message="the resent events applied")

        result = await report(client)
        assert result["method"].startswith("mSPRT") and result["control"] == "control"
        for arm, (people, buyers) in expected.items():
            row = result["arms"][arm]
            assert (row["people"], row["conversions"], row["impressions"]) == (people, buyers, people)
            assert row["revenue"] == pytest.approx(buyers * PRICE[arm])
            assert row["conversion_rate"] == pytest.approx(buyers / people)
        for arm in ("umbrella", "sun"):
            diff = result["comparisons"][arm]["conversion_rate"]["difference"]
            truth = TRUE_RATE[arm] - TRUE_RATE["control"]
            assert diff["low"] <= truth <= diff["high"], (arm, diff)
            assert result["comparisons"][arm]["conversion_rate"]["lift"] is not None
            revenue = result["comparisons"][arm]["revenue_per_person"]["difference"]
            truth_rpp = TRUE_RATE[arm] * PRICE[arm] - TRUE_RATE["control"] * PRICE["control"]
            assert revenue["low"] <= truth_rpp <= revenue["high"], (arm, revenue)
        assert result["srm"] is not None and result["srm"]["mismatch"] is False

        # The global holdout: its people saw defaults only and are reported as their own experiment.
        overall = await report(client, "global")
        assert overall["state"] == "running" and set(overall["arms"]) == {"holdout", "personalized"}
        held = sum(1 for d in decisions.values() if d["reason"].startswith("global holdout"))
        assert overall["arms"]["holdout"]["people"] == held

        # The command line prints the same report.
        env = dict(os.environ, **shop.settings.environ())
        out = run_cli("experiments", "report", EXPERIMENT, env=env)
        assert out.returncode == 0, out.stderr
        assert "umbrella" in out.stdout and "sample ratio: as configured" in out.stdout
        assert f"{expected['umbrella'][1]:>6}" in out.stdout

        # The console's experiments page shows the same report: each arm's people, no warning.
        async with shop.client(follow_redirects=False) as console:
            await sign_in(console, "test-key")
            listed_page = await console.get("/console/experiments")
            assert listed_page.status_code == 200 and EXPERIMENT in listed_page.text
            page = await console.get("/console/experiments", params={"id": EXPERIMENT})
            assert page.status_code == 200 and 'id="srm-warning"' not in page.text
            for arm, row in result["arms"].items():
                assert re.search(rf"<code>{arm}</code></td><td class=\"num\">{row['people']:,}<", page.text), arm
            assert (await console.get("/console/experiments", params={"id": "rule:nope:hero"})).status_code == 404

        # A broken split: the marketer changes the control share mid-experiment; the people already
        # in the report no longer match the configured split, and the report says so.
        (shop.folder / "shop.yaml").write_text(RULES.replace("CONTROL", "80"))

        async def flagged():
            srm = (await report(client))["srm"]
            return srm is not None and srm["mismatch"]

        await wait_until(flagged, timeout=15, message="the sample-ratio mismatch flagged")
        out = run_cli("experiments", "report", EXPERIMENT, env=env)
        assert "MISMATCH" in out.stdout
        async with shop.client(follow_redirects=False) as console:
            await sign_in(console, "test-key")
            page = await console.get("/console/experiments", params={"id": EXPERIMENT})
            assert 'id="srm-warning"' in page.text and "Sample ratio mismatch" in page.text


async def test_one_customer_on_two_devices_stays_in_one_arm(shop):
    (shop.folder / "shop.yaml").write_text(RULES.replace("CONTROL", "34"))
    async with shop.client() as client:

        async def split_back():
            return (await report(client))["arms"]["control"]["expected_share"] == pytest.approx(0.34)

        await wait_until(split_back, timeout=15, message="the split back to 34% control")
        before = sum(a["people"] for a in (await report(client))["arms"].values())
        people = []
        for _ in range(12):
            user, phone, laptop = unique("user"), unique(), unique()
            for vid in (phone, laptop):  # the shop's back end identifies both devices (a key: verified)
                r = await client.post(
                    "/v1/events",
                    headers=KEY,
                    json={
                        "type": "identify",
                        "visitor_id": vid,
                        "user_id": user,
                        "ts": now_ms(),
                        "props": {"traits": {}},
                    },
                )
                assert r.status_code == 202
            people.append((user, phone, laptop))

        async def linked():
            for user, phone, laptop in people:
                found = await shop.profile(user)
                if not found or len(found.get("visitor_ids") or []) != 2:
                    return False
            return True

        await wait_until(linked, timeout=30, message="both devices linked")
        arms, in_rule = set(), 0
        for user, phone, laptop in people:
            on_phone, on_laptop = await decide(client, phone), await decide(client, laptop)
            in_rule += not on_phone["reason"].startswith("global holdout")
            assert (on_phone["variant"], on_phone["content_id"]) == (on_laptop["variant"], on_laptop["content_id"])
            arms.add(on_phone["variant"])
            r = await client.post(
                "/v1/events",
                headers=KEY,
                json={  # seen on the phone, bought on the laptop
                    "type": "purchase",
                    "visitor_id": laptop,
                    "ts": now_ms(),
                    "props": {
                        "order": {
                            "id": unique("order"),
                            "revenue": 10.0,
                            "items": [{"id": "sku", "qty": 1, "price": 10}],
                        }
                    },
                },
            )
            assert r.status_code == 202
        assert len(arms) > 1  # not one arm for everyone: the person is what is hashed

        async def counted_once():
            rows = (await report(client))["arms"].values()
            return sum(a["people"] for a in rows) == before + in_rule

        await wait_until(counted_once, timeout=30, message="each customer counted once, not once per device")


async def test_erasure_removes_the_person_and_replay_brings_back_only_the_others(shop):
    async with shop.client() as client:

        async def people():
            return sum(a["people"] for a in (await report(client, "global"))["arms"].values())

        start = await people()
        user, phone, laptop, bystander = unique("user"), unique(), unique(), unique()
        for vid in (phone, laptop):
            r = await client.post(
                "/v1/events",
                headers=KEY,
                json={"type": "identify", "visitor_id": vid, "user_id": user, "ts": now_ms(), "props": {"traits": {}}},
            )
            assert r.status_code == 202

        async def linked():
            found = await shop.profile(user)
            return found is not None and len(found.get("visitor_ids") or []) == 2

        await wait_until(linked, timeout=30, message="both devices linked")
        for vid in (phone, bystander):
            await decide(client, vid)
            r = await client.post(
                "/v1/events",
                headers=KEY,
                json={
                    "type": "purchase",
                    "visitor_id": laptop if vid == phone else vid,
                    "ts": now_ms(),
                    "props": {
                        "order": {"id": unique("order"), "revenue": 5.0, "items": [{"id": "sku", "qty": 1, "price": 5}]}
                    },
                },
            )
            assert r.status_code == 202

        async def both_in():
            return await people() == start + 2

        await wait_until(both_in, timeout=30, message="the customer and the bystander exposed")
        assert (await client.delete(f"/v1/profiles/{user}", headers=KEY)).status_code == 200
        assert await people() == start + 1  # out of the report at once

        env = dict(os.environ, **shop.settings.environ())
        replay = run_cli("replay", "--quiet", env=env, timeout=180)
        assert replay.returncode == 0, replay.stderr
        # rebuilt from the log's exposures: everyone but the erased customer
        assert await people() == start + 1
