"""Table tests of every condition type."""

import pytest

from engine.profiles.model import DAY_MS, fold, new_profile
from engine.rules.conditions import LEAVES, ConditionError, compile_condition, segments_named

NOW = 1_795_400_000_000  # 2026-11-23 02:13:20 UTC, a Monday
HALF_LIFE = 14.0  # days, as the profiles folded in these tests use


def compiled(tree, half_life_days=HALF_LIFE):
    return compile_condition(tree, half_life_days=half_life_days)


def shopper():
    events = [
        {
            "event_id": f"e{d}",
            "type": "product_view",
            "visitor_id": "v",
            "session_id": "s",
            "ts": NOW - d * DAY_MS,
            "props": {"product": {"id": f"p{d}", "category": "shoes"}},
        }
        for d in (0, 1, 2, 9)
    ]
    profile = fold(new_profile("v"), events)
    profile["traits"] = {"first_name": "Ada"}
    profile["segments"] = {"big_spenders": 0.8}
    profile["value"] = {"tier": "key"}
    return profile


CASES = [
    ({"always": True}, {}, True),
    ({"all": [{"always": True}, {"country": {"in": ["NO"]}}]}, {"country": "SE"}, False),
    ({"profile": {"field": "traits.first_name", "op": "eq", "value": "Ada"}}, {}, True),
    ({"profile": {"field": "traits.first_name", "op": "exists"}}, {}, True),
    ({"profile": {"field": "traits.last_name", "op": "exists"}}, {}, False),
    ({"profile": {"field": "counts.product_view", "op": "gte", "value": 4}}, {}, True),
    ({"profile": {"field": "counts.product_view", "op": "lt", "value": 4}}, {}, False),
    ({"profile": {"field": "traits.first_name", "op": "in", "value": ["Ada", "Kari"]}}, {}, True),
    ({"profile": {"field": "traits.first_name", "op": "contains", "value": "d"}}, {}, True),
    ({"profile": {"field": "traits.first_name", "op": "ne", "value": "Ada"}}, {}, False),
    ({"segment": {"name": "big_spenders"}}, {}, True),
    ({"segment": {"name": "big_spenders", "min_score": 0.9}}, {}, False),
    ({"segment": {"name": "churn_risk"}}, {}, False),
    ({"value_tier": {"in": ["key", "growth"]}}, {}, True),
    ({"value_tier": {"in": ["low"]}}, {}, False),
    ({"history": {"event": "product_view", "category": "shoes", "min": 3, "days": 7}}, {}, True),
    ({"history": {"event": "product_view", "category": "shoes", "min": 4, "days": 7}}, {}, False),
    ({"history": {"event": "product_view", "min": 4, "days": 30}}, {}, True),
    ({"interest": {"category": "shoes", "min": 2}}, {}, True),
    ({"interest": {"category": "hats", "min": 0.1}}, {}, False),
    ({"country": {"in": ["NO", "SE"]}}, {"country": "no"}, True),
    ({"country": {"in": ["NO"]}}, {"country": "DK"}, False),
    ({"region": {"in": ["Vestland"]}}, {"region": "vestland"}, True),
    ({"city": {"in": ["Bergen"]}}, {"city": "Oslo"}, False),
    ({"weather": {"in": ["rain", "drizzle"]}}, {"weather": "rain"}, True),
    ({"weather": {"in": ["rain"]}}, {}, False),
    ({"device": {"in": ["mobile"]}}, {"device": "mobile"}, True),
    ({"utm_campaign": {"in": ["spring-sale"]}}, {"utm_campaign": "spring-sale"}, True),
    ({"language": {"in": ["nb"]}}, {"language": "en"}, False),
    ({"referrer": {"contains": "google."}}, {"referrer": "https://www.google.no/search"}, True),
    ({"page": {"prefix": "/shoes"}}, {"url": "/shoes/42"}, True),
    ({"page": {"equals": "/"}}, {"url": "/shoes"}, False),
    ({"time_of_day": {"from": "06:00", "to": "10:00"}}, {"local_time": "07:30"}, True),
    ({"time_of_day": {"from": "22:00", "to": "02:00"}}, {"local_time": "01:00"}, True),
    ({"time_of_day": {"from": "22:00", "to": "02:00"}}, {"local_time": "12:00"}, False),
    ({"day_of_week": {"in": ["sat", "sunday"]}}, {"day_of_week": "Sunday"}, True),
    ({"day_of_week": {"in": ["mon"]}}, {"day_of_week": "tue"}, False),
    ({"all": [{"country": {"in": ["NO"]}}, {"weather": {"in": ["rain"]}}]}, {"country": "NO", "weather": "rain"}, True),
    ({"all": [{"country": {"in": ["NO"]}}, {"weather": {"in": ["rain"]}}]}, {"country": "NO", "weather": "sun"}, False),
    ({"any": [{"country": {"in": ["SE"]}}, {"weather": {"in": ["rain"]}}]}, {"country": "NO", "weather": "rain"}, True),
    ({"not": {"country": {"in": ["NO"]}}}, {"country": "NO"}, False),
    ({"not": {"country": {"in": ["NO"]}}}, {"country": "SE"}, True),
]


