"""The condition language shared by rule files and segment definitions.

A condition is a tree: `all: [...]`, `any: [...]`, `not: {...}`, or one leaf from a
fixed registry of typed conditions, each declaring its parameters as a msgspec
Struct. Everything is checked when the file is loaded; evaluation is pure (profile,
context, now in, verdict and reasons out). There is no scripting and no eval, anywhere.

Leaves (parameters in brackets are optional):
    always:      true                                 # e.g. a catch-all rule
    profile:     {field: dotted.path, op: eq|ne|gt|gte|lt|lte|in|contains|exists, [value]}
    segment:     {name, [min_score]}
    value_tier:  {in: [key, growth, low]}
    history:     {event, [category], min, days}       # e.g. 3 product views of shoes in 7 days
    interest:    {category, min}                      # decayed interest score (configured half-life)
    country | region | city | weather | device | utm_campaign | language:  {in: [...]}
    referrer | page:  {contains | prefix | equals: "..."}
    time_of_day: {from: "HH:MM", to: "HH:MM"}         # local time; may wrap midnight
    day_of_week: {in: [mon, tue, ...]}

`interest` decays a visitor's score to now with the profile's half-life, which the
caller passes to `compile_condition` (CLICKSTREAM_INTEREST_HALF_LIFE_DAYS): the rule
sees the score the profile shows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Annotated, Any, Callable, Literal, NamedTuple
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec
from msgspec import UNSET, Meta, UnsetType

from engine.profiles.model import DAY_MS, count_in_window, decay
from engine.rules.shapes import description, dotted, explain

MAX_DEPTH = 32
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
TIERS = ("key", "growth", "low")
OPS = ("eq", "ne", "gt", "gte", "lt", "lte", "in", "contains", "exists")
CONTEXT_SETS = ("country", "region", "city", "weather", "device", "utm_campaign", "language")
CONTEXT_TEXT = ("referrer", "page")


class ConditionError(ValueError):
    """A condition that cannot be compiled; `path` says where in the tree (e.g. when.all[2].history)."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path
        self.message = message


Horizon = Callable[[dict, dict, int], "int | None"]


@dataclass(frozen=True)
class Condition:
    """A compiled condition: `test(profile, context, now_ms) -> (bool, reasons)`.

    `horizon(profile, context, now_ms)` is the first moment after now at which the
    verdict may change with no new event (a window passing, a decay crossing a
    threshold), or None when time alone cannot change it. A tree's horizon is the
    earliest of its leaves': it changes only when a leaf does.
    """

    describe: str
    test: Callable[[dict, dict, int], tuple[bool, list[str]]]
    never: bool = False  # statically impossible (the linter warns)
    horizon: Horizon | None = None

    def evaluate(self, profile: dict, context: dict, now_ms: int) -> tuple[bool, list[str]]:
        return self.test(profile, context, now_ms)

    def next_change(self, profile: dict, context: dict, now_ms: int) -> int | None:
        return self.horizon(profile, context, now_ms) if self.horizon is not None else None


ALWAYS = Condition("always", lambda p, c, n: (True, ["always"]))


class At(NamedTuple):
    """Where a leaf is compiled, and what its test may need besides its parameters."""

    path: str
    half_life_days: float

    def error(self, message: str, part: str = "") -> ConditionError:
        return ConditionError(f"{self.path}.{part}" if part else self.path, message)


def _leaf(
    describe: str, predicate: Callable[[dict, dict, int], bool], never: bool = False, horizon: Horizon | None = None
) -> Condition:
    return Condition(
        describe, lambda p, c, n: (True, [describe]) if predicate(p, c, n) else (False, []), never, horizon
    )


def _earliest(children: list[Condition]) -> Horizon | None:
    timed = [ch for ch in children if ch.horizon is not None]
    if not timed:
        return None

    def horizon(p, c, n):
        moments = [m for m in (ch.horizon(p, c, n) for ch in timed) if m is not None]
        return min(moments) if moments else None

    return horizon


# --- parameters, declared -------------------------------------------------------------


