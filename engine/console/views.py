"""What each console page shows, read from the stores the API already has (engine.wiring.Stores).

Each function takes the services it reads and returns plain data for a template; the
few pure steps (the chart's bars, a rule file's state) are separate so tests reach them
without Redis. Nothing here writes, except `erase`, which is the API's own erasure.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from dataclasses import dataclass
from pathlib import Path

from engine.errors import InvalidInput
from engine.ingest.visitor_ids import is_visitor_id
from engine.profiles.pasted import pasted_profile
from engine.rules.ruleset import RuleSet, rule_files

CHART_W, CHART_H = 600, 120


def now_ms() -> int:
    return int(time.time() * 1000)


def clock(ms: int | None) -> str:
    if not ms:
        return "-"
    return dt.datetime.fromtimestamp(ms / 1000, dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


# --- overview -----------------------------------------------------------------


@dataclass(frozen=True)
class Bar:
    x: float
    width: float
    accepted_h: float
    rejected_h: float
    label: str


def flow_bars(
    minutes: list[tuple[int, dict[str, int]]], width: int = CHART_W, height: int = CHART_H
) -> tuple[list[Bar], int]:
    """Stacked bars (accepted below, rejected above) of events per minute, scaled to the busiest minute."""
    peak = max([row.get("accepted", 0) + row.get("rejected", 0) for _, row in minutes] + [1])
    step = width / max(len(minutes), 1)
    bars = []
    for index, (minute, row) in enumerate(minutes):
        accepted, rejected = row.get("accepted", 0), row.get("rejected", 0)
        label = dt.datetime.fromtimestamp(minute * 60, dt.timezone.utc).strftime("%H:%M")
        bars.append(
            Bar(
                round(index * step, 1),
                round(max(step - 1, 1), 1),
                round(accepted / peak * height, 1),
                round(rejected / peak * height, 1),
                f"{label}: {accepted} accepted, {rejected} rejected",
            )
        )
    return bars, peak


def flow_totals(minutes: list[tuple[int, dict[str, int]]]) -> dict:
    accepted = sum(row.get("accepted", 0) for _, row in minutes)
    rejected = sum(row.get("rejected", 0) for _, row in minutes)
    bots = sum(row.get("bot", 0) for _, row in minutes)
    last = minutes[-2][1] if len(minutes) > 1 else {}  # the last whole minute
    return {
        "accepted": accepted,
        "rejected": rejected,
        "bots": bots,
        "bot_share": bots / accepted if accepted else 0.0,
        "per_second": (last.get("accepted", 0) + last.get("rejected", 0)) / 60,
    }


async def _answer(check, timeout_s: float = 0.8):
    try:
        return await asyncio.wait_for(check(), timeout_s)
    except Exception:
        return None


async def overview(flow, services) -> dict:
    minutes, refused, broker, redis, beats, log_state = await asyncio.gather(
        flow.per_minute(60),
        flow.refused(20),
        _answer(services.broker_ok),
        _answer(services.redis_ok),
        _answer(services.heartbeats),
        _answer(services.log_state),
    )
    bars, peak = flow_bars(minutes)
    workers = [
        {
            "id": wid,
            "ready": bool(b.get("ready")),
            "lag": b.get("lag", 0),
            "events": b.get("events", 0),
            "dead_letters": b.get("dead_letters", 0),
            "resets": b.get("resets", 0),
            "last_reset": b.get("last_reset"),
        }
        for wid, b in sorted((beats or {}).items())
    ]
    collector = (log_state or {}).get("collector") or {}
    return {
        "bars": bars,
        "peak": peak,
        "chart_w": CHART_W,
        "chart_h": CHART_H,
        "totals": flow_totals(minutes),
        "refused": [dict(r, at=clock(r.get("at"))) for r in refused],
        "health": {"broker": bool(broker), "redis": bool(redis), "worker": any(w["ready"] for w in workers)},
        "workers": workers,
        "lag": sum(w["lag"] for w in workers),
        "log_resets": {
            "collector": collector.get("resets", 0),
            "rotations": collector.get("rotations", 0),
            "workers": sum(w["resets"] for w in workers),
            "last": [w["last_reset"] for w in workers if w["last_reset"]],
        },
    }


# --- people -------------------------------------------------------------------


async def person_page(query: str, stores, public_view, decider, rules) -> dict | None:
    """Everything the engine keeps of the person a visitor id or user id names, or None."""
    people = stores.people
    person = await people.person(query)
    user_id, visitor_ids = await people.resolve(query)
    if person is None and user_id is None:
        return None
    visitor_ids = visitor_ids or [query]
    audit, recent = await asyncio.gather(
        people.audit(user_id) if user_id else _nothing(), stores.recent.of(visitor_ids, 30)
    )
    shown = await public_view(person) if person is not None else None
    decisions = []
    if person is not None:
        made = await decider.preview(visitor_ids[0] if not user_id else None, user_id, sorted(rules.current.slots), {})
        decisions = [{"slot": slot, **d.to_json()} for slot, d in sorted(made.items())]
    for entry in recent:
        entry["at"] = clock(entry.get("ts"))
    for entry in audit:
        entry["at"] = clock(entry.get("ts"))
    return {
        "query": query,
        "user_id": user_id,
        "visitor_ids": visitor_ids,
        "person": shown,
        "recent": recent,
        "audit": audit,
        "decisions": decisions,
        "facts": facts(shown) if shown else [],
    }


async def _nothing() -> list:
    return []


def facts(person: dict) -> list[tuple[str, str]]:
    """The profile's headline figures, in reading order."""
    commerce = person.get("commerce") or {}
    value = person.get("value") or {}
    sessions = person.get("sessions") or {}
    interests = sorted((person.get("interest_scores") or {}).items(), key=lambda kv: -kv[1])[:5]
    return [
        ("kind", str(person.get("kind"))),
        ("first seen", clock(person.get("first_seen"))),
        ("last seen", clock(person.get("last_seen"))),
        ("sessions", str(sessions.get("count", 0))),
        ("events", ", ".join(f"{k} {v}" for k, v in sorted((person.get("counts") or {}).items())) or "-"),
        ("interests", ", ".join(f"{k} {v:.1f}" for k, v in interests) or "-"),
        ("orders", f"{commerce.get('orders', 0)} ({commerce.get('revenue', 0):.2f} revenue)"),
        ("cart", ", ".join(f"{k} ×{v}" for k, v in (commerce.get("cart") or {}).items()) or "-"),
        ("value", ", ".join(f"{k} {_figure(v)}" for k, v in value.items() if not isinstance(v, (dict, list))) or "-"),
        ("consent", ", ".join(f"{k} {v}" for k, v in (person.get("consent") or {}).items() if k != "ts") or "default"),
        ("preferences", ", ".join(f"{k} {v}" for k, v in (person.get("preferences") or {}).items()) or "-"),
    ]


