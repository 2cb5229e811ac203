"""Identity: how the pieces of one person merge (which user ids may link: engine.profiles.user_ids).

Pure. A person is the merge of the profiles of every visitor id (device, cookie)
linked to their user id. `merge` is associative and commutative, so the pieces
can be read in any order and the person comes out the same.
"""

from __future__ import annotations

from functools import reduce

from engine.profiles.model import DAYS_KEPT, ORDERS_KEPT, PAGES_KEPT, VIEWED_KEPT, decay, newest_items


def _min(a, b):
    return b if a is None else a if b is None else min(a, b)


def _max(a, b):
    return b if a is None else a if b is None else max(a, b)


def _add_counts(a: dict, b: dict) -> dict:
    out = dict(a)
    for key, value in b.items():
        out[key] = out.get(key, 0) + value
    return out


def _latest(a: list, b: list, key, kept: int, unique=None) -> list:
    """The newest `kept` entries of both lists in time order (ties broken by content, for determinism)."""
    merged = sorted(a + b, key=lambda e: (key(e), repr(e)))
    if unique:
        seen, out = set(), []
        for entry in reversed(merged):
            if unique(entry) not in seen:
                seen.add(unique(entry))
                out.append(entry)
        merged = out[::-1]
    return merged[-kept:]


def _merge_traits(a: dict, b: dict) -> dict:
    """Per trait, the value set last (ties: the larger value's repr), so any merge order agrees."""
    traits, stamps = {}, {}
    for piece in (a, b):
        for key, value in piece["traits"].items():
            ts = piece["traits_ts"].get(key, 0)
            if key not in traits or (ts, repr(value)) > (stamps[key], repr(traits[key])):
                traits[key], stamps[key] = value, ts
    return {"traits": traits, "traits_ts": stamps}


def _newer(a: dict, b: dict) -> dict:
    """Of two pieces, the one seen last (ties: the larger id) wins for single values."""
    return max((a, b), key=lambda p: (p["last_seen"] or 0, p["id"]))


def merge(a: dict, b: dict, half_life_days: float = 14.0) -> dict:
    newer, older = (a, b) if _newer(a, b) is a else (b, a)
    sessions_a, sessions_b = a["sessions"], b["sessions"]
    interests = {}
    for cat in set(a["interests"]) | set(b["interests"]):
        parts = [p["interests"][cat] for p in (a, b) if cat in p["interests"]]
        newest = max(ts for _, ts in parts)
        interests[cat] = [round(sum(decay(s, ts, newest, half_life_days) for s, ts in parts), 6), newest]
    orders = _latest(
        a["commerce"]["order_log"],
        b["commerce"]["order_log"],
        key=lambda o: o[0],
        kept=ORDERS_KEPT,
        unique=lambda o: o[2],
    )
    daily = {}
    for day in set(a["daily"]) | set(b["daily"]):
        daily[day] = _add_counts(a["daily"].get(day, {}), b["daily"].get(day, {}))
    for old in sorted(daily, key=int)[: max(0, len(daily) - DAYS_KEPT)]:
        del daily[old]
    consent = max((a["consent"], b["consent"]), key=lambda c: (c.get("ts", -1), repr(c)))
    revenue = round(sum(o[1] for o in orders), 2)
    merged = {
        "id": newer["id"],
        "kind": "identified" if (a["user_id"] or b["user_id"]) else "anonymous",
        "user_id": newer["user_id"] or older["user_id"],
        "first_seen": _min(a["first_seen"], b["first_seen"]),
        "last_seen": _max(a["last_seen"], b["last_seen"]),
        "counts": _add_counts(a["counts"], b["counts"]),
        "sessions": {
            "count": sessions_a["count"] + sessions_b["count"],
            "current": newer["sessions"]["current"],
            "last_start": _max(sessions_a["last_start"], sessions_b["last_start"]),
            "total_ms": sessions_a["total_ms"] + sessions_b["total_ms"],
        },
        "pages": _latest(a["pages"], b["pages"], key=lambda p: p["ts"], kept=PAGES_KEPT),
        "engaged_ms": a["engaged_ms"] + b["engaged_ms"],
        "viewed": _latest(a["viewed"], b["viewed"], key=lambda v: v["ts"], kept=VIEWED_KEPT, unique=lambda v: v["id"]),
        "interests": interests,
        "commerce": {
            "cart": newer["commerce"]["cart"],
            "orders": len(orders),
            "revenue": revenue,
            "first_purchase": orders[0][0] if orders else None,
            "last_purchase": orders[-1][0] if orders else None,
            "order_log": orders,
            "items": newest_items(
                {i: max(ts, b["commerce"]["items"].get(i, ts)) for i, ts in a["commerce"]["items"].items()}
                | {i: ts for i, ts in b["commerce"]["items"].items() if i not in a["commerce"]["items"]}
            ),
        },
        **_merge_traits(a, b),
        "consent": consent,
        "daily": daily,
    }
    return merged


def merge_all(pieces: list[dict], half_life_days: float = 14.0) -> dict:
    ordered = sorted(pieces, key=lambda p: p["id"])
    return reduce(lambda x, y: merge(x, y, half_life_days), ordered)
