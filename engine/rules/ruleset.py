"""Rule files: loading, checking and the compiled rule set. Pure apart from reading files.

The rules folder (CLICKSTREAM_RULES) holds YAML files; each may define any of

    slots:      the content catalog: per slot its default and its content items
    rules:      marketers' rules: id, description, priority, enabled, schedule, when, then
    segments:   named audiences over the same condition language

An example (rules/examples/ in the repository has a complete set):

    slots:
      hero:
        default: hero-welcome
        content:
          hero-welcome: {html: "<h2>Welcome back, {first_name|there}</h2>"}
          umbrella: {html: "<h2>Rain today? Umbrellas 20% off</h2>", topics: [rain-gear]}
    rules:
      - id: umbrella-norway-rain
        priority: 100
        when: {all: [{country: {in: [NO]}}, {weather: {in: [rain]}}]}
        then: {hero: {variants: [{content: umbrella, weight: 1}], control: 10}}
    segments:
      - name: shoe-lovers
        when: {interest: {category: shoes, min: 3}}
        score: {interest: shoes}

Every problem carries the file, line and rule id; errors keep a file's rules out
of the set, warnings do not. Nothing in a file is ever executed.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable

from engine.rules.conditions import CONTEXT_SETS, CONTEXT_TEXT, Condition, ConditionError, compile_condition, segments_named
from engine.rules.yaml_lines import Located, LocatedList, YamlError, load

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")
RULE_KEYS = ("id", "description", "priority", "enabled", "schedule", "when", "then")
SEGMENT_KEYS = ("name", "description", "when", "score")
SLOT_KEYS = ("default", "content", "model")
CONTENT_KEYS = ("html", "text", "topics", "language", "data")
MODEL_KEYS = ("variants", "min_impressions", "exploration", "holdout")
SCORES = ("clv", "revenue", "orders", "sessions", "interest", "count")
CONTEXT_ONLY = set(CONTEXT_SETS) | set(CONTEXT_TEXT) | {"time_of_day", "day_of_week"}


@dataclass(frozen=True)
class Problem:
    file: str
    line: int
    rule_id: str | None
    message: str
    level: str = "error"  # or "warning"

    def __str__(self) -> str:
        where = f" [{self.rule_id}]" if self.rule_id else ""
        return f"{self.file}:{self.line}:{where} {self.level}: {self.message}"

    def to_json(self) -> dict:
        return {"file": self.file, "line": self.line, "rule_id": self.rule_id, "level": self.level, "message": self.message}


@dataclass(frozen=True)
class Content:
    id: str
    template: str
    topics: tuple[str, ...] = ()
    language: str | None = None
    data: Any = None


@dataclass(frozen=True)
class ModelSpec:
    """A model-driven slot: the bandit chooses among `variants` (content ids)."""

    variants: tuple[str, ...]
    min_impressions: int = 200
    exploration: float = 0.1
    holdout: float = 5.0  # percent of visitors that always get the default


@dataclass(frozen=True)
class Slot:
    name: str
    default: str
    content: dict[str, Content]
    model: ModelSpec | None = None


@dataclass(frozen=True)
class Variant:
    content: str
    weight: float


@dataclass(frozen=True)
class Choice:
    """What a rule does to one slot: a weighted split, with a control share getting the default."""

    slot: str
    variants: tuple[Variant, ...]
    control: float = 0.0  # percent


@dataclass(frozen=True)
class Rule:
    id: str
    description: str
    priority: int
    enabled: bool
    start_ms: int | None
    end_ms: int | None
    condition: Condition
    choices: tuple[Choice, ...]
    file: str
    line: int

    def live(self, now_ms: int) -> bool:
        return self.enabled and (self.start_ms is None or now_ms >= self.start_ms) and (self.end_ms is None or now_ms < self.end_ms)


@dataclass(frozen=True)
class Segment:
    name: str
    description: str
    condition: Condition
    score: tuple  # ("constant",) | ("clv",) | ("interest", category) | ("count", key, days) ...
    file: str
    line: int
    uses_value: bool = False  # needs the person's value (tier or CLV) computed first


@dataclass
class RuleSet:
    rules: list[Rule] = field(default_factory=list)        # highest priority first
    slots: dict[str, Slot] = field(default_factory=dict)
    segments: list[Segment] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    fingerprint: str = ""

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.level == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.level == "warning"]

    def rules_for(self, slot: str) -> list[Rule]:
        return [r for r in self.rules if any(c.slot == slot for c in r.choices)]


class _FileProblems(Exception):
    pass


class _Reader:
    """Collects the problems of one file while its parts are compiled."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.problems: list[Problem] = []

    def error(self, line: int, message: str, rule_id: str | None = None, level: str = "error") -> None:
        self.problems.append(Problem(self.file, line, rule_id, message, level))

    def warn(self, line: int, message: str, rule_id: str | None = None) -> None:
        self.error(line, message, rule_id, "warning")


