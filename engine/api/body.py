"""The one request-body helper: bounded reads, and JSON decoded once per request."""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from engine.errors import InvalidInput, TooLarge, TooSlow
from engine.ingest import jsondoc

_PARSED = "parsed_json"


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refusing more than `limit` bytes without reading them all."""
    declared = request.headers.get("content-length")
    if declared and declared.isascii() and declared.isdigit() and int(declared) > limit:
        raise TooLarge(f"body: larger than {limit} bytes", {"limit": limit})
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise TooLarge(f"body: larger than {limit} bytes", {"limit": limit})
        chunks.append(chunk)
    return b"".join(chunks)


def decode_json(body: bytes) -> Any:
    """JSON with its nesting and numbers bounded (engine.ingest.jsondoc): no input makes a 5xx."""
    try:
        return jsondoc.loads(body)
    except jsondoc.InvalidJson as exc:
        raise InvalidInput(exc.message, exc.detail) from None


async def json_body(request: Request, limit: int) -> Any:
    """The body as JSON, read and decoded once (the access check may need it before the route)."""
    if _PARSED not in request.scope:
        request.scope[_PARSED] = decode_json(await read_body(request, limit))
    return request.scope[_PARSED]


class BodyDeadline:
    """ASGI middleware: a request's body must arrive whole within `timeout_s` of the request (else 408).

    uvicorn bounds idle connections, not a body that stops part way, so a client that
    declares 100 bytes and sends 8 would hold its connection and its handler for good.
    Only reads of the body are timed: once it is complete, a route that waits on the
    connection (for a disconnect, say) waits as long as it likes."""

    def __init__(self, app: ASGIApp, timeout_s: float) -> None:
        self.app = app
        self.timeout_s = timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout_s
        complete = False

        async def timed_receive() -> Message:
            nonlocal complete
            if complete:
                return await receive()
            try:
                async with asyncio.timeout_at(deadline):
                    message = await receive()
            except TimeoutError:
                raise TooSlow(
                    f"body: not received within {self.timeout_s:g} s", {"timeout_s": self.timeout_s}
                ) from None
            complete = message["type"] != "http.request" or not message.get("more_body", False)
            return message

        await self.app(scope, timed_receive, send)
