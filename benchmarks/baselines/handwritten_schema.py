"""The baseline of benchmarks/collector_schema.py: the collector before its schema was declared.

The hand-written validator (isinstance checks, field by field) and the json.loads
body parser, as they were in engine/ingest/schema.py and collector.py before
msgspec replaced them; kept verbatim so the benchmark can measure both in one run.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any, Callable

from engine.stream import codec
from engine.errors import BadRequest, PayloadTooLarge
from engine.ingest.collector import Batch, RequestInfo
from engine.ingest.enrich import enrich

SCHEMA_VERSION = 1

EVENT_TYPES = frozenset(
    {
        "page_view",
        "page_ping",
        "link_click",
        "product_view",
        "add_to_cart",
        "remove_from_cart",
        "purchase",
        "identify",
        "impression",
        "content_click",
        "preference",
        "consent",
    }
)
CUSTOM_TYPE = re.compile(r"custom:[A-Za-z0-9_.\-]{1,64}")
ID_MAX = 64
TEXT_MAX = 2048
KNOWN_FIELDS = ("event_id", "type", "visitor_id", "session_id", "user_id", "ts", "url", "referrer", "title", "props")
EARLIEST_TS = 946_684_800_000  # 2000-01-01: anything older is a broken client clock
MAX_CLOCK_SKEW_MS = 86_400_000


class InvalidEvent(ValueError):
    """An event that breaks the schema; the message starts with the field's path."""


def _fail(path: str, message: str) -> None:
    raise InvalidEvent(f"{path}: {message}")


def _string(value: Any, path: str, max_len: int, *, required: bool = False) -> str | None:
    if value is None:
        if required:
            _fail(path, "is required")
        return None
    if not isinstance(value, str):
        _fail(path, f"expected a string, got {type(value).__name__}")
    if required and not value:
        _fail(path, "must not be empty")
    if len(value) > max_len:
        _fail(path, f"longer than {max_len} characters")
    return value


def _number(value: Any, path: str, *, minimum: float | None = 0) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        _fail(path, "expected a number")
    if minimum is not None and value < minimum:
        _fail(path, f"must be at least {minimum}")
    return value


def _item_id(value: Any, path: str) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        _fail(path, "expected a string or integer id")
    text = str(value)
    if not text or len(text) > ID_MAX:
        _fail(path, f"must be 1 to {ID_MAX} characters")
    return text


def _object(value: Any, path: str) -> dict:
    if not isinstance(value, dict):
        _fail(path, f"expected an object, got {type(value).__name__}")
    return value


def _product(value: Any, path: str) -> dict:
    product = dict(_object(value, path))
    product["id"] = _item_id(product.get("id"), f"{path}.id")
    if product.get("category") is not None:
        _string(product["category"], f"{path}.category", 256)
    if product.get("price") is not None:
        _number(product["price"], f"{path}.price")
    return product


def _order(value: Any, path: str) -> dict:
    order = dict(_object(value, path))
    order["id"] = _item_id(order.get("id"), f"{path}.id")
    if order.get("revenue") is not None:
        _number(order["revenue"], f"{path}.revenue")
    items = order.get("items")
    if not isinstance(items, list) or not items:
        _fail(f"{path}.items", "expected a non-empty list")
    if len(items) > 500:
        _fail(f"{path}.items", "more than 500 items")
    checked = []
    for index, raw in enumerate(items):
        item_path = f"{path}.items[{index}]"
        item = dict(_object(raw, item_path))
        item["id"] = _item_id(item.get("id"), f"{item_path}.id")
        qty = item.get("qty", 1)
        if isinstance(qty, bool) or not isinstance(qty, int) or qty <= 0:
            _fail(f"{item_path}.qty", "expected a positive integer")
        item["qty"] = qty
        if item.get("price") is not None:
            _number(item["price"], f"{item_path}.price")
        if item.get("category") is not None:
            _string(item["category"], f"{item_path}.category", 256)
        checked.append(item)
    order["items"] = checked
    if order.get("revenue") is None:
        order["revenue"] = round(sum(i["qty"] * i.get("price", 0) for i in checked), 2)
    return order


def _consent(value: Any, path: str) -> dict:
    consent = _object(value, path)
    out = {}
    for key in ("analytics", "personalization"):
        if key in consent:
            if not isinstance(consent[key], bool):
                _fail(f"{path}.{key}", "expected true or false")
            out[key] = consent[key]
    if not out:
        _fail(path, "expected analytics and/or personalization")
    return out


