"""The visitor profile: pure functions over plain dicts, no I/O.

`apply_event(profile, event)` folds one event into a profile. Events of one
visitor arrive in partition order, so "the session changed" is decided by
comparing with the last session seen, which gives the same answer on replay.
"""

from __future__ import annotations

from typing import Iterable

PAGES_KEPT = 20
PAGE_TYPES = frozenset({"page_view"})


def new_profile(profile_id: str) -> dict:
    return {
        "id": profile_id,
        "kind": "anonymous",
        "first_seen": None,
        "last_seen": None,
        "counts": {},
        "sessions": {"count": 0, "current": None, "last_start": None, "total_ms": 0},
        "pages": [],
    }


def _touch_session(sessions: dict, session_id: str | None, ts: int, last_seen: int | None) -> None:
    if not session_id:
        return
    if session_id != sessions["current"]:
        sessions["count"] += 1
        sessions["current"] = session_id
        sessions["last_start"] = ts
    elif last_seen is not None and ts > last_seen:
        sessions["total_ms"] += ts - last_seen


def apply_event(profile: dict, event: dict) -> dict:
    """Fold one event into the profile (mutates and returns it)."""
    ts = event["ts"]
    counts = profile["counts"]
    counts[event["type"]] = counts.get(event["type"], 0) + 1
    previous_last = profile["last_seen"]
    _touch_session(profile["sessions"], event.get("session_id"), ts, previous_last)
    if profile["first_seen"] is None or ts < profile["first_seen"]:
        profile["first_seen"] = ts
    if previous_last is None or ts > previous_last:
        profile["last_seen"] = ts
    if event["type"] in PAGE_TYPES and event.get("url"):
        page = {"url": event["url"], "ts": ts}
        if event.get("title"):
            page["title"] = event["title"]
        pages = profile["pages"]
        pages.append(page)
        del pages[:-PAGES_KEPT]
    return profile


def fold(profile: dict, events: Iterable[dict]) -> dict:
    for event in events:
        apply_event(profile, event)
    return profile
