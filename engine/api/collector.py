"""The collector's routes: POST /v1/events and GET /v1/pixel.gif.

Thin: the access check says who is asking, the rate limiter whether this address
may ask now, engine.ingest.collector turns the body into accepted and rejected
events (pure; engine.ingest.trust says what this sender may send), the publisher
waits for the broker. Without a key, requests are limited per client address, and
crawlers' and headless browsers' events are marked `bot` (the worker keeps them out
of every store). The pixel, like the tracker, records nothing under Do-Not-Track or
Global Privacy Control.
"""

from __future__ import annotations

import base64
import time
import uuid

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from engine.api.access import Access, Caller, guarded
from engine.api.body import decode_json, read_body
from engine.api.cookies import opted_out, set_visitor_cookie
from engine.api.responses import JSONResponse
from engine.errors import RateLimited
from engine.ingest.bot_counts import BotCounts
from engine.ingest.bots import is_bot
from engine.ingest.flow import Flow
from engine.ingest.collector import RequestInfo, collect, parse_events
from engine.ingest.enrich import truncate_ip
from engine.ingest.pixel import event_from_query
from engine.ingest.publisher import Publisher
from engine.ingest.ratelimit import RateLimiter
from engine.ingest.visitor_ids import new_visitor_id
from engine.metrics import EVENTS_ACCEPTED, EVENTS_REJECTED
from engine.settings import Settings

PIXEL = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")


def _new_event_id() -> str:
    return uuid.uuid4().hex


def _request_info(request: Request, settings: Settings, caller: Caller, visitor_id: str, ip: str | None) -> RequestInfo:
    user_agent = request.headers.get("user-agent")
    return RequestInfo(
        received_at=int(time.time() * 1000),
        visitor_id=visitor_id,
        user_agent=user_agent,
        ip=ip,
        country=request.headers.get(settings.country_header),
        trusted=caller.trusted,
        from_cookie=caller.visitor_id is not None,
        identity_secret=settings.identity_secret,
        bot=settings.bot_filter and not caller.trusted and is_bot(user_agent),
    )


def browser_says_no(request: Request) -> bool:
    """Do-Not-Track or Global Privacy Control, as the tracker reads them in the page."""
    return request.headers.get("dnt", "").strip() == "1" or request.headers.get("sec-gpc", "").strip() == "1"


def collector_routes(
    settings: Settings,
    access: Access,
    publisher: Publisher,
    limiter: RateLimiter | None = None,
    bot_counts: BotCounts | None = None,
    flow: Flow | None = None,
) -> list[Route]:
    async def admit(request: Request) -> tuple[Caller, str | None]:
        """The caller and their truncated address, once the address's rate limit lets them in."""
        caller: Caller = request.state.caller
        ip = truncate_ip(request.client.host) if request.client else None
        if limiter is not None and not caller.trusted:
            wait = await limiter.retry_after(ip)
            if wait is not None:
                raise RateLimited("too many requests from this address, retry later", wait, {"retry_after": wait})
        return caller, ip

    async def ingest(request: Request, caller: Caller, ip: str | None, raw_events: list, respond) -> Response:
        known = caller.visitor_id
        visitor_id = known or new_visitor_id()
        if opted_out(request):
            response = respond({"accepted": 0, "rejected": [], "opted_out": True})
        else:
            info = _request_info(request, settings, caller, visitor_id, ip)
            batch = collect(raw_events, info, max_events=settings.max_events, new_id=_new_event_id)
            await publisher.publish(batch)
            EVENTS_ACCEPTED.inc(len(batch.accepted))
            EVENTS_REJECTED.inc(len(batch.rejected))
            if flow is not None:
                flow.record(len(batch.accepted), raw_events, batch.rejected, info.bot, info.received_at)
            if info.bot and batch.accepted and bot_counts is not None:
                await bot_counts.add(len(batch.accepted), info.received_at)
            result = {"accepted": len(batch.accepted), "rejected": batch.rejected}
            if batch.rejected and not batch.accepted:
                # Nothing usable: a 4xx, so the tracker does not retry it; 403 when it was not theirs to send.
                first = batch.rejected[0]
                status = 403 if first["index"] in batch.denied else 400
                response = JSONResponse(
                    {"error": f"events[{first['index']}].{first['error']}", "detail": result}, status_code=status
                )
            else:
                response = respond(result)
        if known is None:
            set_visitor_cookie(response, request, visitor_id, settings.cookie_domain)
        return response

    async def post_events(request: Request) -> Response:
        caller, ip = await admit(request)
        body = await read_body(request, settings.max_body_bytes)
        return await ingest(
            request, caller, ip, parse_events(decode_json(body)), lambda payload: JSONResponse(payload, status_code=202)
        )

    async def pixel(request: Request) -> Response:
        def respond(payload: dict) -> Response:
            return Response(PIXEL, media_type="image/gif", headers={"Cache-Control": "no-store"})

        caller, ip = await admit(request)
        if browser_says_no(request) and not caller.trusted:
            return respond({})  # no event, no cookie
        return await ingest(request, caller, ip, [event_from_query(request.query_params)], respond)

    return [
        Route("/v1/events", guarded(access, "collect", post_events), methods=["POST"]),
        Route("/v1/pixel.gif", guarded(access, "collect", pixel), methods=["GET"]),
    ]
