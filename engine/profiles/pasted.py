"""A profile given whole as JSON (the console's preview), checked before anything decides on it. Pure.

What GET /v1/profiles/ID answers pastes as it is; so does a hand-written one such as
{"id": "u-1", "traits": {"first_name": "Ada"}}: the parts left out are a new
profile's (engine.profiles.model.new_profile). The parts that segments, values and
rules read are checked for their type, every error naming its place
("profile_json: commerce.orders: expected a whole number"); other fields are kept as
they are, for `profile` conditions to read.
"""

from __future__ import annotations

from typing import Any

from engine.errors import InvalidInput
from engine.ingest import jsondoc
from engine.ingest.visitor_ids import is_visitor_id
from engine.profiles.model import new_profile
from engine.profiles.preferences import check_preferences

FIELD = "profile_json"
TEXT_MAX = 64 * 1024
ID_MAX = 128


class _Wrong(Exception):
    def __init__(self, path: str, expected: str) -> None:
        super().__init__(f"{path}: expected {expected}")


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _moment(value: Any) -> bool:
    return value is None or _whole(value)


def _mapping(value: Any, path: str, each=None, expected: str = "") -> dict:
    if not isinstance(value, dict):
        raise _Wrong(path, "an object")
    if each is not None:
        for key, item in value.items():
            if not each(item):
                raise _Wrong(f"{path}.{key}", expected)
    return value


def _pair(value: Any) -> bool:
    """An interest: [score, since (ms)]."""
    return isinstance(value, list) and len(value) == 2 and _number(value[0]) and _number(value[1])


def _order(value: Any) -> bool:
    """An order_log entry: [ts (ms), revenue, order id(, trusted)]."""
    return isinstance(value, list) and len(value) >= 2 and _whole(value[0]) and (value[1] is None or _number(value[1]))


def _day(value: Any) -> bool:
    return isinstance(value, dict) and all(_number(n) for n in value.values())


def _check(given: dict) -> None:
    if not isinstance(given.get("id"), str) or not 0 < len(given["id"]) <= ID_MAX:
        raise _Wrong("id", f"the visitor id or user id (text of up to {ID_MAX} characters)")
    for name in ("user_id", "kind", "claimed_user_id"):
        if given.get(name) is not None and not isinstance(given[name], str):
            raise _Wrong(name, "text")
    if "visitor_ids" in given and not (
        isinstance(given["visitor_ids"], list) and all(isinstance(v, str) for v in given["visitor_ids"])
    ):
        raise _Wrong("visitor_ids", "a list of visitor ids")
    for name in ("first_seen", "last_seen"):
        if not _moment(given.get(name)):
            raise _Wrong(name, "a time in ms, or null")
    for name in ("traits", "traits_ts", "consent"):
        if name in given:
            _mapping(given[name], name)
    for name in ("pages", "viewed"):
        if name in given and not isinstance(given[name], list):
            raise _Wrong(name, "a list")
    if given.get("value") is not None:
        _mapping(given["value"], "value")
    if "counts" in given:
        _mapping(given["counts"], "counts", _number, "a number")
    if "interests" in given:
        _mapping(given["interests"], "interests", _pair, "[score, since in ms]")
    if "daily" in given:
        for day in _mapping(given["daily"], "daily", _day, "an object of counts"):
            if not day.lstrip("-").isdigit():
                raise _Wrong(f"daily.{day}", "a day number as its key")
    if "sessions" in given:
        sessions = _mapping(given["sessions"], "sessions")
        if "count" in sessions and not _whole(sessions["count"]):
            raise _Wrong("sessions.count", "a whole number")
    if "commerce" in given:
        commerce = _mapping(given["commerce"], "commerce")
        if "orders" in commerce and not _whole(commerce["orders"]):
            raise _Wrong("commerce.orders", "a whole number")
        if "revenue" in commerce and not _number(commerce["revenue"]):
            raise _Wrong("commerce.revenue", "a number")
        if "cart" in commerce:
            _mapping(commerce["cart"], "commerce.cart", _number, "a quantity")
        if "order_log" in commerce:
            log = commerce["order_log"]
            if not isinstance(log, list):
                raise _Wrong("commerce.order_log", "a list of [ts, revenue, order id]")
            for index, entry in enumerate(log):
                if not _order(entry):
                    raise _Wrong(f"commerce.order_log[{index}]", "[ts in ms, revenue, order id]")


def pasted_profile(text: str) -> dict:
    """The profile the JSON text holds, complete; InvalidInput naming the place of the first problem."""
    if len(text) > TEXT_MAX:
        raise InvalidInput(f"{FIELD}: larger than {TEXT_MAX // 1024} KiB")
    try:
        given = jsondoc.loads(text)
    except jsondoc.InvalidJson as exc:
        where = f" ({exc.detail})" if isinstance(exc.detail, str) else ""
        raise InvalidInput(f"{FIELD}: not JSON this engine reads: {exc.message}{where}") from None
    if not isinstance(given, dict):
        raise InvalidInput(f"{FIELD}: expected a JSON object, a profile as GET /v1/profiles/ID answers")
    try:
        _check(given)
    except _Wrong as exc:
        raise InvalidInput(f"{FIELD}: {exc}") from None
    try:
        preferences = check_preferences(given.get("preferences") or {})
    except InvalidInput as exc:
        raise InvalidInput(f"{FIELD}: preferences.{exc.error}") from None
    blank = new_profile(given["id"])
    person = {**blank, **given, "preferences": preferences}
    for name in ("sessions", "commerce"):  # the parts derive and the rules index into
        person[name] = {**blank[name], **given.get(name, {})}
    if "visitor_ids" not in given:  # bucketed as decide buckets the stored person (engine.rules.service)
        person["visitor_ids"] = [given["id"]] if is_visitor_id(given["id"]) else []
    return person
