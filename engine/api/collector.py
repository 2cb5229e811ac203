"""The collector's routes: POST /v1/events and GET /v1/pixel.gif.

Thin: the access check says who is asking, engine.ingest.collector turns the body
into accepted and rejected events (pure), the publisher waits for the broker.
"""

from __future__ import annotations

import base64
import time
import uuid

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from engine.api.access import Access, guarded
from engine.api.body import decode_json, read_body
from engine.api.cookies import opted_out, set_visitor_cookie, visitor_cookie
from engine.api.responses import JSONResponse
from engine.ingest.collector import RequestInfo, collect, parse_events
from engine.ingest.enrich import truncate_ip
from engine.ingest.pixel import event_from_query
from engine.ingest.publisher import Publisher
from engine.ingest.visitor_ids import new_visitor_id
from engine.metrics import EVENTS_ACCEPTED, EVENTS_REJECTED
from engine.settings import Settings

PIXEL = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")


def _new_event_id() -> str:
    return uuid.uuid4().hex


def _request_info(request: Request, settings: Settings, visitor_id: str) -> RequestInfo:
    return RequestInfo(
        received_at=int(time.time() * 1000),
        visitor_id=visitor_id,
        user_agent=request.headers.get("user-agent"),
        ip=truncate_ip(request.client.host) if request.client else None,
        country=request.headers.get(settings.country_header),
    )


def collector_routes(settings: Settings, access: Access, publisher: Publisher) -> list[Route]:
    async def ingest(request: Request, raw_events: list, respond) -> Response:
        known = visitor_cookie(request)
        visitor_id = known or new_visitor_id()
        if opted_out(request):
            response = respond({"accepted": 0, "rejected": [], "opted_out": True})
        else:
            batch = collect(raw_events, _request_info(request, settings, visitor_id),
                            max_events=settings.max_events, new_id=_new_event_id)
            await publisher.publish(batch)
            EVENTS_ACCEPTED.inc(len(batch.accepted))
            EVENTS_REJECTED.inc(len(batch.rejected))
            result = {"accepted": len(batch.accepted), "rejected": batch.rejected}
            if batch.rejected and not batch.accepted:
                # Nothing usable: a 4xx, so the tracker does not retry it.
                first = batch.rejected[0]
                response = JSONResponse({"error": f"events[{first['index']}].{first['error']}", "detail": result}, status_code=400)
            else:
                response = respond(result)
        if known is None:
            set_visitor_cookie(response, request, visitor_id, settings.cookie_domain)
        return response

    async def post_events(request: Request) -> Response:
        body = await read_body(request, settings.max_body_bytes)
        return await ingest(request, parse_events(decode_json(body)), lambda payload: JSONResponse(payload, status_code=202))

    async def pixel(request: Request) -> Response:
        def respond(payload: dict) -> Response:
            return Response(PIXEL, media_type="image/gif", headers={"Cache-Control": "no-store"})

        return await ingest(request, [event_from_query(request.query_params)], respond)

    return [
        Route("/v1/events", guarded(access, "collect", post_events), methods=["POST"]),
        Route("/v1/pixel.gif", guarded(access, "collect", pixel), methods=["GET"]),
    ]
