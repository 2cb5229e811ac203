"""The worker's experiments step over real Redis: exposures enter, outcomes count once within the window,
bots, claims and people without consent do not, a person's devices count together, erasure forgets."""

import pytest

from engine.profiles import changes
from engine.profiles.people import People
from engine.rules.live import LiveRules
from engine.wiring import batch_handlers, build_stores

T0 = 1_795_400_000_000
HOUR = 3_600_000


def ev(kind, vid, at, n=0, **fields):
    props = fields.pop("props", {})
    return {
        "event_id": f"{vid}-{kind}-{at}-{n}",
        "type": kind,
        "visitor_id": vid,
        "ts": at,
        "received_at": at,
        "session_id": "s",
        "props": props,
        **fields,
    }


def exposure(vid, person, at, arm, experiment="rule:r:hero", pre=2.0, n=0):
    items = [
        {"decision_id": f"d{at}{n}", "experiment": experiment, "arm": arm, "propensity": 0.5},
        {"decision_id": f"d{at}{n}", "experiment": "global", "arm": "personalized", "propensity": 1.0},
    ]
    return changes.exposure(vid, person, items, pre, at, lambda: f"x-{vid}-{at}-{n}")


def purchase(vid, at, revenue, **fields):
    return ev(
        "purchase",
        vid,
        at,
        props={"order": {"id": f"o{vid}{at}", "revenue": revenue, "items": [{"id": "i1", "qty": 1, "price": revenue}]}},
        **fields,
    )


@pytest.fixture
async def world(settings_for, redis_client, tmp_path):
    settings = settings_for(rules=tmp_path / "no-rules", untrusted_orders="count")
    stores = build_stores(settings, redis_client)
    handlers = batch_handlers(settings, stores, LiveRules(settings.rules, half_life_days=14.0))

    async def run(events):
        for handler in handlers:
            await handler(events)

    yield stores, run
    keys = [k async for k in redis_client.scan_iter(match=f"{settings.redis_prefix}:*")]
    if keys:
        await redis_client.delete(*keys)


def by_arm(records):
    return {r["arm"]: r for r in records}


async def test_outcomes_count_once_within_the_window(world):
    stores, run = world
    batch = [
        ev("page_view", "va", T0 - 10),
        exposure("va", "va", T0, "umbrella"),
        ev("impression", "va", T0 + 1, props={"slot": "hero", "decision_id": f"d{T0}0"}),
        ev("impression", "va", T0 + 2, props={"slot": "side"}),  # another slot: not this rule's
        ev("content_click", "va", T0 + 3, props={"slot": "hero"}),
        ev("add_to_cart", "va", T0 + 4, props={"product": {"id": "i1", "price": 30}}),
        purchase("va", T0 + 5, 30.0),
        purchase("va", T0 + 25 * HOUR, 99.0),  # past the window
    ]
    await run(batch)
    await run(batch)  # redelivered: nothing counts twice
    [record] = await stores.experiments.records("rule:r:hero")
    assert (record["arm"], record["n"], record["imp"], record["clk"], record["atc"], record["buy"]) == (
        "umbrella",
        1,
        1,
        1,
        1,
        1,
    )
    assert record["rev"] == 30.0 and record["pre"] == 2.0
    [overall] = await stores.experiments.records("global")
    assert overall["imp"] == 2  # the global experiment counts every slot
    assert await stores.experiments.experiments() == ["global", "rule:r:hero"]


async def test_a_later_exposure_extends_the_window_and_keeps_the_first_arm(world):
    stores, run = world
    await run(
        [
            exposure("vb", "vb", T0, "control"),
            exposure("vb", "vb", T0 + 20 * HOUR, "umbrella", n=1),
            purchase("vb", T0 + 30 * HOUR, 10.0),
        ]
    )
    [record] = await stores.experiments.records("rule:r:hero")
    assert (record["arm"], record["n"], record["sw"], record["buy"]) == ("control", 2, 1, 1)


async def test_bots_claims_and_people_without_consent_are_not_counted(world, settings_for, redis_client, tmp_path):
    stores, run = world
    await run(
        [ev("page_view", "vc", T0 - 1), exposure("vc", "vc", T0, "umbrella"), purchase("vc", T0 + 1, 5.0, bot=True)]
    )
    [record] = await stores.experiments.records("rule:r:hero")
    assert record["buy"] == 0
    # consent withdrawn: the person leaves the experiments; exposures without consent do not enter
    await run(
        [
            ev("consent", "vc", T0 + 3, props={"consent": {"analytics": False}}),
            exposure("vc", "vc", T0 + 4, "umbrella"),
            purchase("vc", T0 + 5, 9.0),
        ]
    )
    assert await stores.experiments.records("rule:r:hero") == []
    # a claim under a policy that never counts browsers' orders
    claims = settings_for(rules=tmp_path / "none", untrusted_orders="claim")
    cstores = build_stores(claims, redis_client)
    handlers = batch_handlers(claims, cstores, LiveRules(claims.rules, half_life_days=14.0))
    batch = [exposure("vd", "vd", T0, "umbrella"), purchase("vd", T0 + 1, 5.0)]
    for handler in handlers:
        await handler(batch)
    [record] = await cstores.experiments.records("rule:r:hero")
    assert record["buy"] == 0
    await cstores.experiments.clear()