def line_at(root: Any, path: str) -> int:
    """The line of the deepest part of `path` (e.g. when.all[2].history.min) inside `root`."""
    line = getattr(root, "line", 1)
    node = root
    for name, index in re.findall(r"([^.\[\]]+)|\[(\d+)\]", path):
        if name and isinstance(node, Located) and name in node:
            line, node = node.line_of(name), node[name]
        elif index and isinstance(node, LocatedList) and int(index) < len(node):
            line, node = node.line_of(int(index)), node[int(index)]
        else:
            break
    return line


ALWAYS = Condition("always", lambda p, c, n: (True, ["always"]))


def _when(raw: Any, node: Located, reader: _Reader, owner: str | None) -> Condition | None:
    if raw == "always":
        return ALWAYS
    try:
        return compile_condition(raw, "when")
    except ConditionError as exc:
        reader.error(line_at(node, exc.path), exc.message + f" (at {exc.path})", owner)
    except RecursionError:
        reader.error(node.line_of("when"), "condition nested too deeply", owner)
    return None


def _timestamp(value: Any) -> int:
    if isinstance(value, datetime):
        moment = value
    elif hasattr(value, "isoformat") and not isinstance(value, str):  # a YAML date
        moment = datetime(value.year, value.month, value.day)
    elif isinstance(value, str):
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    else:
        raise ValueError("expected a date or time such as 2026-12-01 or 2026-12-01T08:00:00Z")
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return int(moment.timestamp() * 1000)


def _unknown_keys(node: Located, allowed: tuple[str, ...], reader: _Reader, what: str, owner: str | None) -> None:
    for key in node:
        if key not in allowed:
            reader.error(node.line_of(key), f"unknown {what} field {str(key)[:40]!r}; expected {', '.join(allowed)}", owner)


def _number(node: Located, key: str, default: float, reader: _Reader, owner: str | None, low: float, high: float) -> float:
    value = node.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        reader.error(node.line_of(key), f"{key}: expected a number from {low:g} to {high:g}", owner)
        return default
    return value


# --- slots (the content catalog) ---------------------------------------------------


def _content(cid: str, raw: Any, line: int, reader: _Reader, slot: str) -> Content | None:
    if isinstance(raw, str):
        return Content(cid, raw)
    if not isinstance(raw, Located):
        reader.error(line, f"content {cid!r} of slot {slot!r}: expected text or a mapping with html", slot)
        return None
    _unknown_keys(raw, CONTENT_KEYS, reader, "content", slot)
    template = raw.get("html", raw.get("text"))
    if not isinstance(template, str):
        reader.error(raw.line, f"content {cid!r}: needs html (or text)", slot)
        return None
    topics = raw.get("topics", [])
    if isinstance(topics, str):
        topics = [topics]
    if not isinstance(topics, list) or not all(isinstance(t, str) for t in topics):
        reader.error(raw.line_of("topics"), f"content {cid!r}: topics must be a list of names", slot)
        topics = []
    language = raw.get("language")
    if language is not None and not isinstance(language, str):
        reader.error(raw.line_of("language"), f"content {cid!r}: language must be a tag such as nb or en", slot)
        language = None
    return Content(cid, template, tuple(t.lower() for t in topics), language.lower() if language else None, raw.get("data"))


