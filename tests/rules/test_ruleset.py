"""Rule files: what loads, the errors and warnings a marketer sees, and their lines."""

import time
from pathlib import Path

import pytest

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.profiles.model import fold, new_profile
from engine.profiles.segments import memberships
from engine.rules.live import PACKAGED
from engine.rules.ruleset import build_ruleset, load_ruleset

HALF_LIFE = 14.0  # days

CATALOG = b"""\
slots:
  hero:
    default: welcome
    content:
      welcome: {html: "<h2>Welcome, {first_name|there}</h2>"}
      umbrella: {html: "Umbrellas", topics: [rain-gear]}
      sun: "Sunglasses"
segments:
  - name: shoe-lovers
    when: {interest: {category: shoes, min: 3}}
    score: {interest: shoes}
"""

GOOD_RULE = b"""\
rules:
  - id: umbrella-norway-rain
    description: Norway, rain, 10% control
    priority: 100
    when:
      all:
        - country: {in: [NO]}
        - weather: {in: [rain]}
    then:
      hero:
        variants:
          - {content: umbrella, weight: 1}
        control: 10
"""


def build(*files: bytes):
    return build_ruleset([(f"f{i}.yaml", data) for i, data in enumerate(files)], half_life_days=HALF_LIFE)


def problem(rs, text):
    found = [p for p in rs.problems if text in p.message]
    assert found, f"no problem mentioning {text!r} in {[str(p) for p in rs.problems]}"
    return found[0]


def test_no_is_norway_not_false():
    rs = build(
        b"rules:\n  - id: r\n    when: {country: {in: [NO, SE, yes, on]}}\n    then: {hero: welcome}\n  - id: s\n    enabled: false\n    when: always\n    then: {hero: welcome}\n"
    )
    assert not rs.errors
    assert rs.rules[0].condition.evaluate({}, {"country": "NO"}, 0)[0]
    assert rs.rules[1].enabled is False


def test_a_good_set_loads_with_its_parts():
    rs = build(CATALOG, GOOD_RULE)
    assert rs.problems == []
    (rule,) = rs.rules
    assert rule.id == "umbrella-norway-rain" and rule.priority == 100 and rule.enabled
    assert rule.choices[0].slot == "hero" and rule.choices[0].control == 10
    assert rs.slots["hero"].default == "welcome" and rs.slots["hero"].content["umbrella"].topics == ("rain-gear",)
    assert [s.name for s in rs.segments] == ["shoe-lovers"]
    ok, reasons = rule.condition.evaluate({}, {"country": "no", "weather": "Rain"}, 0)
    assert ok and reasons == ["country in ['no']", "weather in ['rain']"]


def test_condition_errors_carry_file_line_and_rule_id():
    bad = GOOD_RULE.replace(b"weather: {in: [rain]}", b"weather: {is: [rain]}")
    rs = build(CATALOG, bad)
    p = problem(rs, "unknown parameter 'is'")
    assert (p.file, p.line, p.rule_id, p.level) == ("f1.yaml", 8, "umbrella-norway-rain", "error")
    assert rs.rules == []  # a rule with an error is not served
    assert str(p).startswith("f1.yaml:8: [umbrella-norway-rain] error:")


def test_errors_in_each_part_of_a_rule_point_at_their_line():
    text = b"""\
rules:
  - id: r1
    priority: high
    when: {country: {in: [NO]}}
    then: {hero: umbrella}
  - id: r2
    when: {history: {event: purchase, min: 1, days: 400}}
    then: {hero: umbrella}
  - id: r3
    when: {country: {in: [NO]}}
    then: {hero: {variants: [{content: umbrella, weight: 0}]}}
  - id: r4
    schedule: {start: 2026-12-01, end: 2026-11-01}
    when: {country: {in: [NO]}}
    then: {hero: umbrella}
  - id: r5
    when: {country: {in: [NO]}}
    then: {hero: umbrella}
    colour: red
"""
    rs = build(CATALOG, text)
    assert (problem(rs, "priority").line, problem(rs, "priority").rule_id) == (3, "r1")
    assert (problem(rs, "90 days").line, problem(rs, "90 days").rule_id) == (7, "r2")
    assert (problem(rs, "weights add up to 0").line, problem(rs, "weights add up to 0").rule_id) == (11, "r3")
    assert (problem(rs, "end is not after start").line, problem(rs, "end is not after start").rule_id) == (13, "r4")
    assert (problem(rs, "unknown rule field 'colour'").line, problem(rs, "colour").rule_id) == (19, "r5")


