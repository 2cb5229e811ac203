"""Rule files: loading, checking and the compiled rule set. Pure apart from reading files.

The rules folder (CLICKSTREAM_RULES) holds YAML files; each may define any of

    slots:      the content catalog: per slot its default and its content items
    rules:      marketers' rules: id, description, priority, enabled, schedule, when, then
    segments:   named audiences over the same condition language
    destinations: webhooks told when someone enters or leaves a segment, and of alerts

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
        when: {history: {event: product_view, category: shoes, min: 3, days: 7}}
        score: {interest: shoes}

A file is read as YAML 1.2 with lines (engine.rules.yaml_lines), checked against its
declared shape (engine.rules.schema) and compiled here: conditions into closures,
dates into milliseconds, cross-references (a default among its slot's content).
Every problem carries the file, line and rule id; errors keep a file's rules out
of the set, warnings do not. Nothing in a file is ever executed.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import msgspec

from engine.rules import schema
from engine.rules.conditions import (
    ALWAYS,
    CONTEXT_SETS,
    CONTEXT_TEXT,
    Condition,
    ConditionError,
    compile_condition,
    segments_named,
)
from engine.rules.shapes import Issue, S, check, dotted
from engine.rules.yaml_lines import YamlError, line_at, line_of, load, node_line

NAME = re.compile(schema.NAME)
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
        return {
            "file": self.file,
            "line": self.line,
            "rule_id": self.rule_id,
            "level": self.level,
            "message": self.message,
        }


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
    reward: str = "click"  # what the bandit maximizes: click, add_to_cart, purchase or revenue (after a click)
    reward_cap: float = 100.0  # revenue: an order of this much or more counts as one full success


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
        return (
            self.enabled
            and (self.start_ms is None or now_ms >= self.start_ms)
            and (self.end_ms is None or now_ms < self.end_ms)
        )


@dataclass(frozen=True)
class Segment:
    name: str
    description: str
    condition: Condition
    score: tuple  # ("constant",) | ("clv",) | ("interest", category) | ("count", key, days) ...
    file: str
    line: int
    uses_value: bool = False  # needs the person's value (tier or CLV) computed first


@dataclass(frozen=True)
class Destination:
    name: str
    url: str
    secret: str = field(repr=False)
    segments: frozenset[str] = frozenset()
    events: frozenset[str] = frozenset({"entered", "exited"})
    alerts: frozenset[str] = frozenset()
    purpose: str = "marketing"  # marketing: only people with marketing consent; analytics: everyone
    file: str = ""
    line: int = 0

    def wants(self, change: dict) -> bool:
        """Whether this destination hears a change or alert record of the outbox."""
        if "kind" in change:
            return change["kind"] in self.alerts
        return change.get("segment") in self.segments and change.get("change") in self.events


@dataclass
class RuleSet:
    rules: list[Rule] = field(default_factory=list)  # highest priority first
    slots: dict[str, Slot] = field(default_factory=dict)
    segments: list[Segment] = field(default_factory=list)
    destinations: list[Destination] = field(default_factory=list)
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


class _Reader:
    """Compiles the parts of one file, collecting its problems."""

    def __init__(self, file: str, half_life_days: float) -> None:
        self.file = file
        self.half_life_days = half_life_days
        self.problems: list[Problem] = []

    def error(self, line: int, message: str, owner: str | None = None, level: str = "error") -> None:
        self.problems.append(Problem(self.file, line, owner, message, level))

    def warn(self, line: int, message: str, owner: str | None = None) -> None:
        self.error(line, message, owner, "warning")

    def failed_since(self, count: int) -> bool:
        return any(p.level == "error" for p in self.problems[count:])

    def shape(self, raw: Any, kind: type[S], owner: str | None, line: int, label: str = "", at: tuple = ()) -> S | None:
        """`raw` checked as `kind`; each problem reported at its own line, as `label` + path: message."""
        issues: list[Issue] = []
        value = check(raw, kind, issues)
        for issue in issues:
            where = dotted(at + issue.path)
            self.error(
                line_at(raw, issue.line_path or issue.path) if isinstance(raw, (dict, list)) else line,
                f"{label}{where}: {issue.message}" if where else f"{label}{issue.message}",
                owner,
            )
        return value

    def when(self, entry: dict, owner: str | None) -> Condition | None:
        raw = entry["when"]
        if raw == "always":
            return ALWAYS
        try:
            return compile_condition(raw, half_life_days=self.half_life_days)
        except ConditionError as exc:
            self.error(line_at(entry, exc.path), f"{exc.message} (at {exc.path})", owner)
        return None

    # --- slots (the content catalog) ------------------------------------------------

    def slot(self, name: Any, raw: Any, line: int) -> Slot | None:
        if not isinstance(name, str) or not NAME.match(name):
            self.error(line, f"slot name {str(name)[:40]!r}: letters, digits, _ . : - only")
            return None
        before = len(self.problems)
        label = f"slot {name!r}: "
        shape = self.shape(raw, schema.Slot, name, line, label)
        items = raw.get("content") if isinstance(raw, dict) else None
        items = items if isinstance(items, dict) else {}
        content = {}
        for cid, item in items.items():
            compiled = self.content(str(cid), item, line_of(items, cid), name)
            if compiled:
                content[compiled.id] = compiled
        default = raw.get("default") if isinstance(raw, dict) else None
        if isinstance(default, str) and items and default not in items:
            self.error(line_of(raw, "default"), f"{label}default {default!r} is not one of its content ids", name)
        model = raw.get("model") if isinstance(raw, dict) else None
        variants = model.get("variants") if isinstance(model, dict) else None
        for i, variant in enumerate(variants if isinstance(variants, list) else ()):
            if isinstance(variant, str) and items and variant not in items:
                self.error(line_of(variants, i), f"{label}model variant {variant!r} is not content of this slot", name)
        if shape is None or self.failed_since(before):
            return None
        return Slot(name, shape.default, content, _model_spec(shape.model) if shape.model else None)

    def content(self, cid: str, raw: Any, line: int, slot: str) -> Content | None:
        if isinstance(raw, str):
            return Content(cid, raw)
        shape = self.shape(raw, schema.Content, slot, line, f"content {cid!r}: ")
        if shape is None:
            return None
        topics = [shape.topics] if isinstance(shape.topics, str) else shape.topics
        return Content(
            cid,
            shape.html if shape.html is not None else shape.text,
            tuple(t.lower() for t in topics),
            shape.language.lower() if shape.language else None,
            shape.data,
        )

    # --- rules and segments -----------------------------------------------------------

    def rule(self, raw: Any, line: int) -> Rule | None:
        rule_id = _name_of(raw, "id")
        before = len(self.problems)
        shape = self.shape(raw, schema.Rule, rule_id, line)
        condition = self.when(raw, rule_id) if isinstance(raw, dict) and "when" in raw else None
        then = raw.get("then") if isinstance(raw, dict) else None
        choices = [
            self.choice(str(slot), body, line_of(then, slot), rule_id)
            for slot, body in (then.items() if isinstance(then, dict) else ())
        ]
        if shape is None or condition is None or self.failed_since(before):
            return None
        start, end = (
            (_moment(shape.schedule, "start"), _moment(shape.schedule, "end")) if shape.schedule else (None, None)
        )
        return Rule(
            rule_id,
            shape.description,
            shape.priority,
            shape.enabled,
            start,
            end,
            condition,
            tuple(choices),
            self.file,
            node_line(raw),
        )

    def choice(self, slot: str, raw: Any, line: int, rule_id: str | None) -> Choice | None:
        if isinstance(raw, str):
            return Choice(slot, (Variant(raw, 1.0),))
        shape = self.shape(raw, schema.Choice, rule_id, line, at=("then", slot))
        if shape is None:
            return None
        variants = (
            [Variant(shape.content, 1.0)]
            if shape.content is not None
            else [Variant(v.content, v.weight) for v in shape.variants]
        )
        return Choice(slot, tuple(variants), shape.control)

    def segment(self, raw: Any, line: int) -> Segment | None:
        name = _name_of(raw, "name")
        before = len(self.problems)
        shape = self.shape(raw, schema.Segment, name, line)
        condition = self.when(raw, name) if isinstance(raw, dict) and "when" in raw else None
        if shape is None or condition is None or self.failed_since(before):
            return None
        used = _leaf_kinds(shape.when) & CONTEXT_ONLY
        if used:
            self.warn(
                line_of(raw, "when"),
                f"segments are kept from events, without a request's context; "
                f"{', '.join(sorted(used))} never match here",
                name,
            )
        score = _score(shape.score)
        uses_value = "value_tier" in _leaf_kinds(shape.when) or score[0] == "clv"
        return Segment(name, shape.description, condition, score, self.file, node_line(raw), uses_value)

    def destination(self, raw: Any, line: int) -> Destination | None:
        name = _name_of(raw, "name")
        shape = self.shape(raw, schema.Destination, name, line)
        if shape is None:
            return None
        return Destination(
            shape.name,
            shape.url,
            shape.secret,
            frozenset(shape.segments),
            frozenset(shape.events),
            frozenset(shape.alerts),
            shape.purpose,
            self.file,
            node_line(raw),
        )


def _model_spec(shape: schema.Model) -> ModelSpec:
    given = {
        k: v for k, v in msgspec.structs.asdict(shape).items() if v is not msgspec.UNSET
    }  # else ModelSpec's defaults
    return ModelSpec(**dict(given, variants=tuple(shape.variants)))


def _name_of(raw: Any, key: str) -> str | None:
    """The entry's name when it is a valid one: problems of the entry carry it."""
    name = raw.get(key) if isinstance(raw, dict) else None
    return name if isinstance(name, str) and NAME.match(name) else None


