"""What an event may claim, given who sent it. Pure: no HTTP, no Kafka, no Redis.

The collector calls `judge` on every event the schema accepted, with what the
request proved (a `Sender`: an API key, the visitor's own cookie, or neither):

- A visitor id in a body must be one the engine issues (a v4 UUID), or the event is refused.
- Without a key, a visitor holding a cookie sends as that visitor only: an event naming
  another visitor id is refused.
- Events that change a visitor's consent, preferences, identity or orders (SENSITIVE)
  need that visitor's own cookie, or a key. Without a cookie a visitor id may still
  be named (an e-mail's pixel), for the other events only. The id the collector has
  just issued (no cookie came, the response sets it) is the sender's own.
- The collector sets the server's fields, whatever the client sent (a client's
  unknown top-level fields land in `props`, and nothing reads these from there):
      trusted   sent with an API key (a back end): its orders are authoritative
      verified  on identify: sent with a key, or with props.user_hash = hex
                HMAC-SHA256(identity secret, user_id); user_hash is not kept
      bot       the request came from a crawler or a headless browser, without a key
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Protocol

from engine.ingest.schema import InvalidEvent
from engine.ingest.visitor_ids import is_visitor_id

SENSITIVE = frozenset({"consent", "preference", "identify", "purchase"})
SERVER_FIELDS = ("trusted", "verified", "bot")


class EventDenied(InvalidEvent):
    """A well-formed event its sender may not send (the route answers 403 when nothing else came)."""


class Sender(Protocol):
    """What the request proved about who sent it (the collector's RequestInfo)."""

    trusted: bool  # an API key with the write scope
    visitor_id: str | None  # the sender's own visitor id: their cookie's, or the one just issued
    from_cookie: bool  # visitor_id came in a cookie (else the collector has just issued it)
    identity_secret: str | None
    bot: bool  # a crawler's or a headless browser's user agent


def user_hash(secret: str, user_id: str) -> str:
    """What a shop's back end computes at login and hands to the page: hex HMAC-SHA256 of the user id."""
    return hmac.new(secret.encode(), user_id.encode(), hashlib.sha256).hexdigest()


def verified_hash(secret: str | None, user_id: str, offered: object) -> bool:
    if not secret or not isinstance(offered, str) or len(offered) != 64 or not offered.isascii():
        return False
    return hmac.compare_digest(user_hash(secret, user_id), offered.lower())


def judge(event: dict, sender: Sender) -> dict:
    """The event with the server's fields set, or EventDenied / InvalidEvent naming the field."""
    vid = event["visitor_id"]
    if not is_visitor_id(vid):
        raise InvalidEvent("visitor_id: expected a visitor id issued by the engine (a UUID)")
    props = event.get("props") or {}
    offered = props.pop("user_hash", None) if event["type"] == "identify" else None
    for name in SERVER_FIELDS:
        event.pop(name, None)
    if not sender.trusted:
        own = vid == sender.visitor_id
        if not own and sender.from_cookie:
            raise EventDenied("visitor_id: differs from the cookie's (a visitor sends only their own events)")
        if not own and event["type"] in SENSITIVE:
            raise EventDenied(f"visitor_id: a {event['type']} event needs that visitor's own cookie, or an API key")
    event["trusted"] = sender.trusted
    event["bot"] = sender.bot and not sender.trusted
    if event["type"] == "identify":
        event["verified"] = sender.trusted or verified_hash(sender.identity_secret, event["user_id"], offered)
    return event


def scrubbed(raw: object) -> object:
    """A rejected event as the rejected topic keeps it: without a user_hash (a proof anyone could replay)."""
    if not isinstance(raw, dict):
        return raw
    out = {k: v for k, v in raw.items() if k != "user_hash"}
    if isinstance(out.get("props"), dict) and "user_hash" in out["props"]:
        out["props"] = {k: v for k, v in out["props"].items() if k != "user_hash"}
    return out
