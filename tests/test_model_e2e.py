"""The model end to end: impressions and clicks from the tracker's events teach a
model-driven slot, through collector, Kafka and worker, what the next visitors see;
the holdout keeps the default; a marketer's rule overrides the model."""

import time

import pytest

from helpers import engine_with_rules, unique, wait_until

AUTH = {"Authorization": "Bearer test-key"}

CATALOG = """\
slots:
  promo:
    default: newsletter
    model: {variants: [newsletter, discount], min_impressions: 20, exploration: 0, holdout: 10}
    content:
      newsletter: {html: "<p>Join our newsletter</p>"}
      discount: {html: "<p>10% off today</p>"}
"""


@pytest.fixture(scope="module")
async def model_engine(settings_for, tmp_path_factory):
    running = await engine_with_rules(settings_for, tmp_path_factory.mktemp("model"), {"catalog.yaml": CATALOG})
    yield running
    running.stop()


async def decide(client, vid):
    r = await client.post("/v1/decide", json={"visitor_id": vid, "slots": ["promo"]}, headers=AUTH)
    assert r.status_code == 200, r.text
    return r.json()["decisions"]["promo"]


def feedback(vid, d, click):
    props = {"slot": "promo", "content": d["content_id"], "variant": d["variant"], "decision_id": d["decision_id"]}
    now = int(time.time() * 1000)
    events = [{"event_id": unique("imp"), "type": "impression", "visitor_id": vid, "ts": now, "props": props}]
    if click:
        events.append(
            {"event_id": unique("clk"), "type": "content_click", "visitor_id": vid, "ts": now + 1, "props": props}
        )
    return events


async def report(client):
    r = await client.get("/v1/slots/promo/report", headers=AUTH)
    assert r.status_code == 200, r.text
    return r.json()


async def test_clicks_on_a_model_slot_change_what_the_next_visitors_see(model_engine):
    engine = model_engine
    async with engine.client() as shop:
        first = [(unique(), None) for i in range(60)]
        first = [(vid, await decide(shop, vid)) for vid, _ in first]
        sources = {d["source"] for _, d in first}
        assert sources <= {"model", "default"} and "model" in sources
        holdout = [d for _, d in first if d["variant"] == "holdout"]
        assert all(d["content_id"] == "newsletter" and "holdout" in d["reason"] for d in holdout)
        shown = [d for _, d in first if d["source"] == "model"]
        assert all("explore" in d["reason"] for d in shown)  # fewer than 20 impressions yet

        # Visitors click the discount and never the newsletter.
        events = [
            e
            for vid, d in first
            for e in feedback(vid, d, click=d["content_id"] == "discount" and d["source"] == "model")
        ]
        r = await shop.post("/v1/events", json={"events": events}, headers=AUTH)  # the shop posts for its visitors
        assert r.status_code == 202 and r.json()["accepted"] == len(events)
        discounts = sum(1 for d in shown if d["content_id"] == "discount")

        async def learnt():
            rep = await report(shop)
            return (
                rep["model"]["impressions"] == len(shown) and rep["variants"]["discount"]["clicks"] == discounts and rep
            )

        rep = await wait_until(learnt, timeout=30, message="the worker credits impressions and clicks")
        assert rep["variants"]["newsletter"]["clicks"] == 0 and rep["holdout"]["impressions"] == len(holdout)

        # The same events again (a redelivery) change nothing.
        r = await shop.post("/v1/events", json={"events": events}, headers=AUTH)  # the shop posts for its visitors
        assert r.status_code == 202
        time.sleep(1.5)
        again = await report(shop)
        assert again["model"] == rep["model"] and again["holdout"] == rep["holdout"]

        # The next visitors mostly get the discount, and the reason says why.
        later = [await decide(shop, unique()) for i in range(40)]
        modelled = [d for d in later if d["source"] == "model"]
        assert modelled and sum(d["content_id"] == "discount" for d in modelled) / len(modelled) >= 0.8
        assert all("exploit" in d["reason"] and "expected click rate" in d["reason"] for d in modelled)

        # A marketer's rule pins the slot over the model.
        (engine.folder / "pin.yaml").write_text(
            "rules:\n  - id: pin-newsletter\n    when: always\n    then: {promo: newsletter}\n"
        )

        async def pinned():
            return (await decide(shop, unique()))["source"] == "rule"

        await wait_until(pinned, timeout=10, message="the rule pins the slot")
        (engine.folder / "pin.yaml").unlink()
