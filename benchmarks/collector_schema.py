"""The collector's path with three schema implementations, one core, same run.

Path measured: JSON body bytes -> list of events -> each validated and normalized
-> enriched -> msgpack-encoded, i.e. `parse_body` + `collect` of
engine/ingest/collector.py, in this process (no HTTP, no Kafka).

Rows:
  hand-written (before)   the isinstance validator and json.loads parser the engine had
                          before (benchmarks/baselines/handwritten_schema.py): the baseline
  hand-written + bounded  the same validator behind engine.ingest.jsondoc (to tell the
                          decoder's share from the schema's)
  msgspec (engine)        engine.ingest.schema: msgspec Structs, behind jsondoc
  pydantic v2             the same declared schema as pydantic models (strict), behind
                          jsondoc, with the same normalization
  json.loads, jsondoc     the two decoders alone
Every row must accept the same events, normalized the same, and reject the same
ones; the script checks that before timing. Rows take turns (see `interleaved`):
the figure is each row's median pass, so the load of a shared machine falls on all.

Data (fixed seed): batches of 50 events as the tracker sends them, mixed like a
shop's traffic: page_view 34%, page_ping 20%, product_view 20%, impression 12%,
add_to_cart 8%, purchase with 1 to 5 items 4%, identify 2%; one event in 50 is
invalid (a bad qty, price, ts or type), so the error path is in the mix too.

Usage: python benchmarks/collector_schema.py [--batches 200] [--seconds 3]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Annotated, Any, Callable, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.baselines import handwritten_schema  # noqa: E402
from benchmarks.common import machine  # noqa: E402
from engine.stream import codec  # noqa: E402
from engine.errors import PayloadTooLarge  # noqa: E402
from engine.ingest import jsondoc, schema  # noqa: E402
from engine.ingest.collector import Batch, RequestInfo, collect, parse_body  # noqa: E402
from engine.ingest.enrich import enrich  # noqa: E402
from engine.profiles.model import MONEY_MAX, QTY_MAX  # noqa: E402

BATCH = 50
NOW = 1_795_400_000_000
CATEGORIES = ["shoes", "coats", "umbrellas", "hats", "bags", "scarves"]
MIX = [
    ("page_view", 34),
    ("page_ping", 20),
    ("product_view", 20),
    ("impression", 12),
    ("add_to_cart", 8),
    ("purchase", 4),
    ("identify", 2),
]


# --- data ----------------------------------------------------------------------


def tracker_event(rng: random.Random, kind: str, visitor: str, session: str) -> dict:
    sku = f"sku-{rng.randint(1, 5000)}"
    event = {
        "event_id": uuid.UUID(int=rng.getrandbits(128)).hex,
        "type": kind,
        "visitor_id": visitor,
        "session_id": session,
        "ts": NOW - rng.randint(0, 60_000),
        "url": f"https://shop.example/{rng.choice(CATEGORIES)}/{sku}?utm_source=news",
        "title": f"Product {sku} – Shop",
    }
    if rng.random() < 0.3:
        event["referrer"] = "https://www.search.example/?q=rain+coat"
    product = {
        "id": sku,
        "category": rng.choice(CATEGORIES),
        "price": round(rng.uniform(5, 300), 2),
        "name": f"Item {sku}",
    }
    if kind == "page_ping":
        event["props"] = {"engaged_ms": rng.choice([5000, 10000, 15000])}
    elif kind == "product_view":
        event["props"] = {"product": product}
    elif kind == "add_to_cart":
        event["props"] = {"product": product, "qty": rng.randint(1, 3)}
    elif kind == "purchase":
        items = [
            {
                "id": f"sku-{rng.randint(1, 5000)}",
                "qty": rng.randint(1, 3),
                "price": round(rng.uniform(5, 300), 2),
                "category": rng.choice(CATEGORIES),
            }
            for _ in range(rng.randint(1, 5))
        ]
        event["props"] = {"order": {"id": f"o-{rng.getrandbits(40)}", "currency": "NOK", "items": items}}
        if rng.random() < 0.5:
            event["props"]["order"]["revenue"] = round(sum(i["qty"] * i["price"] for i in items), 2)
    elif kind == "identify":
        event["user_id"] = f"user-{rng.randint(1, 10**6)}"
        event["props"] = {"traits": {"plan": rng.choice(["free", "gold"]), "country": "NO", "newsletter": True}}
    elif kind == "impression":
        event["props"] = {
            "slot": "hero",
            "content": f"banner-{rng.randint(1, 12)}",
            "variant": "b",
            "decision_id": uuid.UUID(int=rng.getrandbits(128)).hex,
        }
    return event


def broken(rng: random.Random, event: dict) -> dict:
    flaw = rng.choice(["ts", "type", "qty", "price"])
    if flaw == "ts":
        return {**event, "ts": "yesterday"}
    if flaw == "type":
        return {**event, "type": "teleport"}
    if flaw == "qty":
        return {**event, "type": "add_to_cart", "props": {"product": {"id": "sku-1"}, "qty": 0}}
    return {**event, "type": "product_view", "props": {"product": {"id": "sku-1", "price": "cheap"}}}


def bodies(batches: int, seed: int = 11) -> list[bytes]:
    rng = random.Random(seed)
    kinds, weights = zip(*MIX)
    out = []
    for _ in range(batches):
        visitor, session = uuid.UUID(int=rng.getrandbits(128)).hex, uuid.UUID(int=rng.getrandbits(128)).hex
        events = [tracker_event(rng, kind, visitor, session) for kind in rng.choices(kinds, weights, k=BATCH)]
        events[rng.randrange(BATCH)] = broken(rng, events[0])
        out.append(json.dumps({"events": events}, ensure_ascii=False).encode())
    return out


# --- the same schema in pydantic v2 ----------------------------------------------


class Model(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore")


def Text(max_length: int, min_length: int = 0) -> Any:  # noqa: N802 - a type factory
    return Annotated[str, StringConstraints(min_length=min_length, max_length=max_length)]


PItemId = Text(64, 1) | Annotated[int, Field(ge=jsondoc.INT_MIN, le=jsondoc.INT_MAX)]
PQty = Annotated[int, Field(ge=1, le=QTY_MAX)]
PMoney = Annotated[float, Field(ge=0, le=MONEY_MAX, allow_inf_nan=False)]
PLAIN = "|".join(sorted(schema.EVENT_TYPES - set(schema.SCHEMAS)))


class PProduct(Model):
    id: PItemId
    category: Text(256) | None = None
    price: PMoney | None = None

    def normalize(self, raw: dict) -> dict:
        return {**raw, "id": str(self.id)}


class POrderItem(Model):
    id: PItemId
    qty: PQty = 1
    price: PMoney | None = None
    category: Text(256) | None = None

    def normalize(self, raw: dict) -> dict:
        return {**raw, "id": str(self.id), "qty": self.qty}


class POrder(Model):
    id: PItemId
    items: Annotated[list[POrderItem], Field(min_length=1, max_length=schema.ITEMS_MAX)]
    revenue: PMoney | None = None

    def normalize(self, raw: dict) -> dict:
        order = {**raw, "id": str(self.id), "items": [i.normalize(r) for i, r in zip(self.items, raw["items"])]}
        if self.revenue is None:
            order["revenue"] = round(sum(i.qty * (i.price or 0) for i in self.items), 2)
        return order


class PProductProps(Model):
    product: PProduct
    qty: PQty | None = None

    def normalize(self, props: dict) -> None:
        props["product"] = self.product.normalize(props["product"])


class PPurchaseProps(Model):
    order: POrder

    def normalize(self, props: dict) -> None:
        props["order"] = self.order.normalize(props["order"])


class PIdentifyProps(Model):
    traits: dict[str, Any] | None = None

    def normalize(self, props: dict) -> None:
        pass


class PSlotProps(Model):
    slot: Text(64, 1)
    content: Text(256, 1)
    variant: Text(256) | None = None
    decision_id: Text(256) | None = None

    def normalize(self, props: dict) -> None:
        pass


class PEvent(Model):
    type: Annotated[str, StringConstraints(pattern=rf"^(?:{PLAIN}|custom:[A-Za-z0-9_.\-]{{1,64}})$")]
    event_id: Text(64) | None = None
    visitor_id: Text(64) | None = None
    session_id: Text(64) | None = None
    user_id: Text(128) | None = None
    ts: Annotated[int, Field(ge=schema.EARLIEST_TS, le=schema.LATEST_TS)] | None = None
    url: Text(2048) | None = None
    referrer: Text(2048) | None = None
    title: Text(2048) | None = None
    props: dict[str, Any] | None = None


class PProductEvent(PEvent):
    type: Literal["product_view", "add_to_cart", "remove_from_cart"]
    props: PProductProps


class PPurchaseEvent(PEvent):
    type: Literal["purchase"]
    props: PPurchaseProps


class PIdentifyEvent(PEvent):
    type: Literal["identify"]
    user_id: Text(128, 1)
    props: PIdentifyProps | None = None


class PSlotEvent(PEvent):
    type: Literal["impression", "content_click"]
    props: PSlotProps


# The benchmark's mix has no preference or consent events; the rest is the engine's table.
PSCHEMAS = {
    "product_view": PProductEvent,
    "add_to_cart": PProductEvent,
    "remove_from_cart": PProductEvent,
    "purchase": PPurchaseEvent,
    "identify": PIdentifyEvent,
    "impression": PSlotEvent,
    "content_click": PSlotEvent,
}


def pydantic_validate(raw: Any, *, now_ms: int, new_id: Callable[[], str], visitor_id: str | None = None) -> dict:
    if type(raw) is not dict:
        raise schema.InvalidEvent("event: expected an object")
    kind = raw.get("type")
    model = PSCHEMAS.get(kind, PEvent) if type(kind) is str else PEvent
    props = raw.get("props")
    extra = raw.keys() - schema.KNOWN_FIELDS
    if extra and (props is None or type(props) is dict):
        props = {**{key: raw[key] for key in extra}, **(props or {})}
        raw = {**raw, "props": props}
    try:
        checked = model.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in first["loc"]).lstrip(".") or "event"
        raise schema.InvalidEvent(f"{path}: {first['msg'][:1].lower()}{first['msg'][1:]}") from None
    event = {"type": checked.type, "event_id": checked.event_id or new_id()}
    vid = checked.visitor_id or visitor_id
    if not vid:
        raise schema.InvalidEvent("visitor_id: is required (no clickstream_vid cookie either)")
    event["visitor_id"] = vid
    for name in ("session_id", "user_id"):
        if getattr(checked, name):
            event[name] = getattr(checked, name)
    ts = checked.ts
    if ts is None:
        ts = now_ms
    elif ts > now_ms + schema.MAX_CLOCK_SKEW_MS:
        raise schema.InvalidEvent(f"ts: {schema.TS_RULE}")
    event["ts"] = ts
    for name in ("url", "referrer", "title"):
        if getattr(checked, name):
            event[name] = getattr(checked, name)
    props = dict(props) if props else {}
    if isinstance(checked.props, Model):
        checked.props.normalize(props)
    event["props"] = props
    return event


def pydantic_collect(raw_events: list, info: RequestInfo, *, max_events: int, new_id: Callable[[], str]) -> Batch:
    """engine.ingest.collector.collect with the pydantic validator."""
    if len(raw_events) > max_events:
        raise PayloadTooLarge(f"events: more than {max_events} events in one request", {"limit": max_events})
    batch = Batch()
    for index, raw in enumerate(raw_events):
        try:
            event = pydantic_validate(raw, now_ms=info.received_at, new_id=new_id, visitor_id=info.visitor_id)
        except schema.InvalidEvent as exc:
            batch.rejected.append({"index": index, "error": str(exc)})
            batch.rejected_raw.append(raw)
            continue
        event = enrich(
            event, received_at=info.received_at, user_agent=info.user_agent, truncated_ip=info.ip, country=info.country
        )
        batch.accepted.append(event)
        batch.encoded.append(codec.encode(event))
    return batch


# --- timing ----------------------------------------------------------------------

INFO = RequestInfo(
    received_at=NOW,
    visitor_id="cookie-vid",
    user_agent="Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0",
    ip="203.0.113.0",
    country="NO",
)
PATHS: dict[str, tuple[Callable[[bytes], list], Callable[..., Batch]]] = {
    "hand-written (before): json.loads + isinstance checks": (
        handwritten_schema.parse_body,
        handwritten_schema.collect,
    ),
    "hand-written behind the bounded decoder (jsondoc)": (parse_body, handwritten_schema.collect),
    "msgspec Structs behind jsondoc (engine)": (parse_body, collect),
    "pydantic v2 models (strict) behind jsondoc": (parse_body, pydantic_collect),
}


def run(path, data: list[bytes]) -> list[Batch]:
    parse, collect_ = path
    return [collect_(parse(body), INFO, max_events=500, new_id=lambda: "generated") for body in data]


def same_results(data: list[bytes]) -> None:
    results = {name: run(path, data) for name, path in PATHS.items()}
    reference = results["msgspec Structs behind jsondoc (engine)"]
    for name, batches in results.items():
        for got, want in zip(batches, reference):
            assert got.accepted == want.accepted and got.encoded == want.encoded, f"{name}: accepted events differ"
            assert [r["index"] for r in got.rejected] == [r["index"] for r in want.rejected], (
                f"{name}: rejections differ"
            )


def interleaved(works: dict[str, Callable[[], object]], events: int, seconds: float) -> dict[str, float]:
    """Events/s per row from the median pass; rows take turns, so a busy moment of a
    shared machine falls on all of them alike."""
    passes: dict[str, list[float]] = {name: [] for name in works}
    for work in works.values():
        work()  # warm
    deadline = time.perf_counter() + seconds * len(works)
    while time.perf_counter() < deadline or len(next(iter(passes.values()))) < 3:
        for name, work in works.items():
            start = time.perf_counter()
            work()
            passes[name].append(time.perf_counter() - start)
    return {name: events / statistics.median(times) for name, times in passes.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batches", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=3.0, help="per row")
    args = parser.parse_args()
    data = bodies(args.batches)
    events = args.batches * BATCH
    print(machine())
    print(
        f"data: {args.batches} batches of {BATCH} events ({events:,} events, {sum(map(len, data)) / events:.0f} bytes "
        f"of JSON per event), {len(PATHS)} paths checked to agree; about {args.seconds:g} s per row, one core"
    )
    same_results(data)
    works = {name: (lambda p=path: run(p, data)) for name, path in PATHS.items()}
    works["json.loads alone"] = lambda: [json.loads(b) for b in data]
    works["jsondoc.loads alone (msgspec + depth and int64 checks)"] = lambda: [jsondoc.loads(b) for b in data]
    rows = interleaved(works, events, args.seconds)
    baseline = rows["hand-written (before): json.loads + isinstance checks"]
    print("\n| path | events/s | µs per event | vs hand-written |\n|---|---|---|---|")
    for name, rate in rows.items():
        print(f"| {name} | {rate:,.0f} | {1e6 / rate:.2f} | {rate / baseline:.2f}x |")


if __name__ == "__main__":
    main()
