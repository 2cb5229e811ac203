"""The one request-body helper: bounded reads, and JSON decoded once per request."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request

from engine.errors import InvalidInput, TooLarge
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