def _figure(value) -> str:
    if value is None:
        return "-"
    return f"{value:.2f}" if isinstance(value, float) else str(value)


# --- segments -----------------------------------------------------------------


SPARK_W, SPARK_H = 120, 24


def sparkline(values: list[int | None], width: int = SPARK_W, height: int = SPARK_H) -> str:
    """SVG polyline points of the sampled sizes (steps with no sample left out), scaled to the largest."""
    known = [(i, v) for i, v in enumerate(values) if v is not None]
    if not known:
        return ""
    top = max(v for _, v in known) or 1
    step = width / max(len(values) - 1, 1)
    points = [(i * step, height - v / top * (height - 2) - 1) for i, v in known]
    if len(points) == 1:  # one sample: a short level ending at it, so it shows
        x, y = points[0]
        points = [(max(x - 8, 0.0), y), (max(x, 8.0), y)]
    return " ".join(f"{x:.1f},{y:.1f}" for x, y in points)


def size_series(history: list[tuple[int, dict[str, int]]], name: str, now_size: int | None = None) -> list[int | None]:
    """The sampled sizes, the last step's replaced by the size now (when given)."""
    series = [row.get(name) for _, row in history]
    if series and now_size is not None:
        series[-1] = now_size
    return series


async def segments_page(index, rules, sizes_over_time) -> list[dict]:
    segments = rules.current.segments
    sizes, history = await asyncio.gather(index.sizes([s.name for s in segments]), sizes_over_time.history(24))
    return [
        {
            "name": s.name,
            "description": s.description,
            "where": f"{Path(s.file).name}:{s.line}",
            "size": sizes.get(s.name, 0),
            "condition": s.condition.describe,
            "trend": sparkline(size_series(history, s.name, sizes.get(s.name, 0))),
            "since": clock(history[0][0] * 1000) if history else None,
        }
        for s in segments
    ]