@pytest.mark.parametrize("tree, context, expected", CASES)
def test_condition_types(tree, context, expected):
    ok, reasons = compiled(tree).evaluate(shopper(), context, NOW)
    assert ok is expected
    assert bool(reasons) is expected


def test_every_registered_type_has_a_table_case():
    covered = set()

    def walk(tree):
        for kind, body in tree.items():
            covered.add(kind)
            for child in body if kind in ("all", "any") else [body] if kind == "not" else []:
                walk(child)

    for tree, _, _ in CASES:
        walk(tree)
    assert set(LEAVES) <= covered


def test_reasons_name_what_matched():
    _, reasons = compiled({"all": [{"country": {"in": ["NO"]}}, {"weather": {"in": ["rain"]}}]}).evaluate(
        {}, {"country": "NO", "weather": "rain"}, NOW
    )
    assert reasons == ["country in ['no']", "weather in ['rain']"]


def test_local_time_from_timezone():
    # 02:13 UTC is 03:13 in Oslo
    cond = compiled({"time_of_day": {"from": "03:00", "to": "04:00"}})
    assert cond.evaluate({}, {"timezone": "Europe/Oslo"}, NOW)[0] is True
    assert cond.evaluate({}, {"timezone": "UTC"}, NOW)[0] is False


@pytest.mark.parametrize(
    "tree, path",
    [
        ({"country": {"in": []}}, "when.country.in"),
        ({"country": "NO"}, "when.country"),
        ({"all": []}, "when.all"),
        ({"all": [{"weather": {"in": ["rain"]}}, {"teleport": {}}]}, "when.all[1]"),
        ({"profile": {"field": "x", "op": "like", "value": 1}}, "when.profile.op"),
        ({"profile": {"field": "x", "op": "eq"}}, "when.profile"),
        ({"history": {"event": "product_view", "min": 0, "days": 7}}, "when.history.min"),
        ({"history": {"event": "product_view", "min": 1, "days": 365}}, "when.history.days"),
        ({"time_of_day": {"from": "25:00", "to": "10:00"}}, "when.time_of_day.from"),
        ({"day_of_week": {"in": ["someday"]}}, "when.day_of_week.in"),
        ({"value_tier": {"in": ["gold"]}}, "when.value_tier.in"),
        ({"page": {"contains": "a", "prefix": "b"}}, "when.page"),
        ({"a": 1, "b": 2}, "when"),
        ({"always": False}, "when.always"),
        ({"always": "yes"}, "when.always"),
        ({"history": {"event": "product_view", "min": 1}}, "when.history"),
        ({"time_of_day": {"from": "7:30", "to": "10:00"}}, "when.time_of_day.from"),
        ("rain", "when"),
    ],
)
def test_bad_conditions_name_their_path(tree, path):
    with pytest.raises(ConditionError) as caught:
        compiled(tree)
    assert caught.value.path == path


def test_messages_say_what_was_expected():
    def message(tree):
        with pytest.raises(ConditionError) as caught:
            compiled(tree)
        return caught.value.message

    assert message({"weather": {"is": ["rain"]}}) == "unknown parameter 'is'; expected in"
    assert message({"history": {"event": "product_view", "min": 1}}) == "missing parameter 'days'"
    assert "profiles keep 90 days of history" in message({"history": {"event": "purchase", "min": 1, "days": 400}})
    assert message({"country": "NO"}) == "expected parameters in"
    assert "always" in message({"sometimes": True})  # the known types are listed


def test_interest_decays_with_the_half_life_it_was_compiled_with():
    tree = {"interest": {"category": "shoes", "min": 3}}
    later = NOW + 2 * DAY_MS  # the shopper's shoe interest is about 3.5 at NOW
    assert compiled(tree, half_life_days=14).evaluate(shopper(), {}, later)[0]
    assert not compiled(tree, half_life_days=1).evaluate(shopper(), {}, later)[0]


def test_day_of_week_from_the_clock():
    assert compiled({"day_of_week": {"in": ["mon"]}}).evaluate({}, {"timezone": "Europe/Oslo"}, NOW)[0]
    assert not compiled({"day_of_week": {"in": ["mon"]}}).evaluate({}, {"timezone": "America/Los_Angeles"}, NOW)[0]


def test_deep_nesting_is_refused_not_a_crash():
    tree = {"country": {"in": ["NO"]}}
    for _ in range(5000):
        tree = {"not": tree}
    with pytest.raises(ConditionError, match="nested more than"):
        compiled(tree)


def test_empty_time_window_can_never_fire():
    assert compiled({"time_of_day": {"from": "10:00", "to": "10:00"}}).never
    assert not compiled({"time_of_day": {"from": "10:00", "to": "11:00"}}).never


def test_segments_named():
    assert segments_named({"all": [{"segment": {"name": "a"}}, {"not": {"segment": {"name": "b"}}}]}) == {"a", "b"}