def _moment(schedule: schema.Schedule, key: str) -> int | None:
    text = getattr(schedule, key)
    return schema.timestamp(text) if text is not None else None


def _score(shape: str | schema.ScoreBy | None) -> tuple:
    if shape is None:
        return ("constant",)
    if isinstance(shape, str):
        return (shape,)
    if shape.interest is not None:
        return ("interest", shape.interest)
    count = shape.count
    return ("count", f"{count.event}:{count.category}" if count.category else count.event, count.days)


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


def parse_file(
    name: str, data: bytes, half_life_days: float
) -> tuple[list[Rule], dict[str, Slot], list[Segment], list[Problem], dict]:
    """One file's parts and problems; never raises on any input. Destinations: `parse_destinations`."""
    reader = _Reader(name, half_life_days)
    try:
        doc = load(data)
    except YamlError as exc:
        reader.error(exc.line, exc.message)
        return [], {}, [], reader.problems, {}
    if doc is None:
        return [], {}, [], [], {}
    reader.shape(doc, schema.File, None, 1)
    if not isinstance(doc, dict):
        return [], {}, [], reader.problems, {}
    rules, segments, raw_rules, slots = [], [], {}, {}
    catalog = doc.get("slots")
    for slot_name, body in catalog.items() if isinstance(catalog, dict) else ():
        compiled = _guarded(reader, lambda line: reader.slot(slot_name, body, line), line_of(catalog, slot_name))
        if compiled:
            slots[compiled.name] = compiled
    for key, build, into in (("rules", reader.rule, rules), ("segments", reader.segment, segments)):
        items = doc.get(key)
        for i, item in enumerate(items if isinstance(items, list) else ()):
            compiled = _guarded(reader, lambda line: build(item, line), line_of(items, i))
            if compiled:
                into.append(compiled)
                if key == "rules":
                    raw_rules.setdefault(compiled.id, item)
    return rules, slots, segments, reader.problems, raw_rules


