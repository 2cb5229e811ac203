"""`clickstream rules check | preview | backtest`: what a marketer runs before a rule goes live."""

from __future__ import annotations

import json
import sys
import time
from datetime import datetime
from pathlib import Path

from engine.rules.backtest import Backtest
from engine.rules.decide import decide
from engine.rules.live import rules_folder
from engine.rules.ruleset import load_ruleset


def check(path: str, half_life_days: float, out=sys.stdout) -> int:
    """Prints every problem (file:line: [rule] level: message); 1 if there are errors, 2 without rules."""
    if not Path(path).exists():
        served = rules_folder(Path(path))
        if served == Path(path):
            print(f"{path}: no such file or folder", file=out)
            return 2
        path = str(Path(path))
        print(
            f"{path}: no such folder; the engine serves its built-in demo rules from {served} "
            f"(set CLICKSTREAM_RULES or create {path}/ to use your own). Checking those:",
            file=out,
        )
        path = str(served)
    rs = load_ruleset(path, int(time.time() * 1000), half_life_days=half_life_days)
    for problem in sorted(rs.problems, key=lambda p: (p.file, p.line, p.level)):
        print(problem, file=out)
    errors, warnings = len(rs.errors), len(rs.warnings)
    print(
        f"{len(rs.files)} files: {len(rs.rules)} rules, {len(rs.slots)} slots, {len(rs.segments)} segments; "
        f"{errors} errors, {warnings} warnings",
        file=out,
    )
    return 1 if errors else 0


def parse_context(pairs: list[str]) -> dict:
    context = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"--context {pair!r}: expected key=value")
        context[key] = value
    return context


async def person_for_preview(
    people, values, rules_path, profile_id: str, half_life_days: float
) -> tuple[dict | None, dict]:
    from engine.profiles.segments import derive

    person = await people.person(profile_id)
    prefs = person.get("preferences", {}) if person else await people.preferences(profile_id, None, [profile_id])
    if person is not None:
        rs = load_ruleset(rules_path, half_life_days=half_life_days)
        person = derive(person, await values.model(), rs.segments, int(time.time() * 1000), half_life_days)
    return person, prefs


def preview(
    path: str,
    person: dict | None,
    prefs: dict,
    context: dict,
    visitor_id: str,
    slots: list[str] | None,
    now_ms: int,
    half_life_days: float,
    out=sys.stdout,
) -> int:
    rs = load_ruleset(path, now_ms, half_life_days=half_life_days)
    for problem in rs.errors:
        print(problem, file=out)
    if rs.errors:
        print("the rule set has errors; fix them first (clickstream rules check)", file=out)
        return 1
    wanted = slots or sorted(rs.slots)
    decisions = decide(rs, wanted, person, prefs, context, visitor_id, now_ms)
    print(f"visitor {visitor_id or '(none)'}; context {json.dumps(context, ensure_ascii=False)}", file=out)
    for slot, d in decisions.items():
        print(f"\n[{slot}] {d.source}: {d.content_id} (variant {d.variant})", file=out)
        print(f"  why: {d.reason}", file=out)
        if d.content is not None:
            print(f"  shows: {d.content}", file=out)
    return 0


def _log_order(event: dict) -> int:
    """By time only: the sort is stable, so a visitor's events of one moment (one request's
    batch shares its ts) keep the order of the log, the order the worker applied them in."""
    return event.get("ts", 0)


async def recent_events(batches, since_ms: float, limit: int | None = None) -> tuple[list[dict], int]:
    """The events of `batches` (an async iterator of event lists) from `since_ms` on, oldest first.

    With `limit`, at most that many are kept, the newest: the read stays bounded in memory
    on a long log. The second value counts the events of the window left out for it."""
    events: list[dict] = []
    left_out = 0
    async for batch in batches:
        events += [e for e in batch if isinstance(e.get("ts"), int) and e["ts"] >= since_ms]
        if limit is not None and len(events) > limit + max(limit // 4, 1):  # trimmed now and then, not per batch
            events.sort(key=_log_order)
            left_out += len(events) - limit
            events = events[-limit:]
    events.sort(key=_log_order)
    if limit is not None and len(events) > limit:
        left_out += len(events) - limit
        events = events[-limit:]
    return events, left_out


async def backtest(path: str, settings, config, hours: float, progress: bool = True, out=sys.stdout) -> int:
    from engine.stream.history import read_history

    rs = load_ruleset(path, int(time.time() * 1000), half_life_days=config.interest_half_life_days)
    for problem in rs.errors:
        print(problem, file=out)
    if rs.errors:
        return 1
    test = Backtest(rs, config)
    since = (time.time() - hours * 3600) * 1000
    events, _ = await recent_events(read_history(settings, "backtest: read", progress), since)
    for event in events:
        test.feed(event)
    print(f"backtest of {path} on the last {hours:g} h of {settings.topic}", file=out)
    print(test.table(), file=out)
    return 0


def at_time(text: str | None) -> int:
    if not text:
        return int(time.time() * 1000)
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return int(moment.timestamp() * 1000)
