"""The visitor profile: pure functions over plain dicts, no I/O.

`apply_event(profile, event, config)` folds one event into a profile; `merge`
joins the profiles of one person (several devices and cookies). Events of one
visitor arrive in partition order, so "the session changed" is decided by
comparing with the last session seen, which gives the same answer on replay.

A profile is one visitor id's history (its "piece" of a person). Identified
people are the merge of their pieces (engine.profiles.identity).

Trust (engine.ingest.trust sets the fields): only a `verified` identify gives the
piece its user id and traits, and only the first user's: another user's login on the
same cookie changes nothing (the link step audits the refusal). An unverified one is
kept as `claimed_user_id` (what the browser said; no access, no traits). A purchase
the worker marked `claim` (engine.profiles.orders) goes to commerce.claims, counted
nowhere; a `trusted` purchase replaces a browser's entry of the same order id, and
nothing replaces a trusted one. order_log entries: [ts, revenue, order id(, 1 if trusted)].

The fold is total: the event schema (engine.ingest.schema) accepts nothing it
cannot carry (QTY_MAX and MONEY_MAX are its bounds), and props outside what a
type declares (a `product` on a page view, a string where a number was meant)
are read defensively, so no event stops the stream or leaves a profile that
msgpack or a strict JSON renderer refuses.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable

from engine.profiles.user_ids import is_identity_id

DAY_MS = 86_400_000
PAGES_KEPT = 20
VIEWED_KEPT = 20
ORDERS_KEPT = 200
CLAIMS_KEPT = 50
ITEMS_KEPT = 100
DAYS_KEPT = 90
PING_MS_DEFAULT = 10_000
PING_MS_MAX = 60_000
COMMERCE_EVENTS = frozenset({"product_view", "add_to_cart", "remove_from_cart", "purchase"})  # what _commerce reads
INTEREST_WEIGHTS = {"product_view": 1.0, "add_to_cart": 3.0, "purchase": 5.0}
QTY_MAX = 1_000_000  # one line of a cart or an order
MONEY_MAX = 1e12  # one price or order; sums of them stay far from float overflow


@dataclass(frozen=True)
class ProfileConfig:
    interest_half_life_days: float = 14.0
    consent_default: bool = True  # analytics consent assumed until the visitor says otherwise
    count_without_consent: bool = False  # else events without consent are dropped
    blocked_user_ids: tuple[str, ...] = ()  # beyond the built-in placeholders (user_ids.NEVER_IDENTITIES)


DEFAULT = ProfileConfig()


def new_profile(profile_id: str) -> dict:
    return {
        "id": profile_id,
        "kind": "anonymous",
        "user_id": None,
        "first_seen": None,
        "last_seen": None,
        "counts": {},
        "sessions": {"count": 0, "current": None, "last_start": None, "total_ms": 0},
        "pages": [],
        "engaged_ms": 0,
        "viewed": [],
        "interests": {},
        "commerce": {
            "cart": {},
            "orders": 0,
            "revenue": 0.0,
            "first_purchase": None,
            "last_purchase": None,
            "order_log": [],
            "items": {},
        },
        "traits": {},
        "traits_ts": {},
        "consent": {},
        "daily": {},
    }


def newest_items(items: dict[str, int]) -> dict[str, int]:
    """Item id -> when last bought, bounded to the ITEMS_KEPT most recent."""
    if len(items) <= ITEMS_KEPT:
        return items
    return dict(sorted(items.items(), key=lambda kv: (kv[1], kv[0]))[-ITEMS_KEPT:])


def decay(score: float, since_ms: int, now_ms: int, half_life_days: float) -> float:
    if now_ms <= since_ms:
        return score
    return score * 0.5 ** ((now_ms - since_ms) / (half_life_days * DAY_MS))


def interest_scores(profile: dict, now_ms: int, config: ProfileConfig = DEFAULT) -> dict[str, float]:
    """Interests decayed to `now_ms`: {category: score}."""
    return {
        cat: round(decay(score, ts, now_ms, config.interest_half_life_days), 4)
        for cat, (score, ts) in profile["interests"].items()
    }


def has_analytics_consent(profile: dict, config: ProfileConfig = DEFAULT) -> bool:
    return profile["consent"].get("analytics", config.consent_default)


def _touch_session(sessions: dict, session_id: str | None, ts: int, last_seen: int | None) -> None:
    if not session_id:
        return
    if session_id != sessions["current"]:
        sessions["count"] += 1
        sessions["current"] = session_id
        sessions["last_start"] = ts
    elif last_seen is not None and ts > last_seen:
        sessions["total_ms"] += ts - last_seen


def _count_day(profile: dict, ts: int, kind: str, category: str | None) -> None:
    day = str(ts // DAY_MS)
    daily = profile["daily"]
    bucket = daily.get(day)
    if bucket is None:  # a new day: the only time the window can pass DAYS_KEPT
        bucket = daily[day] = {}
        if len(daily) > DAYS_KEPT:
            for old in sorted(daily, key=int)[: len(daily) - DAYS_KEPT]:
                del daily[old]
    bucket[kind] = bucket.get(kind, 0) + 1
    if category:
        key = f"{kind}:{category}"
        bucket[key] = bucket.get(key, 0) + 1


def _add_interest(profile: dict, category: str, weight: float, ts: int, config: ProfileConfig) -> None:
    score, since = profile["interests"].get(category, (0.0, ts))
    newest = max(since, ts)
    profile["interests"][category] = [
        round(
            decay(score, since, newest, config.interest_half_life_days)
            + decay(weight, ts, newest, config.interest_half_life_days),
            6,
        ),
        newest,
    ]


def _object(value: Any) -> dict:
    return value if type(value) is dict else {}


def _props(event: dict) -> dict:
    return _object(event.get("props"))


def _product(event: dict) -> dict:
    return _object(_props(event).get("product"))


def _text(value: Any) -> str | None:
    return value if type(value) is str and value else None


def _item_id(value: Any) -> str | None:
    """Ids as the schema normalizes them (strings); anything else is no id."""
    if type(value) is int:
        return str(value)
    return _text(value)


def _qty(value: Any) -> int:
    return value if type(value) is int and 1 <= value <= QTY_MAX else 1


def _money(value: Any) -> float:
    if type(value) not in (int, float) or not value >= 0:  # NaN fails the comparison too
        return 0.0
    return float(min(value, MONEY_MAX))


def _trait(value: Any) -> bool:
    """A trait value a profile keeps: a scalar that msgpack and strict JSON both carry."""
    kind = type(value)
    if kind is float:
        return math.isfinite(value)
    if kind is int:
        return -(2**63) <= value < 2**63
    return kind is str or kind is bool


def _commerce(profile: dict, event: dict, config: ProfileConfig) -> None:
    kind, ts, commerce = event["type"], event["ts"], profile["commerce"]
    if kind == "product_view":
        product = _product(event)
        product_id = _item_id(product.get("id"))
        if product_id is None:
            return
        viewed = [v for v in profile["viewed"] if v["id"] != product_id]
        viewed.append({"id": product_id, "category": _text(product.get("category")), "ts": ts})
        profile["viewed"] = viewed[-VIEWED_KEPT:]
    elif kind in ("add_to_cart", "remove_from_cart"):
        product_id = _item_id(_product(event).get("id"))
        if product_id is None:
            return
        qty = _qty(_props(event).get("qty", 1))
        cart = commerce["cart"]
        # Bounded: a cart line holds at most QTY_MAX, however many adds arrive.
        cart[product_id] = min(cart.get(product_id, 0) + (qty if kind == "add_to_cart" else -qty), QTY_MAX)
        if cart[product_id] <= 0:
            del cart[product_id]
    elif kind == "purchase":
        order = _object(_props(event).get("order"))
        order_id = _item_id(order.get("id"))
        if order_id is None:
            return  # no order to count
        lines = order.get("items") if type(order.get("items")) is list else []
        items = [
            (item_id, _text(line.get("category")))
            for line in lines
            if type(line) is dict
            if (item_id := _item_id(line.get("id")))
        ]
        revenue = _money(order.get("revenue"))
        if event.get("claim") is True:  # a browser's order the shop's policy does not count
            claims = commerce.setdefault("claims", [])
            if not any(entry[2] == order_id for entry in claims):
                commerce["claims"] = sorted(claims + [[ts, revenue, order_id]])[-CLAIMS_KEPT:]
            return
        trusted = event.get("trusted") is True
        same = [entry for entry in commerce["order_log"] if entry[2] == order_id]
        if same and (not trusted or len(same[0]) > 3):
            return  # the same order sent twice under two event_ids, or a browser's copy of a confirmed one
        if same:  # the back end confirms what the browser said first: its revenue is the one
            commerce["order_log"] = [entry for entry in commerce["order_log"] if entry[2] != order_id]
            commerce["orders"] -= 1
            commerce["revenue"] = round(commerce["revenue"] - same[0][1], 2)
        commerce["orders"] += 1
        commerce["revenue"] = round(commerce["revenue"] + revenue, 2)
        commerce["first_purchase"] = ts if commerce["first_purchase"] is None else min(commerce["first_purchase"], ts)
        commerce["last_purchase"] = ts if commerce["last_purchase"] is None else max(commerce["last_purchase"], ts)
        entry = [ts, revenue, order_id, 1] if trusted else [ts, revenue, order_id]
        commerce["order_log"] = sorted(commerce["order_log"] + [entry])[-ORDERS_KEPT:]
        commerce["items"] = newest_items({**commerce["items"], **{item_id: ts for item_id, _ in items}})
        for item_id, category in items:
            commerce["cart"].pop(item_id, None)
            if category:
                _add_interest(profile, category, INTEREST_WEIGHTS["purchase"], ts, config)


def _identify(profile: dict, event: dict, config: ProfileConfig) -> None:
    user_id = event.get("user_id")
    if event.get("verified") is not True:
        if is_identity_id(user_id, config.blocked_user_ids):
            profile["claimed_user_id"] = user_id  # what the browser said, unproven: no link, no traits
        return
    if profile["user_id"] is None and is_identity_id(user_id, config.blocked_user_ids):
        # The first user to log in on this cookie owns it; another user's login is
        # refused by the link step (never two users in one profile).
        profile["user_id"] = user_id
        profile["kind"] = "identified"
    if profile["user_id"] is not None and profile["user_id"] != user_id:
        return  # another user's traits never land on the first user's profile
    ts = event["ts"]
    for key, value in _object(_props(event).get("traits")).items():
        if _trait(value) and ts >= profile["traits_ts"].get(key, ts):
            profile["traits"][key] = value
            profile["traits_ts"][key] = ts


def apply_event(profile: dict, event: dict, config: ProfileConfig = DEFAULT) -> dict:
    """Fold one event into the profile (mutates and returns it)."""
    kind, ts = event["type"], event["ts"]
    if kind == "consent":  # changes the consent, and nothing else
        given = {k: v for k, v in _object(_props(event).get("consent")).items() if type(v) is bool and k != "ts"}
        if given and ts >= profile["consent"].get("ts", ts):
            profile["consent"] = {**profile["consent"], **given, "ts": ts}
        return profile
    if not has_analytics_consent(profile, config):
        if config.count_without_consent:
            profile.setdefault("suppressed", {})[kind] = profile.get("suppressed", {}).get(kind, 0) + 1
        return profile

    counts = profile["counts"]
    counts[kind] = counts.get(kind, 0) + 1
    previous_last = profile["last_seen"]
    _touch_session(profile["sessions"], _text(event.get("session_id")), ts, previous_last)
    if profile["first_seen"] is None or ts < profile["first_seen"]:
        profile["first_seen"] = ts
    if previous_last is None or ts > previous_last:
        profile["last_seen"] = ts

    category = _text(_product(event).get("category"))
    _count_day(profile, ts, kind, category)
    if category and kind in INTEREST_WEIGHTS and kind != "purchase":
        _add_interest(profile, category, INTEREST_WEIGHTS[kind], ts, config)

    if kind == "page_view" and _text(event.get("url")):
        page = {"url": event["url"], "ts": ts}
        if _text(event.get("title")):
            page["title"] = event["title"]
        pages = profile["pages"]
        pages.append(page)
        del pages[:-PAGES_KEPT]
    elif kind == "page_ping":
        engaged = _props(event).get("engaged_ms", PING_MS_DEFAULT)
        if type(engaged) in (int, float) and engaged > 0:  # NaN fails the comparison
            profile["engaged_ms"] += int(min(engaged, PING_MS_MAX))
    elif kind == "identify":
        _identify(profile, event, config)
    if kind in COMMERCE_EVENTS:
        _commerce(profile, event, config)
    return profile


def fold(profile: dict, events: Iterable[dict], config: ProfileConfig = DEFAULT) -> dict:
    for event in events:
        apply_event(profile, event, config)
    return profile


def count_in_window(profile: dict, key: str, days: int, now_ms: int) -> int:
    """How often `key` ("product_view" or "product_view:shoes") happened in the last `days` days."""
    today = now_ms // DAY_MS
    return sum(bucket.get(key, 0) for day, bucket in profile["daily"].items() if today - int(day) < days)
