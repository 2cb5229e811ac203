"""Small HTTP helpers shared by the route modules: JSON errors, bounded bodies, identity."""

from __future__ import annotations

import re
import uuid

from starlette.requests import Request
from starlette.responses import JSONResponse

from engine.errors import BadRequest, Forbidden, PayloadTooLarge, Unauthorized, Unavailable

VISITOR_COOKIE = "clickstream_vid"
OPTOUT_COOKIE = "clickstream_optout"
COOKIE_MAX_AGE = 2 * 365 * 86400
_VISITOR_ID = re.compile(r"[A-Za-z0-9_.\-]{1,64}")


def error_response(exc: BadRequest | Unavailable) -> JSONResponse:
    body = {"error": exc.error, "detail": getattr(exc, "detail", None)}
    headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, Unavailable) else None
    return JSONResponse(body, status_code=exc.status, headers=headers)


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refusing more than `limit` bytes without reading them all."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"body: larger than {limit} bytes", {"limit": limit})
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"body: larger than {limit} bytes", {"limit": limit})
        chunks.append(chunk)
    return b"".join(chunks)


def visitor_cookie(request: Request) -> str | None:
    value = request.cookies.get(VISITOR_COOKIE)
    return value if value and _VISITOR_ID.fullmatch(value) else None


def new_visitor_id() -> str:
    return uuid.uuid4().hex


def is_https(request: Request) -> bool:
    return request.url.scheme == "https" or request.headers.get("x-forwarded-proto", "").lower() == "https"


def set_visitor_cookie(response, request: Request, visitor_id: str, domain: str | None) -> None:
    response.set_cookie(
        VISITOR_COOKIE, visitor_id, max_age=COOKIE_MAX_AGE, path="/", domain=domain,
        samesite="lax", secure=is_https(request), httponly=False,
    )


def bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def require_api_key(request: Request, api_keys: tuple[str, ...]) -> None:
    token = bearer_token(request)
    if token is None:
        raise Unauthorized("missing API key", "send Authorization: Bearer KEY")
    if token not in api_keys:
        raise Unauthorized("wrong API key")


async def require_key_or_own_cookie(request: Request, api_keys: tuple[str, ...], people, owner_id: str | None,
                                    refusal: str) -> None:
    """An API key, or the visitor's own cookie: `owner_id` is the cookie's id or the user id it is linked to."""
    if bearer_token(request) is not None:
        require_api_key(request, api_keys)
        return
    cookie = visitor_cookie(request)
    if cookie is None:
        raise Unauthorized("missing API key or visitor cookie")
    if cookie == owner_id:
        return
    user_id, _ = await people.resolve(cookie) if people is not None else (None, [])
    if user_id != owner_id:
        raise Forbidden(refusal)