async def segment_page(name: str, index, rules, sizes_over_time, limit: int = 100) -> dict | None:
    segment = next((s for s in rules.current.segments if s.name == name), None)
    if segment is None:
        return None
    sizes, members, history = await asyncio.gather(
        index.sizes([name]), index.members(name, limit), sizes_over_time.history(24)
    )
    series = size_series(history, name, sizes.get(name, 0))
    known = [v for v in series if v is not None]
    return {
        "name": name,
        "description": segment.description,
        "where": f"{Path(segment.file).name}:{segment.line}",
        "condition": segment.condition.describe,
        "size": sizes.get(name, 0),
        "members": [{"id": m, "score": round(score, 3)} for m, score in members],
        "trend": sparkline(series, 600, 100),
        "trend_low": min(known) if known else None,
        "trend_high": max(known) if known else None,
        "since": clock(history[0][0] * 1000) if history else None,
    }


# --- rules --------------------------------------------------------------------


def file_states(folder: Path, rs: RuleSet, problems: list) -> list[dict]:
    """Each rule file: live (its rules served) or refused with its errors, as of the newest load."""
    out = []
    for path in rule_files(folder):
        mine = [p for p in problems if Path(p.file).name == path.name]
        errors = [p for p in mine if p.level == "error"]
        served = [r for r in rs.rules if Path(r.file).name == path.name]
        out.append(
            {
                "file": path.name,
                "state": "errors" if errors else "live",
                "errors": errors,
                "warnings": [p for p in mine if p.level != "error"],
                "rules": len(served),
            }
        )
    return out


async def rules_page(live, served) -> dict:
    rs = live.current
    counts = await served.last_hour() if served is not None else {}
    rules = []
    for rule in rs.rules:
        rules.append(
            {
                "id": rule.id,
                "description": rule.description,
                "where": f"{Path(rule.file).name}:{rule.line}",
                "priority": rule.priority,
                "live": rule.live(now_ms()),
                "reaches": rule.condition.describe,
                "slots": [
                    {
                        "slot": c.slot,
                        "control": c.control,
                        "variants": [
                            {
                                "content": v.content,
                                "weight": v.weight,
                                "served": counts.get(c.slot, {}).get(rule.id, {}).get(v.content, 0),
                            }
                            for v in c.variants
                        ],
                        "control_served": sum(
                            n
                            for variant, n in counts.get(c.slot, {}).get(rule.id, {}).items()
                            if variant not in {v.content for v in c.variants}
                        ),
                    }
                    for c in rule.choices
                ],
            }
        )
    others = [
        {"slot": slot, "source": rule, "variants": variants}
        for slot, by_rule in sorted(counts.items())
        for rule, variants in sorted(by_rule.items())
        if rule.startswith("(")
    ]
    return {
        "folder": str(live.path),
        "files": file_states(live.path, rs, live.problems),
        "rules": rules,
        "fingerprint": rs.fingerprint,
        "refused_at": clock(int(live.refused_at * 1000)) if live.refused_at else None,
        "loaded_at": clock(int(live.loaded_at * 1000)) if getattr(live, "loaded_at", None) else None,
        "slots": sorted(rs.slots),
        "other_decisions": others,
    }


PREVIEW_CONTEXT = ("country", "weather", "device", "day_of_week")


def preview_input(query: dict) -> tuple[str | None, str | None, dict, int | None]:
    """(visitor id, user id, context, now in ms) from the preview form, checked as decide checks its body."""
    profile = (query.get("profile") or "").strip() or None
    if profile is not None and len(profile) > 128:
        raise InvalidInput("profile: expected a visitor id or a user id of up to 128 characters")
    visitor_id, user_id = (profile, None) if profile and is_visitor_id(profile) else (None, profile)
    context = {name: query[name].strip() for name in PREVIEW_CONTEXT if (query.get(name) or "").strip()}
    at = (query.get("time") or "").strip()
    when = None
    if at:
        try:
            hour, minute = (int(part) for part in at.split(":"))
            today = dt.datetime.now(dt.timezone.utc).replace(hour=hour, minute=minute, second=0, microsecond=0)
        except ValueError:
            raise InvalidInput("time: expected HH:MM (UTC)") from None
        when = int(today.timestamp() * 1000)
    return visitor_id, user_id, context, when


