"""POST /v1/decide and the model-driven slots' reports.

Without a key the person is the one of the visitor's own cookie (engine.api.access),
so nobody can render another visitor's profile (their first name, say) into a page;
a back end with a read key may name any visitor_id and user_id.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.routing import Route

from engine.api.access import Access, guarded, subject
from engine.api.body import json_body
from engine.api.responses import JSONResponse
from engine.errors import AccessDenied, NotFound
from engine.rules.context import build_context
from engine.rules.service import DecideService, check_request
from engine.settings import Settings

DECIDE_MAX_BYTES = 32 * 1024


async def _body_visitor(request: Request) -> str | None:
    body = await json_body(request, DECIDE_MAX_BYTES)
    return body.get("visitor_id") if isinstance(body, dict) and isinstance(body.get("visitor_id"), str) else None


def decide_routes(settings: Settings, access: Access, service: DecideService, served=None) -> list[Route]:
    """`served`: engine.rules.served.ServedCounts, which counts every decision given (the console shows them)."""

    async def post_decide(request: Request) -> JSONResponse:
        visitor_id, user_id, slots, site_context = check_request(await json_body(request, DECIDE_MAX_BYTES))
        caller = request.state.caller
        if not caller.trusted:
            if user_id is not None:
                raise AccessDenied("user_id: needs an API key (the tracker's identity comes from the cookie)")
            visitor_id = caller.visitor_id
        context = build_context(site_context, request.headers, settings.country_header)
        decisions = await service.decide(visitor_id, user_id, slots, context)
        if served is not None:
            served.record(decisions)
        return JSONResponse(
            {"visitor_id": visitor_id, "decisions": {slot: d.to_json() for slot, d in decisions.items()}}
        )

    async def slot_report(request: Request) -> JSONResponse:
        name = request.path_params["slot"]
        report = await service.model.report(service.rules.current, name) if service.model else None
        if report is None:
            raise NotFound("no model-driven slot of that name", {"slot": name})
        return JSONResponse(report)

    return [
        Route(
            "/v1/decide", guarded(access, "decide", post_decide, subject("visitor_id", _body_visitor)), methods=["POST"]
        ),
        Route("/v1/slots/{slot}/report", guarded(access, "reports", slot_report), methods=["GET"]),
    ]