def test_warnings_for_unknown_names_duplicates_and_rules_that_never_fire():
    text = b"""\
rules:
  - id: a
    when: {segment: {name: big-spenders}}
    then: {sidebar: promo}
  - id: b
    when: {country: {in: [NO]}}
    then: {hero: rainbow}
  - id: a
    when: {country: {in: [SE]}}
    then: {hero: sun}
  - id: night
    when: {time_of_day: {from: "10:00", to: "10:00"}}
    then: {hero: sun}
  - id: catch-all
    priority: 10
    when: always
    then: {hero: welcome}
  - id: shadowed
    priority: 5
    when: {country: {in: [DK]}}
    then: {hero: sun}
  - id: over
    when: {country: {in: [DK]}}
    schedule: {start: 2020-01-01, end: 2020-02-01}
    then: {hero: sun}
"""
    rs = build_ruleset([("c.yaml", CATALOG), ("r.yaml", text)], now_ms=1_795_400_000_000, half_life_days=HALF_LIFE)
    assert not rs.errors
    assert problem(rs, "unknown segment 'big-spenders'").rule_id == "a"
    assert problem(rs, "unknown slot 'sidebar'").line == 4
    assert problem(rs, "unknown content 'rainbow'").rule_id == "b"
    dup = problem(rs, "duplicate rule id")
    assert (dup.line, dup.level) == (8, "warning") and "r.yaml:2" in dup.message
    assert problem(rs, "condition can never be true").rule_id == "night"
    assert problem(rs, "has higher priority").rule_id == "shadowed"
    assert problem(rs, "schedule ended").rule_id == "over"
    assert [r.id for r in rs.rules][0] == "catch-all"  # highest priority first


def test_catalog_errors():
    text = b"""\
slots:
  hero:
    default: missing
    content:
      a: {html: "A"}
  side:
    default: a
    content:
      a: {html: 3}
  promo:
    default: a
    model: {variants: [a, zzz]}
    content: {a: "A", b: "B"}
"""
    rs = build(text)
    assert problem(rs, "default 'missing'").line == 3
    assert problem(rs, "needs html").line == 9
    assert problem(rs, "model variant 'zzz'").line == 12
    assert "hero" not in rs.slots and "side" not in rs.slots


def test_garbage_never_crashes_and_gives_a_line():
    for data in (
        b"\x00\x01\x02binary",
        b"\xff\xfe\xfd",
        b"rules: [",
        b"- a\n- b",
        b"rules: 3",
        b"a: &x [1]\nb: *x",
        b"rules:\n" + b"  " + b"[" * 5000,
        b"rules:\n - when: " + b"{not: " * 300 + b"{}" + b"}" * 300,
        b"rules:\n - id: deep\n   then: {hero: a}\n   when: " + b"{not: " * 40 + b"{country: {in: [NO]}}" + b"}" * 40,
    ):
        rs = build(data)
        assert rs.errors, data[:40]
        assert all(p.line >= 1 and p.file == "f0.yaml" for p in rs.problems)


def test_always_is_a_condition_too():
    text = b"""\
rules:
  - id: catch-all
    priority: 10
    when: {always: true}
    then: {hero: welcome}
  - id: shadowed
    when: {country: {in: [DK]}}
    then: {hero: sun}
  - id: off
    when: {always: false}
    then: {hero: sun}
"""
    rs = build(CATALOG, text)
    assert [r.id for r in rs.rules] == ["catch-all", "shadowed"]
    assert rs.rules[0].condition.evaluate({}, {}, 0) == (True, ["always"])
    assert problem(rs, "has higher priority").rule_id == "shadowed"
    off = problem(rs, "expected true")
    assert (off.line, off.rule_id, off.level) == (10, "off", "error")


def test_every_error_of_an_entry_is_reported_at_its_line():
    text = b"""\
rules:
  - id: r1
    priority: high
    enabled: maybe
    schedule: {start: soon}
    when: {country: {in: [NO]}}
    then:
      hero: {variants: [{content: umbrella, weight: -1}]}
      side: {content: a, control: 120}
    colour: red
segments:
  - name: s1
    score: {count: {event: add_to_cart, days: 100}}
"""
    rs = build(CATALOG, text)
    found = sorted((p.line, p.rule_id, p.message) for p in rs.errors)
    assert [(line, rid) for line, rid, _ in found] == [
        (3, "r1"),
        (4, "r1"),
        (5, "r1"),
        (8, "r1"),
        (9, "r1"),
        (10, "r1"),
        (12, "s1"),
        (13, "s1"),
    ]
    assert "enabled: expected true or false" in found[1][2]
    assert found[3][2].startswith("then.hero.variants[0].weight:")
    assert "missing when" in found[6][2] and "score.count.days" in found[7][2]
    assert rs.rules == [] and [s.name for s in rs.segments] == ["shoe-lovers"]  # the catalog's


