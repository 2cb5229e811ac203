"""Deciding a slot, pure: precedence, A/B stickiness and control, topics, schedules, rendering."""

from collections import Counter
from types import SimpleNamespace

from engine.rules.decide import decide, decide_slot, model_variants, render
from engine.rules.ruleset import build_ruleset

NOW = 1_795_400_000_000

FILES = b"""\
slots:
  hero:
    default: welcome
    model: {variants: [welcome, sun]}
    content:
      welcome: {html: "<h2>Welcome, {first_name|there}</h2>"}
      umbrella: {html: "Umbrellas", topics: [rain-gear]}
      umbrella-b: {html: "Umbrellas B", topics: [rain-gear]}
      sun: {html: "Sunglasses in {city|your town}", topics: [summer]}
      sol: {html: "Solbriller", topics: [summer], language: nb}
rules:
  - id: rain
    priority: 100
    when: {weather: {in: [rain]}}
    then:
      hero:
        variants: [{content: umbrella, weight: 3}, {content: umbrella-b, weight: 1}]
        control: 10
  - id: norway
    priority: 50
    when: {country: {in: [NO]}}
    then: {hero: sun}
  - id: later
    priority: 200
    schedule: {start: 2030-01-01}
    when: always
    then: {hero: sun}
"""


def ruleset():
    rs = build_ruleset([("r.yaml", FILES)], NOW, half_life_days=14.0)
    assert not rs.errors, rs.errors
    return rs


def test_render_escapes_values_and_uses_fallbacks():
    person = {"traits": {"first_name": "<script>alert(1)</script>"}, "value": {"tier": "key"}}
    assert render("Hi {first_name|there}", person, {}) == "Hi &lt;script&gt;alert(1)&lt;/script&gt;"
    assert render("Hi {first_name|there}", None, {}) == "Hi there"
    assert render("Hi {nickname|<b>you</b>}", person, {}) == "Hi &lt;b&gt;you&lt;/b&gt;"
    assert render("Tier {value.tier}, in {city|town}", person, {"city": "Oslo"}) == "Tier key, in Oslo"
    assert render("{__class__|x} {first_name.__len__|y}", person, {}) == "x y"  # names, never evaluated
    assert render("{ not a token }", person, {}) == "{ not a token }"


def test_default_when_nothing_matches_and_for_an_unknown_slot():
    d = decide_slot(ruleset(), "hero", None, {}, {}, "v1", NOW)
    assert (d.source, d.content_id, d.content) == ("default", "welcome", "<h2>Welcome, there</h2>")
    unknown = decide_slot(ruleset(), "sidebar", None, {}, {}, "v1", NOW)
    assert unknown.content is None and "no such slot" in unknown.reason


def test_the_highest_priority_live_rule_wins_and_says_why():
    rs = ruleset()
    d = decide_slot(rs, "hero", None, {}, {"country": "NO"}, "v1", NOW)
    assert (d.source, d.content_id, d.rule_id) == ("rule", "sun", "norway")
    assert d.reason == "rule norway matched (country in ['no'])"
    both = [decide_slot(rs, "hero", None, {}, {"country": "NO", "weather": "rain"}, f"v{i}", NOW) for i in range(200)]
    assert all(d.rule_id == "rain" for d in both)  # 100 beats 50; 'later' has not started
    later = decide_slot(rs, "hero", None, {}, {}, "v1", 1_900_000_000_000)
    assert later.rule_id == "later"


def test_variants_split_by_weight_with_a_control_share_and_stick_to_the_visitor():
    rs = ruleset()
    rain = {"weather": "rain"}
    variants = Counter(decide_slot(rs, "hero", None, {}, rain, f"visitor-{i}", NOW).variant for i in range(4000))
    assert abs(variants["control"] / 4000 - 0.10) < 0.02
    assert abs(variants["umbrella"] / variants["umbrella-b"] - 3) < 0.5
    for i in range(50):
        first = decide_slot(rs, "hero", None, {}, rain, f"visitor-{i}", NOW)
        again = decide_slot(rs, "hero", None, {}, rain, f"visitor-{i}", NOW + 86_400_000)
        assert first.variant == again.variant
    control = next(
        decide_slot(rs, "hero", None, {}, rain, f"visitor-{i}", NOW)
        for i in range(4000)
        if decide_slot(rs, "hero", None, {}, rain, f"visitor-{i}", NOW).variant == "control"
    )
    assert control.content_id == "welcome" and "control group" in control.reason