def _model(raw: Any, slot: str, content: dict, reader: _Reader) -> ModelSpec | None:
    if not isinstance(raw, Located):
        reader.error(getattr(raw, "line", 1), f"slot {slot!r}: model needs variants", slot)
        return None
    _unknown_keys(raw, MODEL_KEYS, reader, "model", slot)
    variants = raw.get("variants")
    if not isinstance(variants, list) or len(variants) < 2 or not all(isinstance(v, str) for v in variants):
        reader.error(raw.line_of("variants"), f"slot {slot!r}: model variants must list at least two content ids", slot)
        return None
    for i, v in enumerate(variants):
        if v not in content:
            reader.error(variants.line_of(i), f"slot {slot!r}: model variant {v!r} is not content of this slot", slot)
            return None
    return ModelSpec(
        tuple(variants),
        int(_number(raw, "min_impressions", 200, reader, slot, 0, 10**9)),
        float(_number(raw, "exploration", 0.1, reader, slot, 0, 1)),
        float(_number(raw, "holdout", 5.0, reader, slot, 0, 50)),
    )


def _slots(raw: Any, line: int, reader: _Reader) -> dict[str, Slot]:
    if not isinstance(raw, Located):
        reader.error(line, "slots: expected a mapping of slot name to its default and content")
        return {}
    out = {}
    for name, body in raw.items():
        where = raw.line_of(name)
        if not isinstance(name, str) or not NAME.match(name):
            reader.error(where, f"slot name {str(name)[:40]!r}: letters, digits, _ . : - only")
            continue
        if not isinstance(body, Located):
            reader.error(where, f"slot {name!r}: expected default and content", name)
            continue
        _unknown_keys(body, SLOT_KEYS, reader, "slot", name)
        items = body.get("content")
        if not isinstance(items, Located) or not items:
            reader.error(body.line_of("content"), f"slot {name!r}: content must map content ids to content", name)
            continue
        content = {}
        for cid, item in items.items():
            compiled = _content(str(cid), item, items.line_of(cid), reader, name)
            if compiled:
                content[str(cid)] = compiled
        default = body.get("default")
        if default not in content:
            reader.error(body.line_of("default"), f"slot {name!r}: default {default!r} is not one of its content ids", name)
            continue
        model = _model(body["model"], name, content, reader) if "model" in body else None
        out[name] = Slot(name, default, content, model)
    return out


# --- rules ----------------------------------------------------------------------


def _choice(slot: str, raw: Any, line: int, reader: _Reader, rule_id: str) -> Choice | None:
    if isinstance(raw, str):
        return Choice(slot, (Variant(raw, 1.0),))
    if not isinstance(raw, Located):
        reader.error(line, f"then.{slot}: expected a content id, or variants with weights", rule_id)
        return None
    _unknown_keys(raw, ("content", "variants", "control"), reader, f"then.{slot}", rule_id)
    control = _number(raw, "control", 0, reader, rule_id, 0, 100)
    if "content" in raw and "variants" not in raw:
        if not isinstance(raw["content"], str):
            reader.error(raw.line_of("content"), f"then.{slot}.content: expected a content id", rule_id)
            return None
        return Choice(slot, (Variant(raw["content"], 1.0),), control)
    variants = raw.get("variants")
    if not isinstance(variants, LocatedList) or not variants:
        reader.error(raw.line_of("variants"), f"then.{slot}: expected content, or a list of variants", rule_id)
        return None
    out = []
    for i, v in enumerate(variants):
        if not isinstance(v, Located) or not isinstance(v.get("content"), str):
            reader.error(variants.line_of(i), f"then.{slot}.variants[{i}]: expected {{content: ID, weight: N}}", rule_id)
            return None
        _unknown_keys(v, ("content", "weight"), reader, "variant", rule_id)
        out.append(Variant(v["content"], float(_number(v, "weight", 1, reader, rule_id, 0, 10**6))))
    if sum(v.weight for v in out) <= 0:
        reader.error(variants.line, f"then.{slot}: the variant weights add up to 0", rule_id)
        return None
    return Choice(slot, tuple(out), control)