class Params(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    pass


Names = Annotated[
    Annotated[list[str | int], Meta(min_length=1)] | str | int, Meta(description="a non-empty list of names")
]
Clock = Annotated[str, Meta(pattern=r"^\d\d:\d\d$", description="a time as HH:MM")]


class ProfileParams(Params):
    field: Annotated[str, Meta(min_length=1, description="a dotted path such as traits.first_name")]
    op: Annotated[Literal[OPS], Meta(description=f"one of {', '.join(OPS)}")]
    value: Any | UnsetType = UNSET


class SegmentParams(Params):
    name: Annotated[str, Meta(min_length=1, description="a segment name")]
    min_score: Annotated[float, Meta(ge=0, description="a number of at least 0")] = 0.0


class InParams(Params):
    in_: Names = msgspec.field(name="in")


class HistoryParams(Params):
    event: Annotated[str, Meta(min_length=1, description="an event type such as product_view")]
    min: Annotated[float, Meta(ge=1, description="a number of at least 1")]
    days: Annotated[
        float, Meta(ge=1, le=90, description="a number of days from 1 to 90 (profiles keep 90 days of history)")
    ]
    category: str | int | None = None


class InterestParams(Params):
    category: Annotated[str | int, Meta(description="a category")]
    min: Annotated[float, Meta(ge=0, description="a number of at least 0")]


class TextParams(Params):
    contains: str | None = None
    prefix: str | None = None
    equals: str | None = None


class TimeParams(Params):
    from_: Clock = msgspec.field(name="from")
    to: Clock


def _params(body: Any, kind: Any, at: At) -> Any:
    """`body` as the leaf's parameters, or ConditionError naming the parameter at fault."""
    try:
        return msgspec.convert(body, kind)
    except msgspec.ValidationError as exc:
        inside, message = explain(exc)
    fields = (
        {f.encode_name: f.type for f in msgspec.structs.fields(kind)}
        if isinstance(kind, type) and issubclass(kind, Params)
        else {}
    )
    if fields and message.startswith("unknown field"):
        message = f"unknown parameter {message[len('unknown field ') :]}; expected {', '.join(fields)}"
    elif fields and message.startswith("missing "):
        message = f"missing parameter {message[len('missing ') :]!r}"
    elif fields and not inside:
        message = f"expected parameters {', '.join(fields)}"
    elif len(inside) == 1 and description(fields.get(inside[0])):
        message = f"expected {description(fields[inside[0]])}"
    raise at.error(message, dotted(inside))


def _names(value: Any) -> tuple[str, ...]:
    return tuple(str(v).lower() for v in (value if isinstance(value, list) else [value]))


# --- the leaves ---------------------------------------------------------------------


def _always(p: bool, at: At) -> Condition:
    if p is not True:
        raise at.error("expected true (to switch a rule off, set enabled: false)")
    return ALWAYS


def _dig(data: Any, dotted_path: str) -> Any:
    for part in dotted_path.split("."):
        if not isinstance(data, dict) or part not in data:
            return None
        data = data[part]
    return data


def _compare(op: str, actual: Any, expected: Any) -> bool:
    if op == "exists":
        return actual is not None and actual != "" and actual != [] and actual != {}
    if actual is None:
        return op == "ne"
    try:
        if op == "eq":
            return actual == expected
        if op == "ne":
            return actual != expected
        if op == "in":
            return actual in expected
        if op == "contains":
            return expected in actual
        if op == "gt":
            return actual > expected
        if op == "gte":
            return actual >= expected
        if op == "lt":
            return actual < expected
        if op == "lte":
            return actual <= expected
    except TypeError:
        return False
    return False


def _profile(p: ProfileParams, at: At) -> Condition:
    if p.op != "exists" and p.value is UNSET:
        raise at.error(f"op {p.op} needs a value")
    if p.op == "in" and not isinstance(p.value, list):
        raise at.error("op in needs a list", "value")
    field, op, value = p.field, p.op, p.value
    return _leaf(
        f"profile {field} {op}{'' if op == 'exists' else f' {value!r}'}",
        lambda pr, c, n: _compare(op, _dig(pr, field), value),
    )


def _segment(p: SegmentParams, at: At) -> Condition:
    name, minimum = p.name, p.min_score
    return _leaf(
        f"in segment {name}" + (f" (score >= {minimum})" if minimum else ""),
        lambda pr, c, n: name in (pr.get("segments") or {}) and pr["segments"][name] >= minimum,
    )


def _value_tier(p: InParams, at: At) -> Condition:
    tiers = _names(p.in_)
    bad = [t for t in tiers if t not in TIERS]
    if bad:
        raise at.error(f"unknown tier {bad[0]!r}; tiers are {', '.join(TIERS)}", "in")
    return _leaf(f"value tier in {list(tiers)}", lambda pr, c, n: (pr.get("value") or {}).get("tier") in tiers)


def _history(p: HistoryParams, at: At) -> Condition:
    key = f"{p.event}:{p.category}" if p.category not in (None, "") else p.event
    minimum, days = p.min, int(p.days)

    def horizon(pr, c, n):
        """While it holds: the day boundary at which enough of the oldest counted days fall out."""
        if "daily" not in pr:
            return None
        today = n // DAY_MS
        counted = [
            (int(day), bucket[key])
            for day, bucket in pr["daily"].items()
            if key in bucket and today - int(day) < days and bucket[key]
        ]
        total = sum(count for _, count in counted)
        if total < minimum:
            return None  # counts only fall as time passes
        counted.sort()
        for day, count in counted:
            total -= count
            if total < minimum:
                return (day + days) * DAY_MS
        return None

    return _leaf(
        f"{key} at least {minimum:g} times in {p.days:g} days",
        lambda pr, c, n: "daily" in pr and count_in_window(pr, key, days, n) >= minimum,
        horizon=horizon,
    )


def _interest(p: InterestParams, at: At) -> Condition:
    category, minimum, half_life = str(p.category), p.min, at.half_life_days

    def test(pr, c, n):
        score, ts = (pr.get("interests") or {}).get(category, (0.0, n))
        return decay(score, ts, n, half_life) >= minimum

    def horizon(pr, c, n):
        """While it holds: when the decayed score falls below the threshold (score * 2^-t/h = min)."""
        score, ts = (pr.get("interests") or {}).get(category, (0.0, n))
        if minimum <= 0 or score <= 0 or decay(score, ts, n, half_life) < minimum:
            return None
        crossing = ts + half_life * DAY_MS * math.log2(score / minimum)
        return max(int(crossing) + 1, n + 1)

    return _leaf(f"interest in {category} >= {minimum:g}", test, horizon=horizon)


def _context_set(name: str) -> Callable[[InParams, At], Condition]:
    def build(p: InParams, at: At) -> Condition:
        values = _names(p.in_)
        return _leaf(f"{name} in {list(values)}", lambda pr, c, n: str(c.get(name, "")).lower() in values)

    return build


def _context_text(name: str) -> Callable[[TextParams, At], Condition]:
    key = "url" if name == "page" else name

    def build(p: TextParams, at: At) -> Condition:
        given = {how: text for how, text in msgspec.structs.asdict(p).items() if text is not None}
        if len(given) != 1:
            raise at.error("expected exactly one of contains, prefix, equals with a text")
        ((how, text),) = given.items()
        checks = {
            "contains": lambda v: text in v,
            "prefix": lambda v: v.startswith(text),
            "equals": lambda v: v == text,
        }
        return _leaf(f"{name} {how} {text!r}", lambda pr, c, n: checks[how](str(c.get(key) or "")))

    return build


def _clock(value: str, at: At, part: str) -> int:
    hours, minutes = int(value[:2]), int(value[3:])
    if hours > 24 or minutes > 59 or (hours == 24 and minutes):
        raise at.error("expected a time between 00:00 and 24:00", part)
    return hours * 60 + minutes


def local_time(context: dict, now_ms: int) -> datetime:
    """The visitor's local time: context `timezone` (IANA name), else UTC."""
    zone = timezone.utc
    name = context.get("timezone")
    if isinstance(name, str):
        try:
            zone = ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            pass
    return datetime.fromtimestamp(now_ms / 1000, zone)


def _minutes(context: dict, now_ms: int) -> int:
    given = context.get("local_time")
    if isinstance(given, str) and len(given) == 5 and given[2] == ":" and (given[:2] + given[3:]).isdigit():
        return int(given[:2]) * 60 + int(given[3:])
    moment = local_time(context, now_ms)
    return moment.hour * 60 + moment.minute


def _time_of_day(p: TimeParams, at: At) -> Condition:
    start, end = _clock(p.from_, at, "from"), _clock(p.to, at, "to")
    inside = (lambda m: start <= m < end) if start <= end else (lambda m: m >= start or m < end)
    return _leaf(f"local time {p.from_}-{p.to}", lambda pr, c, n: inside(_minutes(c, n)), never=start == end)


def _day_of_week(p: InParams, at: At) -> Condition:
    days = _names(p.in_)
    bad = [d for d in days if d[:3] not in DAYS]
    if bad:
        raise at.error(f"unknown day {bad[0]!r}", "in")
    wanted = {d[:3] for d in days}

    def test(pr, c, n):
        given = str(c.get("day_of_week", "")).lower()[:3]
        return (given or DAYS[local_time(c, n).weekday()]) in wanted

    return _leaf(f"day of week in {sorted(wanted)}", test)


class Leaf(NamedTuple):
    params: Any  # the parameters' type
    build: Callable[[Any, At], Condition]


LEAVES: dict[str, Leaf] = {
    "always": Leaf(bool, _always),
    "profile": Leaf(ProfileParams, _profile),
    "segment": Leaf(SegmentParams, _segment),
    "value_tier": Leaf(InParams, _value_tier),
    "history": Leaf(HistoryParams, _history),
    "interest": Leaf(InterestParams, _interest),
    "time_of_day": Leaf(TimeParams, _time_of_day),
    "day_of_week": Leaf(InParams, _day_of_week),
    **{name: Leaf(InParams, _context_set(name)) for name in CONTEXT_SETS},
    **{name: Leaf(TextParams, _context_text(name)) for name in CONTEXT_TEXT},
}


def _all(children: list[Condition]) -> Condition:
    def test(p, c, n):
        reasons = []
        for child in children:
            ok, why = child.test(p, c, n)
            if not ok:
                return False, []
            reasons += why
        return True, reasons

    return Condition(
        "all(" + ", ".join(ch.describe for ch in children) + ")",
        test,
        any(ch.never for ch in children),
        _earliest(children),
    )


def _any(children: list[Condition]) -> Condition:
    def test(p, c, n):
        for child in children:
            ok, why = child.test(p, c, n)
            if ok:
                return True, why
        return False, []

    return Condition(
        "any(" + ", ".join(ch.describe for ch in children) + ")",
        test,
        all(ch.never for ch in children),
        _earliest(children),
    )


def _not(child: Condition) -> Condition:
    def test(p, c, n):
        ok, _ = child.test(p, c, n)
        return (False, []) if ok else (True, [f"not {child.describe}"])

    return Condition(f"not {child.describe}", test, horizon=child.horizon)


def compile_condition(tree: Any, *, half_life_days: float, path: str = "when") -> Condition:
    """Compiles a condition tree (parsed YAML) or raises ConditionError naming where.

    `half_life_days` is the profile's interest half-life, for `interest` leaves."""
    return _compile(tree, At(path, half_life_days), 0)


def _compile(tree: Any, at: At, depth: int) -> Condition:
    if depth > MAX_DEPTH:
        raise at.error(f"nested more than {MAX_DEPTH} levels")
    if not isinstance(tree, dict) or len(tree) != 1:
        raise at.error("expected exactly one of all, any, not, or a condition type")
    ((kind, body),) = tree.items()
    if kind in ("all", "any"):
        if not isinstance(body, list) or not body:
            raise at.error("expected a non-empty list of conditions", kind)
        children = [
            _compile(child, at._replace(path=f"{at.path}.{kind}[{i}]"), depth + 1) for i, child in enumerate(body)
        ]
        return _all(children) if kind == "all" else _any(children)
    if kind == "not":
        return _not(_compile(body, at._replace(path=f"{at.path}.not"), depth + 1))
    leaf = LEAVES.get(kind) if isinstance(kind, str) else None
    if leaf is None:
        raise at.error(f"unknown condition type {str(kind)[:40]!r}; known: all, any, not, {', '.join(sorted(LEAVES))}")
    inner = at._replace(path=f"{at.path}.{kind}")
    return leaf.build(_params(body, leaf.params, inner), inner)


def segments_named(tree: Any) -> set[str]:
    """Segment names a (valid) condition tree refers to, for the linter."""
    if isinstance(tree, dict):
        names = set()
        for kind, body in tree.items():
            if kind == "segment" and isinstance(body, dict) and isinstance(body.get("name"), str):
                names.add(body["name"])
            elif kind in ("all", "any") and isinstance(body, list):
                for child in body:
                    names |= segments_named(child)
            elif kind == "not":
                names |= segments_named(body)
        return names
    return set()


__all__ = [
    "ALWAYS",
    "Condition",
    "ConditionError",
    "compile_condition",
    "segments_named",
    "local_time",
    "LEAVES",
    "DAY_MS",
]