def parse_destinations(name: str, data: bytes) -> tuple[list[Destination], list[Problem]]:
    """One file's destinations and their problems; never raises on any input."""
    reader = _Reader(name, 14.0)
    try:
        doc = load(data)
    except YamlError:
        return [], []  # parse_file reports it
    items = doc.get("destinations") if isinstance(doc, dict) else None
    out = []
    for i, item in enumerate(items if isinstance(items, list) else ()):
        compiled = _guarded(reader, lambda line: reader.destination(item, line), line_of(items, i))
        if compiled:
            out.append(compiled)
    return out, reader.problems


def _guarded(reader: _Reader, build, line: int):
    """`build(line)`, or None with an error: a value nested hundreds deep can still exhaust the stack."""
    try:
        return build(line)
    except RecursionError:
        reader.error(line, "nested too deeply")
        return None


def rule_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    if not path.is_dir():
        return []
    return sorted(p for p in path.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file())


def load_ruleset(path: Path | str, now_ms: int | None = None, *, half_life_days: float) -> RuleSet:
    """Every file under `path`, compiled and cross-checked.

    `half_life_days` is the profiles' interest half-life (CLICKSTREAM_INTEREST_HALF_LIFE_DAYS),
    which `interest` conditions decay with."""
    path = Path(path)
    files = rule_files(path)
    sources = []
    for f in files:
        try:
            sources.append((str(f), f.read_bytes()))
        except OSError as exc:
            sources.append((str(f), None, exc))
    ruleset = build_ruleset(
        [(name, data) for name, data, *_ in sources if data is not None], now_ms, half_life_days=half_life_days
    )
    for name, _, *err in sources:
        if err:
            ruleset.problems.append(Problem(name, 1, None, f"cannot read: {err[0].strerror}"))
    if not path.exists():
        ruleset.problems.append(Problem(str(path), 1, None, "no such file or folder", "warning"))
    return ruleset