def _named(raw: Any, line: int, reader: _Reader, what: str, key: str, allowed: tuple[str, ...]) -> str | None:
    """The name of a rule or segment entry, once its shape is checked; None (and an error) if it has none."""
    if not isinstance(raw, Located):
        reader.error(line, f"a {what} must be a mapping with {key}, when and {'then' if what == 'rule' else 'score'}")
        return None
    name = raw.get(key)
    if not isinstance(name, str) or not NAME.match(name):
        reader.error(raw.line_of(key), f"{what} {key}: expected a name of letters, digits, _ . : - (up to 64)")
        return None
    _unknown_keys(raw, allowed, reader, what, name)
    return name


def _rule(raw: Any, line: int, reader: _Reader) -> Rule | None:
    before = len(reader.problems)
    rule_id = _named(raw, line, reader, "rule", "id", RULE_KEYS)
    if rule_id is None:
        return None
    description = raw.get("description", "")
    if not isinstance(description, str):
        reader.error(raw.line_of("description"), "description: expected text", rule_id)
    priority = raw.get("priority", 0)
    if isinstance(priority, bool) or not isinstance(priority, int) or abs(priority) > 10**6:
        reader.error(raw.line_of("priority"), "priority: expected a whole number (higher wins)", rule_id)
        priority = 0
    enabled = raw.get("enabled", True)
    if not isinstance(enabled, bool):
        reader.error(raw.line_of("enabled"), "enabled: expected true or false", rule_id)
    start = end = None
    schedule = raw.get("schedule")
    if schedule is not None:
        if not isinstance(schedule, Located) or not set(schedule) <= {"start", "end"}:
            reader.error(raw.line_of("schedule"), "schedule: expected start and/or end", rule_id)
        else:
            try:
                start = _timestamp(schedule["start"]) if "start" in schedule else None
                end = _timestamp(schedule["end"]) if "end" in schedule else None
            except (ValueError, TypeError, OverflowError) as exc:
                reader.error(schedule.line, f"schedule: {exc}", rule_id)
            if start is not None and end is not None and end <= start:
                reader.error(schedule.line, "schedule: end is not after start", rule_id)
    if "when" not in raw:
        reader.error(raw.line, "missing when: a condition tree, or always", rule_id)
    condition = _when(raw.get("when"), raw, reader, rule_id) if "when" in raw else None
    then = raw.get("then")
    choices = []
    if not isinstance(then, Located) or not then:
        reader.error(raw.line_of("then"), "then: expected a mapping of slot name to content or variants", rule_id)
    else:
        for slot, body in then.items():
            choice = _choice(str(slot), body, then.line_of(slot), reader, rule_id)
            if choice:
                choices.append(choice)
    if any(p.level == "error" for p in reader.problems[before:]) or condition is None:
        return None
    return Rule(rule_id, description if isinstance(description, str) else "", priority, enabled is True,
                start, end, condition, tuple(choices), reader.file, raw.line)


# --- segments ---------------------------------------------------------------------


def _score(raw: Any, line: int, reader: _Reader, name: str) -> tuple | None:
    if raw is None:
        return ("constant",)
    if isinstance(raw, str) and raw in ("clv", "revenue", "orders", "sessions"):
        return (raw,)
    if isinstance(raw, Located) and len(raw) == 1:
        (kind, body), = raw.items()
        if kind == "interest" and isinstance(body, str):
            return ("interest", body)
        if kind == "count" and isinstance(body, Located) and isinstance(body.get("event"), str) \
                and isinstance(body.get("days"), int) and 1 <= body["days"] <= 90:
            key = f"{body['event']}:{body['category']}" if body.get("category") else body["event"]
            return ("count", key, body["days"])
    reader.error(line, "score: expected clv, revenue, orders, sessions, {interest: CATEGORY} "
                       "or {count: {event, days, category?}}", name)
    return None


