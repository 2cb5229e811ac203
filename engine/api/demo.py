"""POST /demo/login: the demo shop's stand-in for a shop's back end at login.

A real shop computes identify's user_hash on its own server, where the identity
secret lives (README, "Verified identity"). The demo shop has no server of its own,
so this route signs the user id it is given, for anyone: it is registered only when
CLICKSTREAM_DEMO_LOGIN is on, which `clickstream up` does only for the embedded
default (its own broker and Redis, on one machine). Never turn it on for a real shop.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from engine.api.access import Access, guarded
from engine.api.body import json_body
from engine.errors import InvalidInput
from engine.ingest.trust import user_hash
from engine.settings import Settings

LOGIN_MAX_BYTES = 4096


def demo_routes(settings: Settings, access: Access) -> list[Route]:
    secret = settings.identity_secret
    if not secret:
        raise RuntimeError("CLICKSTREAM_DEMO_LOGIN needs CLICKSTREAM_IDENTITY_SECRET (`clickstream up` makes one)")

    async def login(request: Request) -> JSONResponse:
        body = await json_body(request, LOGIN_MAX_BYTES)
        user_id = body.get("user_id") if isinstance(body, dict) else None
        if not isinstance(user_id, str) or not 0 < len(user_id) <= 128:
            raise InvalidInput("user_id: expected text of up to 128 characters")
        return JSONResponse({"user_id": user_id, "user_hash": user_hash(secret, user_id)})

    return [Route("/demo/login", guarded(access, "demo_login", login), methods=["POST"])]
