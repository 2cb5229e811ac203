"""Fuzzing the rule file check: whatever a file holds, the answer is a rule set or reported problems.

Inputs are YAML-ish text, random documents, and mutations of the demo file (text edits
and replaced parts), so most of them get past the parser and into the shape checks and
the condition compiler. A per-example deadline catches anything slow (an alias bomb,
a pathological nesting) as well as any exception.
"""

from datetime import timedelta
from io import StringIO

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML

from engine.rules.live import PACKAGED
from engine.rules.ruleset import build_ruleset

DEMO = (PACKAGED / "demo.yaml").read_bytes()
DEMO_LINES = DEMO.decode().splitlines(keepends=True)
DEMO_DATA = YAML(typ="safe", pure=True).load(DEMO)
FAST = settings(max_examples=80, deadline=timedelta(seconds=2), suppress_health_check=[HealthCheck.too_slow])

WORDS = [
    "rules",
    "slots",
    "segments",
    "id",
    "when",
    "then",
    "all",
    "any",
    "not",
    "always",
    "true",
    "false",
    "NO",
    "country",
    "in",
    "history",
    "event",
    "min",
    "days",
    "interest",
    "category",
    "content",
    "default",
    "variants",
    "weight",
    "control",
    "model",
    "holdout",
    "schedule",
    "start",
    "end",
    "2026-12-01",
    "score",
    "count",
    "profile",
    "field",
    "op",
    "value",
    "segment",
    "name",
    "time_of_day",
    "from",
    "to",
    "25:00",
    "hero",
    "promo",
    "-1",
    "1e9",
    ".nan",
    "~",
    "&a",
    "*a",
    "!!python/object:os.system",
    "!!binary",
    "<<",
    "? ",
    "|",
    ">",
]
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-(10**12), 10**12)
    | st.floats()
    | st.text(max_size=10)
    | st.sampled_from(WORDS)
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(WORDS) | st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=25,
)


def assert_reported(data: bytes) -> None:
    """The whole contract: no exception, every problem placed, everything loaded usable."""
    rs = build_ruleset([("fuzz.yaml", data)], now_ms=1_795_400_000_000, half_life_days=14.0)
    lines = data.count(b"\n") + 2
    for p in rs.problems:
        assert p.file == "fuzz.yaml" and 1 <= p.line <= lines and p.message and p.level in ("error", "warning"), p
    for rule in rs.rules:
        rule.condition.evaluate({}, {}, 0)
    for segment in rs.segments:
        segment.condition.evaluate({"daily": {}, "interests": {}}, {}, 0)


def dump(doc) -> bytes:
    out = StringIO()
    YAML(typ="safe", pure=True).dump(doc, out)
    return out.getvalue().encode()


@st.composite
def replaced_part(draw, doc):
    """`doc` with one part (found by walking down from the root) replaced by a random value, or removed."""
    if not isinstance(doc, (dict, list)) or not doc or draw(st.integers(0, 4)) == 0:
        return draw(VALUES)
    keys = list(doc) if isinstance(doc, dict) else list(range(len(doc)))
    key = draw(st.sampled_from(keys))
    copy = dict(doc) if isinstance(doc, dict) else list(doc)
    if draw(st.integers(0, 6)) == 0:
        del copy[key]
    else:
        copy[key] = draw(replaced_part(doc[key]))
    return copy


@st.composite
def edited_text(draw):
    """The demo file with a few line edits: dropped, repeated, swapped, cut, or a token spliced in."""
    lines = list(DEMO_LINES)
    for _ in range(draw(st.integers(1, 4))):
        i = draw(st.integers(0, len(lines) - 1))
        edit = draw(st.sampled_from(["drop", "repeat", "swap", "cut", "splice", "indent"]))
        if edit == "drop" and len(lines) > 1:
            del lines[i]
        elif edit == "repeat":
            lines.insert(i, lines[i])
        elif edit == "swap":
            j = draw(st.integers(0, len(lines) - 1))
            lines[i], lines[j] = lines[j], lines[i]
        elif edit == "cut":
            lines[i] = lines[i][: draw(st.integers(0, len(lines[i])))] + "\n"
        elif edit == "splice":
            at = draw(st.integers(0, len(lines[i])))
            lines[i] = lines[i][:at] + draw(st.sampled_from(WORDS) | st.text(max_size=4)) + lines[i][at:]
        else:
            lines[i] = " " * draw(st.integers(1, 3)) + lines[i]
    return "".join(lines).encode()


def test_the_demo_file_itself_is_clean():
    rs = build_ruleset([("demo.yaml", DEMO)], half_life_days=14.0)
    assert rs.problems == [] and len(rs.rules) == 3 and len(rs.segments) == 3


@FAST
@given(st.data())
def test_demo_with_a_part_replaced(data):
    assert_reported(dump(data.draw(replaced_part(DEMO_DATA))))


@FAST
@given(edited_text())
def test_demo_with_its_text_edited(text):
    assert_reported(text)


@FAST
@given(
    st.lists(
        st.sampled_from(WORDS + [":", ": ", "- ", "{", "}", "[", "]", ",", "\n", "\n  ", "\n    ", "#", "'", '"']),
        max_size=40,
    )
)
def test_yaml_like_text(tokens):
    assert_reported("".join(tokens).encode())


@FAST
@given(VALUES)
def test_random_documents(doc):
    assert_reported(dump({"rules": [doc]}) if isinstance(doc, dict) else dump(doc))