def _segment(raw: Any, line: int, reader: _Reader) -> Segment | None:
    before = len(reader.problems)
    name = _named(raw, line, reader, "segment", "name", SEGMENT_KEYS)
    if name is None:
        return None
    condition = _when(raw.get("when"), raw, reader, name) if "when" in raw else None
    if "when" not in raw:
        reader.error(raw.line, "missing when", name)
    score = _score(raw.get("score"), raw.line_of("score"), reader, name)
    if condition is not None:
        used = _leaf_kinds(raw.get("when")) & CONTEXT_ONLY
        if used:
            reader.warn(raw.line_of("when"), f"segments are kept from events, without a request's context; "
                                             f"{', '.join(sorted(used))} never match here", name)
    if any(p.level == "error" for p in reader.problems[before:]) or condition is None or score is None:
        return None
    description = raw.get("description", "")
    uses_value = "value_tier" in _leaf_kinds(raw.get("when")) or score[0] == "clv"
    return Segment(name, description if isinstance(description, str) else "", condition, score, reader.file, raw.line, uses_value)


def _leaf_kinds(tree: Any) -> set[str]:
    if not isinstance(tree, dict):
        return set()
    kinds = set()
    for kind, body in tree.items():
        if kind in ("all", "any") and isinstance(body, list):
            for child in body:
                kinds |= _leaf_kinds(child)
        elif kind == "not":
            kinds |= _leaf_kinds(body)
        else:
            kinds.add(kind)
    return kinds


# --- files and the whole set --------------------------------------------------------


def parse_file(name: str, data: bytes) -> tuple[list[Rule], dict[str, Slot], list[Segment], list[Problem], dict]:
    """One file's parts and problems; never raises on any input."""
    reader = _Reader(name)
    try:
        doc = load(data)
    except YamlError as exc:
        reader.error(exc.line, exc.message)
        return [], {}, [], reader.problems, {}
    if doc is None:
        return [], {}, [], [], {}
    if not isinstance(doc, Located):
        reader.error(getattr(doc, "line", 1), "expected a mapping with rules, slots and/or segments")
        return [], {}, [], reader.problems, {}
    _unknown_keys(doc, ("rules", "slots", "segments"), reader, "top-level", None)
    rules, segments, raw_rules = [], [], {}
    slots = _slots(doc["slots"], doc.line_of("slots"), reader) if "slots" in doc else {}
    for key, build, into in (("rules", _rule, rules), ("segments", _segment, segments)):
        if key not in doc:
            continue
        items = doc[key]
        if not isinstance(items, LocatedList):
            reader.error(doc.line_of(key), f"{key}: expected a list")
            continue
        for i, item in enumerate(items):
            try:
                compiled = build(item, items.line_of(i), reader)
            except RecursionError:
                reader.error(items.line_of(i), "nested too deeply")
                compiled = None
            if compiled:
                into.append(compiled)
                if key == "rules":
                    raw_rules.setdefault(compiled.id, item)
    return rules, slots, segments, reader.problems, raw_rules


def rule_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    if not path.is_dir():
        return []
    return sorted(p for p in path.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file())


def load_ruleset(path: Path | str, now_ms: int | None = None) -> RuleSet:
    """Every file under `path`, compiled and cross-checked."""
    path = Path(path)
    files = rule_files(path)
    sources = []
    for f in files:
        try:
            sources.append((str(f), f.read_bytes()))
        except OSError as exc:
            sources.append((str(f), None, exc))
    ruleset = build_ruleset([(name, data) for name, data, *_ in sources if data is not None], now_ms)
    for name, _, *err in sources:
        if err:
            ruleset.problems.append(Problem(name, 1, None, f"cannot read: {err[0].strerror}"))
    if not path.exists():
        ruleset.problems.append(Problem(str(path), 1, None, "no such file or folder", "warning"))
    return ruleset