async def test_one_customer_on_two_devices_is_one_person_and_erasure_forgets(world):
    stores, run = world
    user = "kari@example.com"
    person = f"u:{People.digest(user)}"
    login = {"user_id": user, "verified": True, "props": {"traits": {}}}
    await run(
        [
            ev("identify", "phone", T0 - 5, **login),
            ev("identify", "laptop", T0 - 4, **login),
            exposure("phone", person, T0, "umbrella"),
            purchase("laptop", T0 + HOUR, 40.0),
        ]
    )  # bought on the other device
    [record] = await stores.experiments.records("rule:r:hero")
    assert (record["arm"], record["buy"], record["rev"]) == ("umbrella", 1, 40.0)
    # an unverified identify links nothing: that device's purchase stays the visitor's own
    await run([ev("identify", "tablet", T0 - 3, user_id=user, props={}), purchase("tablet", T0 + 2 * HOUR, 5.0)])
    [record] = await stores.experiments.records("rule:r:hero")
    assert record["buy"] == 1
    await stores.people.erase(user)
    assert await stores.experiments.records("rule:r:hero") == []
    assert not await stores.redis.exists(stores.experiments.arms_key(person))


async def test_a_model_slot_report_and_its_off_policy_estimates(settings_for, redis_client, tmp_path):
    from engine.experiments.service import Experiments

    folder = tmp_path / "rules"
    folder.mkdir()
    (folder / "slots.yaml").write_text("""\
slots:
  hero:
    default: a
    model: {variants: [a, b], holdout: 10, reward: purchase}
    content:
      a: {html: "A"}
      b: {html: "B"}
""")
    settings = settings_for(rules=folder)
    stores = build_stores(settings, redis_client)
    rules = LiveRules(settings.rules, half_life_days=14.0)
    rules.refresh()
    handlers = batch_handlers(settings, stores, rules)
    batch = []
    for n in range(40):
        vid, arm = f"m{n}", ("a", "b", "holdout")[n % 3]
        item = {"decision_id": f"d{n}", "experiment": "slot:hero", "arm": arm, "propensity": 0.45, "context": "*"}
        batch.append(changes.exposure(vid, vid, [item], 0.0, T0, lambda n=n: f"xm{n}"))
        if arm == "b" or n % 5 == 0:
            batch.append(purchase(vid, T0 + 1, 10.0))
    for handler in handlers:
        await handler(batch)
    service = Experiments(stores.experiments, rules, 0.0, 24.0)
    try:
        listed = {e["id"]: e for e in await service.list()}
        assert listed["slot:hero"]["reward"] == "purchase"
        report = await service.report("slot:hero")
        assert report["control"] == "holdout" and set(report["arms"]) == {"a", "b", "holdout"}
        assert report["srm"]["expected"] == {"holdout": 4.0, "model": 36.0}
        found = await service.ope("hero")
        assert found["decisions"] == 27 and found["reward"] == "purchase"
        always_b = found["policies"]["always b"]
        # every b person bought: IPS = share of b in the log / propensity
        assert always_b["ips"]["estimate"] == pytest.approx((13 / 27) / 0.45)
        assert always_b["dr"]["estimate"] == pytest.approx(1.0)
        assert await service.ope("nope") is None and await service.report("rule:nope:x") is None
    finally:
        await stores.experiments.clear()


async def test_an_erasure_in_the_same_batch_wins_over_what_came_before_it(world):
    stores, run = world
    await run(
        [
            ev("page_view", "ve", T0 - 1),
            exposure("ve", "ve", T0, "umbrella"),
            purchase("ve", T0 + 1, 5.0),
            changes.erasure("ve", None, T0 + 2, lambda: "erase-ve"),
            ev("page_view", "vf", T0 - 1),
            exposure("vf", "vf", T0, "sun"),
        ]
    )
    assert [r["arm"] for r in await stores.experiments.records("rule:r:hero")] == ["sun"]


async def test_a_visitor_whose_erasure_is_requested_earns_nothing_meanwhile(world):
    """The step takes the batch's own profiles; one hidden by an erasure request still counts for nothing."""
    stores, run = world
    await run([exposure(vid, vid, T0, "umbrella") for vid in ("vh", "vk")] + [ev("page_view", "vh", T0 + 1)])
    await run([ev("page_view", "vk", T0 + 2)])
    await stores.profiles.hide("vh", "erasure-1")
    assert await stores.profiles.hidden(["vh", "vk", "nobody"]) == {"vh"}
    await run([purchase("vh", T0 + 10, 20.0), purchase("vk", T0 + 11, 30.0)])  # both folded in this batch
    bought = sorted(r["buy"] for r in await stores.experiments.records("rule:r:hero"))
    assert bought == [0, 1]
