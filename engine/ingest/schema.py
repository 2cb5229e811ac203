"""Event schema v1, declared with msgspec: checks one event as the tracker sends it.

Pure: the caller passes the clock and the id factory. Each event type has one
Struct below (the fields every event has, and the props its type requires);
`validate_event` converts the event into it, then returns the event as a plain
dict, normalized. Errors name the field (`props.order.items[0].qty: expected a
positive integer`). Unknown top-level fields are kept under `props`, and unknown
keys inside props (and inside its products, orders and items) are kept as sent.

The input is what engine.ingest.jsondoc returns: the free-form parts (`Any`) are
bounded there, the declared parts here, and every bound is one the profile fold
can carry (QTY_MAX, MONEY_MAX come from engine.profiles.model). msgspec was
measured against pydantic and the hand-written checks it replaced
(benchmarks/collector_schema.py).
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Callable, ClassVar, Literal

import msgspec
from msgspec import UNSET, Meta, Struct, UnsetType

from engine.errors import InvalidInput
from engine.profiles.model import MONEY_MAX, QTY_MAX
from engine.profiles.preferences import check_preferences

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
        "add_to_wishlist",
        "remove_from_wishlist",
    }
)
CUSTOM_TYPE = re.compile(r"custom:[A-Za-z0-9_.\-]{1,64}")
SERVER_ONLY = "server:"  # the engine's own state changes (engine.profiles.changes): never from outside
ID_MAX = 64
USER_ID_MAX = 128
TEXT_MAX = 2048
ITEMS_MAX = 500
EARLIEST_TS = 946_684_800_000  # 2000-01-01: anything older is a broken client clock
LATEST_TS = 4_102_444_800_000  # 2100-01-01: the declared bound; the clock check below is tighter
MAX_CLOCK_SKEW_MS = 86_400_000
TS_RULE = "expected integer milliseconds since epoch, from the year 2000 to one day ahead"


def _text(max_length: int, min_length: int = 0) -> Any:
    return Annotated[str, Meta(min_length=min_length, max_length=max_length)]


Id = _text(ID_MAX)
Text = _text(TEXT_MAX)
Label = _text(256)
ItemId = _text(ID_MAX, 1) | Annotated[int, Meta(ge=-(2**63), le=2**63 - 1)]
Qty = Annotated[int, Meta(ge=1, le=QTY_MAX)]
Money = Annotated[float, Meta(ge=0, le=MONEY_MAX)]
Timestamp = Annotated[int, Meta(ge=EARLIEST_TS, le=LATEST_TS)]
# Types with props of their own have a Struct each; the rest share Event.
_PLAIN_TYPES = sorted(
    EVENT_TYPES
    - {
        "product_view",
        "add_to_cart",
        "remove_from_cart",
        "add_to_wishlist",
        "remove_from_wishlist",
        "purchase",
        "identify",
        "impression",
        "content_click",
        "preference",
        "consent",
    }
)
PlainType = Annotated[str, Meta(pattern=rf"^(?:{'|'.join(_PLAIN_TYPES)}|{CUSTOM_TYPE.pattern})\Z")]


class Schema(Struct, kw_only=True, gc=False):
    """A declared part of an event; `normalize` turns the checked part back into plain data."""


class Product(Schema):
    id: ItemId
    category: Label | None = None
    price: Money | None = None

    def normalize(self, raw: dict) -> dict:
        return {**raw, "id": str(self.id)}


class OrderItem(Schema):
    id: ItemId
    qty: Qty = 1
    price: Money | None = None
    category: Label | None = None

    def normalize(self, raw: dict) -> dict:
        return {**raw, "id": str(self.id), "qty": self.qty}


class Order(Schema):
    id: ItemId
    items: Annotated[list[OrderItem], Meta(min_length=1, max_length=ITEMS_MAX)]
    revenue: Money | None = None

    def normalize(self, raw: dict) -> dict:
        order = {**raw, "id": str(self.id), "items": [i.normalize(r) for i, r in zip(self.items, raw["items"])]}
        if self.revenue is None:
            order["revenue"] = round(sum(i.qty * (i.price or 0) for i in self.items), 2)
        return order


class Consent(Schema):
    analytics: bool | UnsetType = UNSET
    personalization: bool | UnsetType = UNSET
    marketing: bool | UnsetType = UNSET  # e-mail and other messages outside the site: never assumed
    one_of: ClassVar[tuple[str, ...]] = (
        "analytics",
        "personalization",
        "marketing",
    )  # a consent event states at least one

    def __post_init__(self) -> None:
        if all(getattr(self, purpose) is UNSET for purpose in self.one_of):
            raise ValueError("expected analytics, personalization and/or marketing")  # msgspec adds the path


class Props(Schema):
    def normalize(self, props: dict) -> None:
        """Replaces the checked sub-objects of `props` (the event's own copy) by their normal form."""


class ProductProps(Props):
    product: Product
    qty: Qty | None = None

    def normalize(self, props: dict) -> None:
        props["product"] = self.product.normalize(props["product"])


class PurchaseProps(Props):
    order: Order

    def normalize(self, props: dict) -> None:
        props["order"] = self.order.normalize(props["order"])


class IdentifyProps(Props):
    traits: dict[str, Any] | None = None


class SlotProps(Props):
    slot: _text(ID_MAX, 1)
    content: _text(256, 1)
    variant: Label | None = None
    decision_id: Label | None = None


class PreferenceProps(Props):
    preferences: dict[str, Any]

    def normalize(self, props: dict) -> None:
        try:  # the document PUT /v1/profiles/{id}/preferences takes, refused the same way
            props["preferences"] = check_preferences(self.preferences)
        except InvalidInput as exc:
            raise InvalidEvent(f"props.preferences.{exc.error}") from None


class ConsentProps(Props):
    consent: Consent

    def normalize(self, props: dict) -> None:
        props["consent"] = {
            key: value for key in self.consent.one_of if (value := getattr(self.consent, key)) is not UNSET
        }


class Event(Schema):
    """The fields every event has; page views, pings, link clicks and custom events are just this."""

    type: PlainType
    event_id: Id | None = None
    visitor_id: Id | None = None
    session_id: Id | None = None
    user_id: _text(USER_ID_MAX) | None = None
    ts: Timestamp | None = None
    url: Text | None = None
    referrer: Text | None = None
    title: Text | None = None
    props: dict[str, Any] | None = None


class ProductEvent(Event, kw_only=True):
    type: Literal["product_view", "add_to_cart", "remove_from_cart", "add_to_wishlist", "remove_from_wishlist"]
    props: ProductProps


class PurchaseEvent(Event, kw_only=True):
    type: Literal["purchase"]
    props: PurchaseProps


class IdentifyEvent(Event, kw_only=True):
    type: Literal["identify"]
    user_id: _text(USER_ID_MAX, 1)
    props: IdentifyProps | None = None


class SlotEvent(Event, kw_only=True):
    type: Literal["impression", "content_click"]
    props: SlotProps


class PreferenceEvent(Event, kw_only=True):
    type: Literal["preference"]
    props: PreferenceProps


class ConsentEvent(Event, kw_only=True):
    type: Literal["consent"]
    props: ConsentProps


SCHEMAS: dict[str, type[Event]] = {
    "product_view": ProductEvent,
    "add_to_cart": ProductEvent,
    "remove_from_cart": ProductEvent,
    "add_to_wishlist": ProductEvent,
    "remove_from_wishlist": ProductEvent,
    "purchase": PurchaseEvent,
    "identify": IdentifyEvent,
    "impression": SlotEvent,
    "content_click": SlotEvent,
    "preference": PreferenceEvent,
    "consent": ConsentEvent,
}
KNOWN_FIELDS = frozenset(Event.__struct_fields__)


class InvalidEvent(ValueError):
    """An event that breaks the schema; the message starts with the field's path."""


def validate_event(
    raw: Any,
    *,
    now_ms: int,
    new_id: Callable[[], str],
    visitor_id: str | None = None,
) -> dict:
    """Return the normalized event or raise InvalidEvent naming the field.

    `visitor_id` is the collector's cookie value, used when the event has none.
    One function, no helpers: it runs once per event, on the collector's hot path.
    """
    if type(raw) is not dict:
        raise InvalidEvent(f"event: expected an object, got {_json_name(raw)}")
    kind = raw.get("type")
    if type(kind) is str and kind.startswith(SERVER_ONLY):
        raise InvalidEvent(f"type: {kind[:80]!r} is reserved for the engine's own state changes")
    props = raw.get("props")
    if not KNOWN_FIELDS.issuperset(raw) and (props is None or type(props) is dict):
        props = {**{key: value for key, value in raw.items() if key not in KNOWN_FIELDS}, **(props or {})}
        raw = {**raw, "props": props}
    try:
        checked = msgspec.convert(raw, SCHEMAS.get(kind, Event) if type(kind) is str else Event)
    except msgspec.ValidationError as exc:
        raise InvalidEvent(describe(exc, kind)) from None

    event: dict[str, Any] = {"type": kind, "event_id": checked.event_id or new_id()}
    vid = checked.visitor_id or visitor_id
    if not vid:
        raise InvalidEvent("visitor_id: is required (no clickstream_vid cookie either)")
    event["visitor_id"] = vid
    if checked.session_id:
        event["session_id"] = checked.session_id
    if checked.user_id:
        event["user_id"] = checked.user_id
    ts = checked.ts
    if ts is None:
        ts = now_ms
    elif ts > now_ms + MAX_CLOCK_SKEW_MS:
        raise InvalidEvent(f"ts: {TS_RULE}")
    event["ts"] = ts
    if checked.url:
        event["url"] = checked.url
    if checked.referrer:
        event["referrer"] = checked.referrer
    if checked.title:
        event["title"] = checked.title
    props = dict(props) if props else {}
    if isinstance(checked.props, Props):
        checked.props.normalize(props)
    event["props"] = props
    return event


# --- errors: msgspec's messages in the house form, `path: reason` -------------

_AT = re.compile(r"(?P<what>.*?)(?: - at `(?P<path>[^`]*)`)?", re.S)
_MISSING = re.compile(r"Object missing required field `(.+)`")
_GOT = re.compile(r"Expected `(.+?)`, got `(.+)`")
_BOUND = re.compile(r"Expected `(str|array|int|float)`(?: of length)? (>=|<=) (.+)")
_NOUNS = {
    "str": "a string",
    "int": "an integer",
    "float": "a number",
    "bool": "true or false",
    "object": "an object",
    "array": "a list",
    "null": "null",
}
_GOT_NOUNS = {**_NOUNS, "bool": "a boolean"}


def describe(exc: msgspec.ValidationError, kind: Any = None) -> str:
    """`props.order.items[0].qty: expected a positive integer` from msgspec's error."""
    found = _AT.fullmatch(str(exc))
    what, path = found["what"], found["path"] or "$"
    missing = _MISSING.fullmatch(what)
    if missing:
        path, reason = f"{path}.{missing[1]}", "is required"
    else:
        reason = _reason(what)
    field = path[2:] if path.startswith("$.") else "event" if path == "$" else path
    if field == "type" and "matching regex" in what:
        reason = f"unknown event type {str(kind)[:80]!r}"
    elif field == "ts" and not missing:
        reason = TS_RULE
    return f"{field}: {reason}"


def _reason(what: str) -> str:
    got = _GOT.fullmatch(what)
    if got:
        expected = " or ".join(_NOUNS.get(t, t) for t in got[1].split(" | ") if t != "null") or "null"
        return f"expected {expected}, got {_GOT_NOUNS.get(got[2], got[2])}"
    bound = _BOUND.fullmatch(what)
    if not bound:
        return what[:1].lower() + what[1:]
    kind, op, limit = bound[1], bound[2], bound[3]
    number = limit if kind in ("str", "array") else _number(limit)
    if kind == "str":
        return (
            ("must not be empty" if limit == "1" else f"shorter than {limit} characters")
            if op == ">="
            else f"longer than {limit} characters"
        )
    if kind == "array":
        return (
            ("expected a non-empty list" if limit == "1" else f"fewer than {limit} items")
            if op == ">="
            else f"more than {limit} items"
        )
    if kind == "int" and op == ">=" and limit == "1":
        return "expected a positive integer"
    return f"must be at least {number}" if op == ">=" else f"must be at most {number}"


def _number(text: str) -> str:
    value = float(text)
    return str(int(value)) if value.is_integer() else text


def _json_name(value: Any) -> str:
    kind = {list: "array", str: "str", bool: "bool", int: "int", float: "float", type(None): "null"}.get(type(value))
    return _GOT_NOUNS.get(kind, type(value).__name__)