async def preview_page(query: dict, decider, rules) -> dict:
    """Each slot's decision for the chosen person and context, as POST /v1/decide answers (nothing recorded).

    `profile_json` (a pasted profile, engine.profiles.pasted) is decided for instead of
    the stored profile of `profile`, bucketed under its own id as decide buckets that one."""
    visitor_id, user_id, context, when = preview_input(query)
    pasted = (query.get("profile_json") or "").strip()
    person = pasted_profile(pasted) if pasted else None
    if person is not None:
        visitor_id, user_id = (person["id"], None) if person["id"] in person["visitor_ids"] else (None, person["id"])
    made = await decider.preview(visitor_id, user_id, sorted(rules.current.slots), dict(context), when, person)
    shown = (query.get("profile") or "").strip() if person is not None else visitor_id or user_id
    return {
        "profile": shown,
        "pasted": pasted,
        "pasted_id": person["id"] if person is not None else None,
        "context": context,
        "decisions": [{"slot": slot, **d.to_json()} for slot, d in sorted(made.items())],
    }


# --- recommendations ------------------------------------------------------------


async def recommendations_page(item: str, recommend, cooccurrence) -> dict:
    """The item's also-bought list as the API serves it, with the orders behind each pair."""
    listed, together = await asyncio.gather(
        recommend.also_bought(item, k=10), cooccurrence.neighbours(item, "purchase")
    )
    together = {k.decode() if isinstance(k, bytes) else k: v for k, v in together.items()}
    info = await recommend.describe([i["id"] for i in listed["items"]])
    model = recommend.current_model()
    return {
        "item": item,
        "source": listed["source"],
        "rows": [
            {
                "id": i["id"],
                "score": round(i["score"], 4),
                "orders_together": int(together.get(i["id"], 0)),
                "category": getattr(info.get(i["id"]), "category", None),
            }
            for i in listed["items"]
        ],
        "model": getattr(model, "version", None),
    }


def ago(ms: int, now: int) -> str:
    """How long before `now` (both in ms) the moment `ms` was, in the largest unit that fits."""
    seconds = max(now - ms, 0) // 1000
    if seconds < 60:
        return "just now"
    for unit, size in (("day", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size and (unit != "day" or seconds >= 2 * size):
            count = seconds // size
            return f"{count} {unit}{'s' if unit == 'day' and count != 1 else ''} ago"
    return "just now"


def model_state(info: dict | None, now: int) -> dict | None:
    """The published ALS model (engine.recommend.als_store.info): its version, when it was trained and on what."""
    if not info or not info.get("version"):
        return None
    trained = info.get("trained_at") if isinstance(info.get("trained_at"), int) else None
    return {
        "version": info["version"],
        "trained": clock(trained) if trained else None,
        "age": ago(trained, now) if trained else None,
        **{k: info[k] if _count(info.get(k)) else None for k in ("persons", "items", "interactions")},
    }


def prior_state(info: dict | None, now: int) -> dict | None:
    """Also-bought's prior strength as the worker chose it (engine.recommend.prior_job.info), or None."""
    if not info:
        return None
    chosen = info.get("chosen_at") or None
    return {
        "m": f"{info['m']:g}",
        "age": ago(chosen, now) if chosen else None,
        "orders": info.get("orders", 0),
        "queries": info.get("queries", 0),
        "rates": [(f"{m:g}", f"{rate:.4f}") for m, rate in sorted(info.get("hit_rates", {}).items())],
    }


def _count(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


async def for_you_page(visitor_id: str, recommend) -> dict:
    """The visitor's for-you list as the API serves it, and what it was made from."""
    listed = await recommend.for_you(visitor_id, k=10)
    info = await recommend.describe([i["id"] for i in listed["items"]])
    return {
        "visitor_id": visitor_id,
        "source": listed["source"],
        "rows": [
            {"id": i["id"], "score": round(i["score"], 4), "category": getattr(info.get(i["id"]), "category", None)}
            for i in listed["items"]
        ],
    }


async def experiments_page(chosen: str, experiments) -> tuple[list[dict], dict | None]:
    """Every experiment, and the report of the one chosen (None: none chosen, or no such one)."""
    if experiments is None:
        return [], None
    listed = await experiments.list()
    return listed, (await experiments.report(chosen) if chosen else None)