def _check_props(kind: str, props: dict) -> dict:
    """Type-specific props; returns a copy with checked sub-objects."""
    props = dict(props)
    if kind in ("product_view", "add_to_cart", "remove_from_cart"):
        props["product"] = _product(props.get("product"), "props.product")
        if "qty" in props and (
            isinstance(props["qty"], bool) or not isinstance(props["qty"], int) or props["qty"] <= 0
        ):
            _fail("props.qty", "expected a positive integer")
    elif kind == "purchase":
        props["order"] = _order(props.get("order"), "props.order")
    elif kind == "identify":
        if props.get("traits") is not None:
            _object(props["traits"], "props.traits")
    elif kind in ("impression", "content_click"):
        _string(props.get("slot"), "props.slot", ID_MAX, required=True)
        _string(props.get("content"), "props.content", 256, required=True)
        for key in ("variant", "decision_id"):
            _string(props.get(key), f"props.{key}", 256)
    elif kind == "preference":
        _object(props.get("preferences"), "props.preferences")
    elif kind == "consent":
        props["consent"] = _consent(props.get("consent"), "props.consent")
    return props


def validate_event(
    raw: Any,
    *,
    now_ms: int,
    new_id: Callable[[], str],
    visitor_id: str | None = None,
) -> dict:
    """Return the normalized event or raise InvalidEvent naming the field.

    `visitor_id` is the collector's cookie value, used when the event has none.
    """
    if not isinstance(raw, dict):
        raise InvalidEvent(f"event: expected an object, got {type(raw).__name__}")
    kind = _string(raw.get("type"), "type", 80, required=True)
    if kind not in EVENT_TYPES and not CUSTOM_TYPE.fullmatch(kind):
        _fail("type", f"unknown event type {kind[:80]!r}")

    event: dict[str, Any] = {"type": kind}
    event["event_id"] = _string(raw.get("event_id"), "event_id", ID_MAX) or new_id()
    vid = _string(raw.get("visitor_id"), "visitor_id", ID_MAX) or visitor_id
    if not vid:
        _fail("visitor_id", "is required (no clickstream_vid cookie either)")
    event["visitor_id"] = vid
    for name in ("session_id", "user_id"):
        value = _string(raw.get(name), name, ID_MAX if name == "session_id" else 128)
        if value:
            event[name] = value
    if kind == "identify" and "user_id" not in event:
        _fail("user_id", "is required for identify")

    ts = raw.get("ts")
    if ts is None:
        ts = now_ms
    elif isinstance(ts, bool) or not isinstance(ts, int):
        _fail("ts", "expected integer milliseconds since epoch")
    elif not EARLIEST_TS <= ts <= now_ms + MAX_CLOCK_SKEW_MS:
        _fail("ts", "outside the accepted range (year 2000 to one day ahead)")
    event["ts"] = ts

    for name in ("url", "referrer", "title"):
        value = _string(raw.get(name), name, TEXT_MAX)
        if value:
            event[name] = value

    props = raw.get("props")
    props = {} if props is None else dict(_object(props, "props"))
    for key, value in raw.items():
        if key not in KNOWN_FIELDS and key not in props:
            props[key] = value
    event["props"] = _check_props(kind, props)
    return event


def parse_body(body: bytes) -> list:
    try:
        payload = json.loads(body)
    except UnicodeDecodeError:
        raise BadRequest("body is not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise BadRequest("malformed JSON", f"line {exc.lineno} column {exc.colno}: {exc.msg}") from None
    if isinstance(payload, dict) and "events" in payload:
        events = payload["events"]
        if not isinstance(events, list):
            raise BadRequest("events: expected a list of event objects")
        return events
    if isinstance(payload, dict):
        return [payload]
    raise BadRequest('body: expected an event object or {"events": [...]}')


def collect(raw_events: list, info: RequestInfo, *, max_events: int, new_id: Callable[[], str]) -> Batch:
    if len(raw_events) > max_events:
        raise PayloadTooLarge(f"events: more than {max_events} events in one request", {"limit": max_events})
    batch = Batch()
    for index, raw in enumerate(raw_events):
        try:
            event = validate_event(raw, now_ms=info.received_at, new_id=new_id, visitor_id=info.visitor_id)
        except InvalidEvent as exc:
            batch.rejected.append({"index": index, "error": str(exc)})
            batch.rejected_raw.append(raw)
            continue
        event = enrich(
            event, received_at=info.received_at, user_agent=info.user_agent, truncated_ip=info.ip, country=info.country
        )
        try:
            encoded = codec.encode(event)
        except (OverflowError, ValueError, TypeError):
            batch.rejected.append({"index": index, "error": "props: a number is outside the 64-bit range"})
            batch.rejected_raw.append(raw)
            continue
        batch.accepted.append(event)
        batch.encoded.append(encoded)
    return batch