def build_ruleset(sources: Iterable[tuple[str, bytes]], now_ms: int | None = None) -> RuleSet:
    out = RuleSet()
    digest = hashlib.sha256()
    raw_rules: dict[str, Any] = {}
    for name, data in sources:
        digest.update(name.encode() + b"\0" + data + b"\0")
        out.files.append(name)
        rules, slots, segments, problems, raws = parse_file(name, data)
        out.problems += problems
        for slot in slots.values():
            if slot.name in out.slots:
                out.problems.append(Problem(name, 1, slot.name, f"slot {slot.name!r} is defined twice; the first one is kept", "warning"))
            else:
                out.slots[slot.name] = slot
        seen_rules = {r.id: r for r in out.rules}
        for rule in rules:
            if rule.id in seen_rules:
                first = seen_rules[rule.id]
                out.problems.append(Problem(name, rule.line, rule.id, f"duplicate rule id; the one at {first.file}:{first.line} is kept", "warning"))
            else:
                out.rules.append(rule)
                seen_rules[rule.id] = rule
                raw_rules[rule.id] = raws.get(rule.id)
        names = {s.name: s for s in out.segments}
        for segment in segments:
            if segment.name in names:
                first = names[segment.name]
                out.problems.append(Problem(name, segment.line, segment.name, f"duplicate segment; the one at {first.file}:{first.line} is kept", "warning"))
            else:
                out.segments.append(segment)
                names[segment.name] = segment
    out.fingerprint = digest.hexdigest()[:16]
    out.rules.sort(key=lambda r: (-r.priority, r.id))
    out.problems += _cross_check(out, raw_rules, now_ms)
    return out


def _cross_check(rs: RuleSet, raw_rules: dict, now_ms: int | None) -> list[Problem]:
    """Warnings that need the whole set: unknown names, rules that can never fire."""
    problems = []
    segment_names = {s.name for s in rs.segments}
    for rule in rs.rules:
        def warn(message, line=rule.line):
            problems.append(Problem(rule.file, line, rule.id, message, "warning"))
        raw = raw_rules.get(rule.id)
        for name in sorted(segments_named(raw.get("when")) if raw is not None else ()):
            if name not in segment_names:
                warn(f"unknown segment {name!r}: no segment file defines it", line_at(raw, "when"))
        for choice in rule.choices:
            slot = rs.slots.get(choice.slot)
            line = raw.get("then").line_of(choice.slot) if raw is not None else rule.line
            if slot is None:
                warn(f"unknown slot {choice.slot!r}: the catalog has {', '.join(sorted(rs.slots)) or 'no slots'}", line)
                continue
            for v in choice.variants:
                if v.content not in slot.content:
                    warn(f"unknown content {v.content!r} in slot {choice.slot!r}", line)
            if choice.control >= 100:
                warn(f"then.{choice.slot}: control is 100%, so the rule never changes what is shown", line)
        if rule.condition.never:
            warn("can never fire: its condition can never be true", line_at(raw, "when") if raw is not None else rule.line)
        if not rule.choices:
            warn("can never fire: it chooses no content")
        if now_ms is not None and rule.end_ms is not None and rule.end_ms <= now_ms:
            warn("can never fire: its schedule ended")
        shadow = _shadowed_by(rule, rs.rules)
        if shadow:
            warn(f"can never fire: rule {shadow.id!r} has higher priority, the same slots and no condition that can fail")
    for segment in rs.segments:
        if segment.condition.never:
            problems.append(Problem(segment.file, segment.line, segment.name, "segment can never have members", "warning"))
    return problems


def _shadowed_by(rule: Rule, rules: list[Rule]) -> Rule | None:
    slots = {c.slot for c in rule.choices}
    for other in rules:
        if other is rule:
            return None
        if (other.priority > rule.priority and other.enabled and other.start_ms is None and other.end_ms is None
                and other.condition is ALWAYS and slots <= {c.slot for c in other.choices}
                and all(c.control == 0 for c in other.choices)):
            return other
    return None