def test_preferences_come_first():
    rs = ruleset()
    rain = {"weather": "rain", "country": "NO"}
    chosen = decide_slot(rs, "hero", None, {"hero": "sun"}, rain, "v1", NOW)
    assert (chosen.source, chosen.content_id) == ("preference", "sun")
    shown = decide_slot(rs, "hero", None, {"show": ["summer"]}, {}, "v1", NOW)
    assert (shown.source, shown.content_id, shown.reason) == ("preference", "sun", "the visitor chose to see summer")
    off = decide_slot(rs, "hero", None, {"do_not_personalize": True, "show": ["summer"]}, rain, "v1", NOW)
    assert (off.source, off.content_id) == ("default", "welcome")
    # Hidden topics pass over the rain rule (its content is rain-gear) to the next rule.
    hidden = decide_slot(rs, "hero", None, {"hide": ["rain-gear"]}, rain, "v1", NOW)
    assert (hidden.source, hidden.rule_id, hidden.content_id) == ("rule", "norway", "sun")
    # Content in another language than the visitor's is passed over too.
    norsk = decide_slot(rs, "hero", None, {"show": ["summer"], "language": "nb-NO"}, {}, "v1", NOW)
    assert norsk.content_id == "sol"
    english = decide_slot(rs, "hero", None, {"show": ["summer"], "language": "en"}, {}, "v1", NOW)
    assert english.content_id == "sun"


def test_the_model_decides_after_rules_and_before_the_default():
    rs = ruleset()

    def model(slot, person, context, visitor_id):
        return SimpleNamespace(
            variant="sun",
            expected_ctr=0.05,
            explore=False,
            holdout=False,
            context="*",
            reason="expected click rate 5.0%; exploit",
        )

    d = decide_slot(rs, "hero", None, {}, {}, "v1", NOW, model)
    assert (d.source, d.content_id) == ("model", "sun") and d.extra["model"]["expected_ctr"] == 0.05
    ruled = decide_slot(rs, "hero", None, {}, {"country": "NO"}, "v1", NOW, model)
    assert ruled.source == "rule"  # a marketer's rule overrides the model
    # The chooser only ever sees the variants the visitor may see.
    assert model_variants(rs.slots["hero"], {"hide": ["summer"]}) == ("welcome",)
    assert model_variants(rs.slots["hero"], {"do_not_personalize": True}) == ()
    assert model_variants(rs.slots["hero"], {}) == ("welcome", "sun")
    holdout = decide_slot(
        rs,
        "hero",
        None,
        {},
        {},
        "v1",
        NOW,
        lambda *a: SimpleNamespace(
            variant="holdout", expected_ctr=0.0, explore=False, holdout=True, context="*", reason="holdout (5%)"
        ),
    )
    assert (holdout.source, holdout.variant, holdout.content_id) == ("default", "holdout", "welcome")
    decisions = decide(rs, ["hero", "hero2"], None, {}, {}, "v1", NOW, model)
    assert set(decisions) == {"hero", "hero2"} and decisions["hero"].decision_id != decisions["hero2"].decision_id


def test_withheld_personalization_consent_means_the_default_filled_without_the_person():
    rs = ruleset()
    ada = {"traits": {"first_name": "Ada"}, "consent": {"personalization": False, "ts": NOW}}
    for prefs, context in (({}, {"weather": "rain"}), ({"hero": "sun"}, {}), ({"show": ["summer"]}, {"country": "NO"})):
        d = decide_slot(
            rs,
            "hero",
            ada,
            prefs,
            context,
            "v1",
            NOW,
            lambda *a: SimpleNamespace(
                variant="sun", expected_ctr=0.1, explore=False, holdout=False, context="*", reason="model"
            ),
        )
        assert (d.source, d.content_id, d.reason) == (
            "default",
            "welcome",
            "no personalization consent: default content",
        )
        assert d.content == "<h2>Welcome, there</h2>" and "model" not in d.extra
    assert model_variants(rs.slots["hero"], {}, ada) == ()
    given = dict(ada, consent={"personalization": True})
    assert "Ada" in decide_slot(rs, "hero", given, {}, {}, "v1", NOW).content
