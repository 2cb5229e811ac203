"""The visitor's cookies: `clickstream_vid` (their visitor id) and `clickstream_optout`."""

from __future__ import annotations

from starlette.requests import Request

from engine.ingest.visitor_ids import is_visitor_id

VISITOR_COOKIE = "clickstream_vid"
OPTOUT_COOKIE = "clickstream_optout"
COOKIE_MAX_AGE = 2 * 365 * 86400


def visitor_cookie(request: Request) -> str | None:
    """The cookie's visitor id; a value the engine would not have issued counts as no cookie."""
    value = request.cookies.get(VISITOR_COOKIE)
    return value if is_visitor_id(value) else None


def opted_out(request: Request) -> bool:
    return bool(request.cookies.get(OPTOUT_COOKIE))


def is_https(request: Request) -> bool:
    return request.url.scheme == "https" or request.headers.get("x-forwarded-proto", "").lower() == "https"


def set_visitor_cookie(response, request: Request, visitor_id: str, domain: str | None) -> None:
    response.set_cookie(
        VISITOR_COOKIE,
        visitor_id,
        max_age=COOKIE_MAX_AGE,
        path="/",
        domain=domain,
        samesite="lax",
        secure=is_https(request),
        httponly=False,
    )
