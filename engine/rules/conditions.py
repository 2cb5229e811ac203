"""The condition language shared by rule files and segment definitions.

A condition is a tree: `all: [...]`, `any: [...]`, `not: {...}`, or one leaf from a
fixed registry of typed conditions, each declaring its parameters. Everything is
checked when the file is loaded; evaluation is pure (profile, context, now in,
verdict and reasons out). There is no scripting and no eval, anywhere.

Leaves (parameters in brackets are optional):
    profile:     {field: dotted.path, op: eq|ne|gt|gte|lt|lte|in|contains|exists, [value]}
    segment:     {name, [min_score]}
    value_tier:  {in: [key, growth, low]}
    history:     {event, [category], min, days}       # e.g. 3 product views of shoes in 7 days
    interest:    {category, min}                      # decayed interest score
    country | region | city | weather | device | utm_campaign | language:  {in: [...]}
    referrer | page:  {contains | prefix | equals: "..."}
    time_of_day: {from: "HH:MM", to: "HH:MM"}         # local time; may wrap midnight
    day_of_week: {in: [mon, tue, ...]}
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from engine.profiles.model import DAY_MS, count_in_window, decay

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


@dataclass(frozen=True)
class Condition:
    """A compiled condition: `test(profile, context, now_ms) -> (bool, reasons)`."""

    describe: str
    test: Callable[[dict, dict, int], tuple[bool, list[str]]]
    never: bool = False  # statically impossible (the linter warns)

    def evaluate(self, profile: dict, context: dict, now_ms: int) -> tuple[bool, list[str]]:
        return self.test(profile, context, now_ms)


def _leaf(describe: str, predicate: Callable[[dict, dict, int], bool], never: bool = False) -> Condition:
    return Condition(describe, lambda p, c, n: (True, [describe]) if predicate(p, c, n) else (False, []), never)


def _params(raw: Any, path: str, required: tuple[str, ...], optional: tuple[str, ...] = ()) -> dict:
    if not isinstance(raw, dict):
        raise ConditionError(path, f"expected parameters {', '.join(required + optional)}")
    unknown = set(raw) - set(required) - set(optional)
    if unknown:
        raise ConditionError(path, f"unknown parameter {sorted(map(str, unknown))[0]!r}; expected {', '.join(required + optional)}")
    missing = [name for name in required if name not in raw]
    if missing:
        raise ConditionError(path, f"missing parameter {missing[0]!r}")
    return raw


def _strings(value: Any, path: str) -> tuple[str, ...]:
    items = value if isinstance(value, list) else [value]
    if not items or not all(isinstance(v, (str, int)) and not isinstance(v, bool) for v in items):
        raise ConditionError(path, "expected a non-empty list of names")
    return tuple(str(v).lower() for v in items)


def _number(value: Any, path: str, minimum: float = 0) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < minimum:
        raise ConditionError(path, f"expected a number of at least {minimum}")
    return value


def _dig(data: Any, dotted: str) -> Any:
    for part in dotted.split("."):
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


def _profile(raw, path):
    params = _params(raw, path, ("field", "op"), ("value",))
    field, op = params["field"], params["op"]
    if not isinstance(field, str) or not field:
        raise ConditionError(f"{path}.field", "expected a dotted path such as traits.first_name")
    if op not in OPS:
        raise ConditionError(f"{path}.op", f"expected one of {', '.join(OPS)}")
    if op != "exists" and "value" not in params:
        raise ConditionError(path, f"op {op} needs a value")
    if op == "in" and not isinstance(params.get("value"), list):
        raise ConditionError(f"{path}.value", "op in needs a list")
    value = params.get("value")
    return _leaf(f"profile {field} {op}{'' if op == 'exists' else f' {value!r}'}",
                 lambda p, c, n: _compare(op, _dig(p, field), value))


def _segment(raw, path):
    params = _params(raw, path, ("name",), ("min_score",))
    name = params["name"]
    if not isinstance(name, str) or not name:
        raise ConditionError(f"{path}.name", "expected a segment name")
    minimum = _number(params.get("min_score", 0), f"{path}.min_score")
    return _leaf(f"in segment {name}" + (f" (score >= {minimum})" if minimum else ""),
                 lambda p, c, n: (p.get("segments") or {}).get(name, -1) >= minimum if name in (p.get("segments") or {}) else False)


def _value_tier(raw, path):
    tiers = _strings(_params(raw, path, ("in",))["in"], f"{path}.in")
    bad = [t for t in tiers if t not in TIERS]
    if bad:
        raise ConditionError(f"{path}.in", f"unknown tier {bad[0]!r}; tiers are {', '.join(TIERS)}")
    return _leaf(f"value tier in {list(tiers)}", lambda p, c, n: (p.get("value") or {}).get("tier") in tiers)


def _history(raw, path):
    params = _params(raw, path, ("event", "min", "days"), ("category",))
    event = params["event"]
    if not isinstance(event, str) or not event:
        raise ConditionError(f"{path}.event", "expected an event type such as product_view")
    minimum = _number(params["min"], f"{path}.min", 1)
    days = _number(params["days"], f"{path}.days", 1)
    if days > 90:
        raise ConditionError(f"{path}.days", "profiles keep 90 days of history")
    key = f"{event}:{params['category']}" if params.get("category") else event
    return _leaf(f"{key} at least {minimum:g} times in {days:g} days",
                 lambda p, c, n: count_in_window(p, key, int(days), n) >= minimum if "daily" in p else False)


def _interest(raw, path):
    params = _params(raw, path, ("category", "min"))
    category, minimum = str(params["category"]), _number(params["min"], f"{path}.min")

    def test(p, c, n):
        score, ts = (p.get("interests") or {}).get(category, (0.0, n))
        return decay(score, ts, n, 14.0) >= minimum
    return _leaf(f"interest in {category} >= {minimum:g}", test)


def _context_set(name):
    def build(raw, path):
        values = _strings(_params(raw, path, ("in",))["in"], f"{path}.in")
        return _leaf(f"{name} in {list(values)}", lambda p, c, n: str(c.get(name, "")).lower() in values)
    return build


def _context_text(name):
    key = "url" if name == "page" else name

    def build(raw, path):
        params = _params(raw, path, (), ("contains", "prefix", "equals"))
        if len(params) != 1 or not isinstance(next(iter(params.values())), str):
            raise ConditionError(path, "expected exactly one of contains, prefix, equals with a text")
        (how, text), = params.items()
        checks = {"contains": lambda v: text in v, "prefix": lambda v: v.startswith(text), "equals": lambda v: v == text}
        return _leaf(f"{name} {how} {text!r}", lambda p, c, n: checks[how](str(c.get(key) or "")))
    return build


def _clock(value: Any, path: str) -> int:
    if not isinstance(value, str) or len(value) != 5 or value[2] != ":" or not (value[:2] + value[3:]).isdigit():
        raise ConditionError(path, "expected a time as HH:MM")
    hours, minutes = int(value[:2]), int(value[3:])
    if hours > 24 or minutes > 59 or (hours == 24 and minutes):
        raise ConditionError(path, "expected a time between 00:00 and 24:00")
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


def _time_of_day(raw, path):
    params = _params(raw, path, ("from", "to"))
    start, end = _clock(params["from"], f"{path}.from"), _clock(params["to"], f"{path}.to")
    inside = (lambda m: start <= m < end) if start <= end else (lambda m: m >= start or m < end)
    return _leaf(f"local time {params['from']}-{params['to']}", lambda p, c, n: inside(_minutes(c, n)), never=start == end)


def _day_of_week(raw, path):
    days = _strings(_params(raw, path, ("in",))["in"], f"{path}.in")
    bad = [d for d in days if d[:3] not in DAYS]
    if bad:
        raise ConditionError(f"{path}.in", f"unknown day {bad[0]!r}")
    wanted = {d[:3] for d in days}

    def test(p, c, n):
        given = str(c.get("day_of_week", "")).lower()[:3]
        return (given or DAYS[local_time(c, n).weekday()]) in wanted
    return _leaf(f"day of week in {sorted(wanted)}", test)


LEAVES: dict[str, Callable[[Any, str], Condition]] = {
    "profile": _profile, "segment": _segment, "value_tier": _value_tier, "history": _history,
    "interest": _interest, "time_of_day": _time_of_day, "day_of_week": _day_of_week,
    **{name: _context_set(name) for name in CONTEXT_SETS},
    **{name: _context_text(name) for name in CONTEXT_TEXT},
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
    return Condition("all(" + ", ".join(ch.describe for ch in children) + ")", test, any(ch.never for ch in children))


def _any(children: list[Condition]) -> Condition:
    def test(p, c, n):
        for child in children:
            ok, why = child.test(p, c, n)
            if ok:
                return True, why
        return False, []
    return Condition("any(" + ", ".join(ch.describe for ch in children) + ")", test, all(ch.never for ch in children))


def _not(child: Condition) -> Condition:
    def test(p, c, n):
        ok, _ = child.test(p, c, n)
        return (False, []) if ok else (True, [f"not {child.describe}"])
    return Condition(f"not {child.describe}", test)


def compile_condition(tree: Any, path: str = "when", depth: int = 0) -> Condition:
    """Compiles a condition tree (parsed YAML) or raises ConditionError naming where."""
    if depth > MAX_DEPTH:
        raise ConditionError(path, f"nested more than {MAX_DEPTH} levels")
    if not isinstance(tree, dict) or len(tree) != 1:
        raise ConditionError(path, "expected exactly one of all, any, not, or a condition type")
    (kind, body), = tree.items()
    if kind in ("all", "any"):
        if not isinstance(body, list) or not body:
            raise ConditionError(f"{path}.{kind}", "expected a non-empty list of conditions")
        children = [compile_condition(child, f"{path}.{kind}[{i}]", depth + 1) for i, child in enumerate(body)]
        return _all(children) if kind == "all" else _any(children)
    if kind == "not":
        return _not(compile_condition(body, f"{path}.not", depth + 1))
    if kind not in LEAVES:
        raise ConditionError(path, f"unknown condition type {str(kind)[:40]!r}; known: all, any, not, {', '.join(sorted(LEAVES))}")
    return LEAVES[kind](body, f"{path}.{kind}")


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


__all__ = ["Condition", "ConditionError", "compile_condition", "segments_named", "local_time", "LEAVES", "DAY_MS"]