def _first_of_its_name(file: str, item, key: str, kept: dict, what: str, problems: list[Problem]) -> bool:
    """True when no earlier rule file has `key` (then `item` is kept under it); else a warning on `item`'s
    line names where the one kept stands."""
    first = kept.get(key)
    if first is None:
        kept[key] = item
        return True
    problems.append(
        Problem(file, item.line, key, f"duplicate {what}; the one at {first.file}:{first.line} is kept", "warning")
    )
    return False


def build_ruleset(sources: Iterable[tuple[str, bytes]], now_ms: int | None = None, *, half_life_days: float) -> RuleSet:
    """The rule set of (file name, contents) pairs; `now_ms` dates the "schedule ended" warning."""
    out = RuleSet()
    digest = hashlib.sha256()
    raw_rules: dict[str, Any] = {}
    for name, data in sources:
        digest.update(name.encode() + b"\0" + data + b"\0")
        out.files.append(name)
        rules, slots, segments, problems, raws = parse_file(name, data, half_life_days)
        out.problems += problems
        destinations, problems = parse_destinations(name, data)
        out.problems += problems
        for destination in destinations:
            if any(d.name == destination.name for d in out.destinations):
                out.problems.append(
                    Problem(
                        name,
                        destination.line,
                        destination.name,
                        "duplicate destination; the first one is kept",
                        "warning",
                    )
                )
            else:
                out.destinations.append(destination)
        for slot in slots.values():
            if slot.name in out.slots:
                out.problems.append(
                    Problem(
                        name, 1, slot.name, f"slot {slot.name!r} is defined twice; the first one is kept", "warning"
                    )
                )
            else:
                out.slots[slot.name] = slot
        seen_rules = {r.id: r for r in out.rules}
        for rule in rules:
            if _first_of_its_name(name, rule, rule.id, seen_rules, "rule id", out.problems):
                out.rules.append(rule)
                raw_rules[rule.id] = raws.get(rule.id)
        names = {s.name: s for s in out.segments}
        for segment in segments:
            if _first_of_its_name(name, segment, segment.name, names, "segment", out.problems):
                out.segments.append(segment)
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
            line = line_of(raw["then"], choice.slot) if raw is not None else rule.line
            if slot is None:
                warn(f"unknown slot {choice.slot!r}: the catalog has {', '.join(sorted(rs.slots)) or 'no slots'}", line)
                continue
            for v in choice.variants:
                if v.content not in slot.content:
                    warn(f"unknown content {v.content!r} in slot {choice.slot!r}", line)
            if choice.control >= 100:
                warn(f"then.{choice.slot}: control is 100%, so the rule never changes what is shown", line)
        if rule.condition.never:
            warn(
                "can never fire: its condition can never be true",
                line_at(raw, "when") if raw is not None else rule.line,
            )
        if not rule.choices:
            warn("can never fire: it chooses no content")
        if now_ms is not None and rule.end_ms is not None and rule.end_ms <= now_ms:
            warn("can never fire: its schedule ended")
        shadow = _shadowed_by(rule, rs.rules)
        if shadow:
            warn(
                f"can never fire: rule {shadow.id!r} has higher priority, the same slots and no condition that can fail"
            )
    for destination in rs.destinations:
        for name in sorted(destination.segments - segment_names):
            problems.append(
                Problem(
                    destination.file,
                    destination.line,
                    destination.name,
                    f"unknown segment {name!r}: no segment file defines it",
                    "warning",
                )
            )
    for segment in rs.segments:
        if segment.condition.never:
            problems.append(
                Problem(segment.file, segment.line, segment.name, "segment can never have members", "warning")
            )
    return problems


def _shadowed_by(rule: Rule, rules: list[Rule]) -> Rule | None:
    slots = {c.slot for c in rule.choices}
    for other in rules:
        if other is rule:
            return None
        if (
            other.priority > rule.priority
            and other.enabled
            and other.start_ms is None
            and other.end_ms is None
            and other.condition is ALWAYS
            and slots <= {c.slot for c in other.choices}
            and all(c.control == 0 for c in other.choices)
        ):
            return other
    return None