def test_yaml_that_could_hurt_is_refused_with_a_line():
    bomb = b"a: &a [x, x, x, x, x, x, x, x, x]\n" + b"".join(
        b"%s: &%s [*%s, *%s, *%s, *%s, *%s, *%s, *%s, *%s, *%s]\n" % ((bytes([c]),) * 2 + (bytes([c - 1]),) * 9)
        for c in range(ord("b"), ord("j"))
    )
    started = time.perf_counter()
    rs = build(bomb)
    assert time.perf_counter() - started < 1.0
    assert (problem(rs, "aliases").line, len(rs.problems)) == (2, 1)
    assert problem(build(b"rules:\n  - !!python/object/apply:os.system [echo hi]\n"), "tag").line == 2
    assert problem(build(b"slots:\n  hero: {default: a, content: {a: A}}\n  hero: {}\n"), "duplicate key").line == 3
    assert problem(build(b"rules: [" + b"x" * (3 * 1024 * 1024) + b"]"), "larger than").line == 1


def test_interest_conditions_use_the_half_life_given():
    text = b"rules:\n  - id: fans\n    when: {interest: {category: shoes, min: 1}}\n    then: {hero: welcome}\n"
    profile = {"interests": {"shoes": [2.0, 0]}}  # 2.0 a day ago
    day = 86_400_000
    for half_life, fires in ((14.0, True), (0.5, False)):
        (rule,) = build_ruleset([("r.yaml", text)], half_life_days=half_life).rules
        assert rule.condition.evaluate(profile, {}, day)[0] is fires


def test_the_demo_segment_of_shoe_fans_takes_three_views(tmp_path: Path):
    rs = load_ruleset(PACKAGED, half_life_days=HALF_LIFE)
    assert not rs.problems
    now = 1_795_400_000_000
    views = [
        {
            "event_id": f"e{i}",
            "type": "product_view",
            "visitor_id": "v",
            "session_id": "s",
            "ts": now - 3000 + i * 1000,
            "props": {"product": {"id": f"p{i}", "category": "shoes"}},
        }
        for i in range(3)
    ]
    assert "shoe-lovers" not in memberships(fold(new_profile("v"), views[:2]), rs.segments, now, HALF_LIFE)
    inside = memberships(fold(new_profile("v"), views), rs.segments, now, HALF_LIFE)
    assert inside["shoe-lovers"] == pytest.approx(3, abs=0.001)  # the score is the (decayed) interest


def test_a_folder_loads_every_yaml_file_and_notes_a_missing_one(tmp_path: Path):
    (tmp_path / "catalog.yaml").write_bytes(CATALOG)
    (tmp_path / "nested").mkdir()
    (tmp_path / "nested" / "rules.yml").write_bytes(GOOD_RULE)
    (tmp_path / "notes.txt").write_text("not a rule file")
    rs = load_ruleset(tmp_path, half_life_days=HALF_LIFE)
    assert [r.id for r in rs.rules] == ["umbrella-norway-rain"] and not rs.problems
    assert load_ruleset(tmp_path / "nowhere", half_life_days=HALF_LIFE).warnings


yaml_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text(max_size=8)
    | st.sampled_from(["all", "any", "not", "country", "history", "in", "rules", "when", "then", "hero", "always"]),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                [
                    "rules",
                    "slots",
                    "segments",
                    "id",
                    "when",
                    "then",
                    "all",
                    "any",
                    "not",
                    "country",
                    "in",
                    "history",
                    "event",
                    "min",
                    "days",
                    "content",
                    "default",
                    "variants",
                    "weight",
                    "control",
                    "name",
                    "score",
                    "priority",
                    "hero",
                    "segment",
                    "profile",
                    "field",
                    "op",
                    "value",
                ]
            )
            | st.text(max_size=6),
            children,
            max_size=5,
        )
    ),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(yaml_values)
def test_random_yaml_always_yields_rules_or_errors(doc):
    data = yaml.safe_dump(doc).encode()
    rs = build(data)
    assert all(p.line >= 1 for p in rs.problems)
    # Whatever loaded is usable: every rule evaluates without raising.
    for rule in rs.rules:
        rule.condition.evaluate({}, {}, 0)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_never_crash_the_loader(data):
    rs = build(data)
    assert all(p.line >= 1 for p in rs.problems)
