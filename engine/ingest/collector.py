"""Turns a request body into accepted and rejected events. Pure: no HTTP, no Kafka.

The body is one event object or {"events": [...]}. A body that is not JSON this
engine takes (engine.ingest.jsondoc), or not one of those shapes, fails whole
(400); too many events fails whole (413); otherwise each event is checked on its
own and the good ones are kept. What the schema accepts, msgpack encodes: the
decoder bounds depth and integers, the schema the rest.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from engine.errors import InvalidInput, TooLarge
from engine.ingest import jsondoc
from engine.stream import codec
from engine.ingest import trust
from engine.ingest.enrich import enrich
from engine.ingest.schema import InvalidEvent, validate_event


@dataclass
class Batch:
    accepted: list[dict] = field(default_factory=list)
    encoded: list[bytes] = field(default_factory=list)  # the accepted events as they go on Kafka
    rejected: list[dict] = field(default_factory=list)  # {"index", "error"}
    rejected_raw: list[Any] = field(default_factory=list)
    denied: set[int] = field(default_factory=set)  # indexes refused to this sender (trust.EventDenied)


@dataclass(frozen=True)
class RequestInfo:
    """What the collector knows about the request, apart from the body."""

    received_at: int
    visitor_id: str | None
    user_agent: str | None
    ip: str | None  # already truncated (engine.ingest.enrich.truncate_ip)
    country: str | None = None
    # Who sent it (engine.ingest.trust): an API key, the visitor's own cookie, or neither.
    trusted: bool = False
    from_cookie: bool = False  # visitor_id is the cookie's (else just issued)
    identity_secret: str | None = field(default=None, repr=False)
    bot: bool = False


def parse_events(payload: Any) -> list:
    """The events of a decoded body: one event object or {"events": [...]}."""
    if isinstance(payload, dict) and "events" in payload:
        events = payload["events"]
        if not isinstance(events, list):
            raise InvalidInput("events: expected a list of event objects")
        return events
    if isinstance(payload, dict):
        return [payload]
    raise InvalidInput('body: expected an event object or {"events": [...]}')


def parse_body(body: bytes) -> list:
    try:
        payload = jsondoc.loads(body)
    except jsondoc.InvalidJson as exc:
        raise InvalidInput(exc.message, exc.detail) from None
    return parse_events(payload)


def collect(raw_events: list, info: RequestInfo, *, max_events: int, new_id: Callable[[], str]) -> Batch:
    if len(raw_events) > max_events:
        raise TooLarge(f"events: more than {max_events} events in one request", {"limit": max_events})
    batch = Batch()
    for index, raw in enumerate(raw_events):
        try:
            event = trust.judge(
                validate_event(raw, now_ms=info.received_at, new_id=new_id, visitor_id=info.visitor_id), info
            )
        except InvalidEvent as exc:
            if isinstance(exc, trust.EventDenied):
                batch.denied.add(index)
            batch.rejected.append({"index": index, "error": str(exc)})
            batch.rejected_raw.append(raw)
            continue
        event = enrich(
            event, received_at=info.received_at, user_agent=info.user_agent, truncated_ip=info.ip, country=info.country
        )
        batch.accepted.append(event)
        batch.encoded.append(codec.encode(event))
    return batch
