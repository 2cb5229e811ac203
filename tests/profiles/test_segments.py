"""Segment membership and scores, pure."""

from engine.profiles.model import DAY_MS, fold, new_profile
from engine.profiles.segments import derive, memberships
from engine.profiles.value import ValueModel
from engine.rules.ruleset import build_ruleset

NOW = 1_795_400_000_000

SEGMENTS = b"""\
segments:
  - name: browsers
    when: {history: {event: product_view, min: 2, days: 7}}
    score: {count: {event: product_view, days: 7}}
  - name: hat-fans
    when: {interest: {category: hats, min: 1}}
    score: {interest: hats}
  - name: browsing-hat-fans
    when: {all: [{segment: {name: browsers}}, {segment: {name: hat-fans}}]}
  - name: low-value
    when: {value_tier: {in: [low]}}
    score: revenue
  - name: by-sessions
    when: {profile: {field: sessions.count, op: gte, value: 2}}
    score: sessions
"""


def person():
    events = [
        {
            "event_id": f"e{i}",
            "type": "product_view",
            "visitor_id": "v",
            "session_id": f"s{i % 2}",
            "ts": NOW - i * DAY_MS,
            "props": {"product": {"id": f"p{i}", "category": "hats"}},
        }
        for i in range(3)
    ]
    return fold(new_profile("v"), events)


def test_members_get_scores_and_later_segments_see_earlier_ones():
    rs = build_ruleset([("s.yaml", SEGMENTS)], half_life_days=14.0)
    assert not rs.problems
    inside = memberships(person(), rs.segments, NOW)
    assert inside["browsers"] == 3.0
    assert 1.0 < inside["hat-fans"] < 3.0  # decayed: views 0, 1 and 2 days old
    assert inside["browsing-hat-fans"] == 1.0
    assert inside["by-sessions"] == 3.0  # s0, s1, s0: three session starts
    assert "low-value" not in inside  # no value computed: the tier is unknown
    assert [s.name for s in rs.segments if s.uses_value] == ["low-value"]


def test_derive_adds_value_and_a_week_later_the_browsing_segment_is_gone():
    rs = build_ruleset([("s.yaml", SEGMENTS)], half_life_days=14.0)
    derived = derive(person(), ValueModel(), rs.segments, NOW)
    assert derived["value"]["tier"] == "low" and derived["segments"]["low-value"] == 0.0
    later = derive(person(), ValueModel(), rs.segments, NOW + 8 * DAY_MS)
    assert "browsers" not in later["segments"] and "hat-fans" in later["segments"]
