"""Segment membership and the derived parts of a person: pure code.

A person's `value` (engine.profiles.value) and `segments` are derived from their
history on demand, so the API always shows them current; the worker stores the
same memberships in Redis so segment sizes can be read without a scan.

Segments are evaluated in file order, so a segment may refer to one defined
before it.
"""

from __future__ import annotations

from typing import Iterable

from engine.profiles.model import count_in_window, decay
from engine.profiles.value import ValueModel, person_value


def score(segment, person: dict, now_ms: int, half_life_days: float) -> float:
    kind = segment.score[0]
    value = person.get("value") or {}
    if kind == "clv":
        return float((value.get("clv") or {}).get("value", 0.0))
    if kind == "revenue":
        return float(person["commerce"]["revenue"])
    if kind == "orders":
        return float(person["commerce"]["orders"])
    if kind == "sessions":
        return float(person["sessions"]["count"])
    if kind == "interest":
        raw, ts = person["interests"].get(segment.score[1], (0.0, now_ms))
        return round(decay(raw, ts, now_ms, half_life_days), 4)
    if kind == "count":
        return float(count_in_window(person, segment.score[1], segment.score[2], now_ms))
    return 1.0


def memberships(person: dict, segments: Iterable, now_ms: int, half_life_days: float = 14.0) -> dict[str, float]:
    """{segment name: score} for the segments the person is in now."""
    inside: dict[str, float] = {}
    view = dict(person, segments=inside)
    for segment in segments:
        matched, _ = segment.condition.evaluate(view, {}, now_ms)
        if matched:
            inside[segment.name] = score(segment, view, now_ms, half_life_days)
    return inside


def next_change(person: dict, segments: Iterable, now_ms: int) -> int | None:
    """When any of the person's memberships may next change with no new event (None: never by time).

    `person` is derived (its `segments` filled in), so a segment built on another sees it."""
    soonest = None
    for segment in segments:
        horizon = segment.condition.horizon  # None: time alone never changes this one
        if horizon is not None:
            moment = horizon(person, {}, now_ms)
            if moment is not None and (soonest is None or moment < soonest):
                soonest = moment
    return soonest


def derive(
    person: dict, value_model: ValueModel | None, segments: Iterable, now_ms: int, half_life_days: float = 14.0
) -> dict:
    """The person with `value` (unless value_model is None) and `segments` filled in (a new dict)."""
    segments = list(segments)
    out = dict(person)
    if value_model is not None:
        out["value"] = person_value(value_model, person["commerce"]["order_log"], now_ms)
    out["segments"] = memberships(out, segments, now_ms, half_life_days)
    return out
