"""State changes made through the API, as events on the log (pure).

Redis holds only what replaying the log rebuilds, so whatever the API changes (a
visitor's preferences, an erasure, catalog items) is also an event on the events
topic, of a server-only type that the collector refuses from outside:

    server:preferences  visitor_id: the visitor, or "u:<digest>" for a user's choices;
                        props: {user?, document (the JSON text stored), stamp}
    server:erase        visitor_id: one visitor id of the person (one event per device,
                        so each lands in order with that visitor's events);
                        props: {user?: digest, at}
    server:catalog      visitor_id: "catalog" (one partition, so writes keep their order);
                        props: {items: [{id, category, available, title?, price?}]}
    server:exposure     visitor_id: the visitor decided for (so it lands before their impressions);
                        props: {person: "u:<digest>" or the visitor id, pre: activity before,
                        exposures: [{decision_id, experiment, arm, propensity}]}
                        (engine.experiments; the profile fold ignores it)

`visitor_id` is the Kafka key. <digest> is the hash that names the user's keys in
Redis (engine.profiles.people): the log never carries a user id for these. The
worker applies each change in log order (engine.profiles.processor); applying one
twice changes nothing.
"""

from __future__ import annotations

from typing import Callable

from engine.errors import InvalidInput

PREFIX = "server:"
PREFERENCES = "server:preferences"
ERASE = "server:erase"
CATALOG = "server:catalog"
EXPOSURE = "server:exposure"
TYPES = frozenset({PREFERENCES, ERASE, CATALOG, EXPOSURE})
CATALOG_KEY = "catalog"
CATALOG_PER_EVENT = 1000  # keeps each record well under Kafka's default 1 MB message limit


def is_state_change(event: dict) -> bool:
    kind = event.get("type")
    return isinstance(kind, str) and kind.startswith(PREFIX)


def _event(kind: str, key: str, at: int, props: dict, new_id: Callable[[], str]) -> dict:
    return {"event_id": new_id(), "type": kind, "visitor_id": key, "ts": at, "received_at": at, "props": props}


def user_key(digest: str) -> str:
    return f"u:{digest}"


def stamp(at: int, event_id: str) -> str:
    """Orders preference writes: the later one wins, in the live API and in a replay alike."""
    return f"{at:015d} {event_id}"


def preferences(visitor_id: str | None, user: str | None, document: str, at: int, new_id: Callable[[], str]) -> dict:
    """The choices stored for the user (digest) when given, else for the visitor."""
    key = user_key(user) if user else visitor_id
    event = _event(PREFERENCES, key, at, {"document": document}, new_id)
    if user:
        event["props"]["user"] = user
    event["props"]["stamp"] = stamp(at, event["event_id"])
    return event


def erasure(visitor_id: str, user: str | None, at: int, new_id: Callable[[], str]) -> dict:
    props = {"at": at}
    if user:
        props["user"] = user
    return _event(ERASE, visitor_id, at, props, new_id)


def catalog(items: list[dict], at: int, new_id: Callable[[], str]) -> list[dict]:
    return [
        _event(CATALOG, CATALOG_KEY, at, {"items": items[i : i + CATALOG_PER_EVENT]}, new_id)
        for i in range(0, len(items), CATALOG_PER_EVENT)
    ]


def exposure(visitor_id: str, person: str, items: list[dict], pre: float, at: int, new_id: Callable[[], str]) -> dict:
    return _event(EXPOSURE, visitor_id, at, {"person": person, "pre": pre, "exposures": items}, new_id)


def _text(props: dict, name: str, required: bool = True) -> str | None:
    value = props.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value:
        raise InvalidInput(f"props.{name}: expected a non-empty string")
    return value


def check(event: dict) -> dict:
    """The change's props, checked; InvalidInput names the field (the worker dead-letters it)."""
    kind = event.get("type")
    if kind not in TYPES:
        raise InvalidInput(f"type: unknown state change {str(kind)[:80]!r}")
    props = event.get("props")
    if not isinstance(props, dict):
        raise InvalidInput("props: expected an object")
    if kind == PREFERENCES:
        _text(props, "document")
        _text(props, "stamp")
        _text(props, "user", required=False)
    elif kind == ERASE:
        at = props.get("at")
        if isinstance(at, bool) or not isinstance(at, int):
            raise InvalidInput("props.at: expected integer milliseconds")
        _text(props, "user", required=False)
    elif kind == EXPOSURE:
        _text(props, "person")
        items = props.get("exposures")
        if not isinstance(items, list) or not all(
            isinstance(x, dict)
            and isinstance(x.get("decision_id"), str)
            and isinstance(x.get("experiment"), str)
            and isinstance(x.get("arm"), str)
            and isinstance(x.get("propensity"), (int, float))
            for x in items
        ):
            raise InvalidInput("props.exposures: expected [{decision_id, experiment, arm, propensity}]")
        pre = props.get("pre", 0)
        if isinstance(pre, bool) or not isinstance(pre, (int, float)):
            raise InvalidInput("props.pre: expected a number")
    elif not isinstance(props.get("items"), list):
        raise InvalidInput("props.items: expected a list of catalog items")
    return props
