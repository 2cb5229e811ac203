"""Exposures, pure: which experiment and arm each decision belongs to, bucketing by person, the global holdout."""

from collections import Counter
from types import SimpleNamespace

import pytest

from engine.errors import InvalidInput
from engine.experiments import exposures as xp
from engine.profiles import changes
from engine.rules.decide import decide
from engine.rules.ruleset import build_ruleset

NOW = 1_795_400_000_000

FILES = b"""\
slots:
  hero:
    default: welcome
    model: {variants: [welcome, sun]}
    content:
      welcome: {html: "Welcome"}
      umbrella: {html: "Umbrellas"}
      umbrella-b: {html: "Umbrellas B"}
      sun: {html: "Sunglasses"}
  side:
    default: welcome
    content:
      welcome: {html: "Hi"}
      sun: {html: "Sun"}
rules:
  - id: rain
    priority: 100
    when: {weather: {in: [rain]}}
    then:
      hero:
        variants: [{content: umbrella, weight: 3}, {content: umbrella-b, weight: 1}]
        control: 10
  - id: plain
    priority: 10
    when: always
    then: {side: sun}
"""


@pytest.fixture(scope="module")
def rs():
    return build_ruleset([("r.yaml", FILES)], NOW, half_life_days=14.0)


def test_rule_shares_follow_the_split(rs):
    shares = xp.rule_shares(rs, "rain", "hero")
    assert shares == pytest.approx({"control": 0.1, "umbrella": 0.675, "umbrella-b": 0.225})
    assert xp.is_experiment(rs, "rain", "hero") and not xp.is_experiment(rs, "plain", "side")


def test_every_decision_is_an_exposure_with_the_propensity_of_its_arm(rs):
    arms = Counter()
    for n in range(4000):
        person = f"p{n}"
        decisions = decide(rs, ["hero", "side"], None, {}, {"weather": "rain"}, person, NOW)
        items = xp.exposures(rs, decisions, {}, False, 0.0)
        by_experiment = {x["experiment"]: x for x in items}
        rule = by_experiment["rule:rain:hero"]
        assert rule["decision_id"] == decisions["hero"].decision_id
        assert rule["propensity"] == pytest.approx(xp.rule_shares(rs, "rain", "hero")[rule["arm"]])
        arms[rule["arm"]] += 1
        # a rule without a split is no experiment; both decisions are in the global one
        assert set(by_experiment) == {"rule:rain:hero", "global"}
        assert [x["arm"] for x in items if x["experiment"] == "global"] == ["personalized", "personalized"]
    assert abs(arms["control"] / 4000 - 0.1) < 0.02
    assert abs(arms["umbrella"] / 4000 - 0.675) < 0.03


def test_model_choices_are_exposures_with_the_sampling_probability(rs):
    decisions = decide(
        rs,
        ["hero"],
        None,
        {},
        {},
        "p1",
        NOW,
        lambda slot, p, c, v: SimpleNamespace(
            variant="sun", holdout=False, propensity=0.37, expected_ctr=0.1, explore=False, context="*", reason="r"
        ),
    )
    items = xp.exposures(
        rs,
        decisions,
        {"hero": SimpleNamespace(variant="sun", holdout=False, propensity=0.37, context="mobile|new|none")},
        False,
        0,
    )
    assert {
        "experiment": "slot:hero",
        "arm": "sun",
        "propensity": 0.37,
        "context": "mobile|new|none",
        "decision_id": decisions["hero"].decision_id,
    } in items


def test_global_holdout_is_stable_per_person_and_gives_defaults(rs):
    share = sum(xp.in_global_holdout(f"p{n}", 10) for n in range(20000)) / 20000
    assert abs(share - 0.10) < 0.01
    assert all(xp.in_global_holdout("u:abc", 10) == xp.in_global_holdout("u:abc", 10) for _ in range(3))
    assert not xp.in_global_holdout("anyone", 0)
    decisions = decide(rs, ["hero", "side"], None, {}, {"weather": "rain"}, "p1", NOW, held_out=True)
    assert all(d.source == "default" and d.content_id == "welcome" for d in decisions.values())
    items = xp.exposures(rs, decisions, {}, True, 10)
    assert [(x["experiment"], x["arm"], x["propensity"]) for x in items] == [("global", "holdout", 0.1)] * 2


def test_the_person_is_bucketed_not_the_device(rs):
    person = xp.person_key("digest1", "visitor-a")
    assert person == xp.person_key("digest1", "visitor-b") == "u:digest1"
    assert xp.person_key(None, "visitor-a") == "visitor-a"
    a = decide(rs, ["hero"], None, {}, {"weather": "rain"}, person, NOW)["hero"]
    b = decide(rs, ["hero"], None, {}, {"weather": "rain"}, person, NOW)["hero"]
    assert (a.variant, a.content_id) == (b.variant, b.content_id)


def test_exposure_change_is_server_only_and_checked():
    event = changes.exposure(
        "v1",
        "u:d",
        [{"decision_id": "d1", "experiment": "global", "arm": "personalized", "propensity": 1.0}],
        3.0,
        NOW,
        lambda: "e1",
    )
    assert event["type"] in changes.TYPES and changes.is_state_change(event)
    assert changes.check(event)["person"] == "u:d"
    bad = dict(event, props={"person": "u:d", "exposures": [{"experiment": "x"}]})
    with pytest.raises(InvalidInput, match="props.exposures"):
        changes.check(bad)


def test_pre_activity_counts_events_before():
    assert xp.pre_activity({"counts": {"page_view": 3, "purchase": 1}}) == 4
    assert xp.pre_activity(None) == 0
