"""The one table where errors become responses: `{"error", "detail"}` JSON, never a trace.

Domain errors (engine.errors) map by class; Redis out of reach is a 503 with
Retry-After, as is any other `Unavailable`; a client gone before its body arrived
is a 400 that nobody reads; anything unexpected is logged and a 500 whose body says
nothing more.
"""

from __future__ import annotations

import logging

from redis.exceptions import RedisError
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request

from engine import errors
from engine.api.responses import JSONResponse

log = logging.getLogger("engine.api")

STATUS: dict[type[errors.EngineError], int] = {
    errors.InvalidInput: 400,
    errors.TooLarge: 413,
    errors.TooSlow: 408,
    errors.NotAuthenticated: 401,
    errors.AccessDenied: 403,
    errors.NotFound: 404,
    errors.RateLimited: 429,
    errors.Unavailable: 503,
}
REDIS_RETRY_AFTER_S = 2


def status_of(exc: errors.EngineError) -> int:
    for cls in type(exc).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 500


def error_response(exc: errors.EngineError) -> JSONResponse:
    retry_after = getattr(exc, "retry_after", None)
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
    return JSONResponse({"error": exc.error, "detail": exc.detail}, status_code=status_of(exc), headers=headers)


async def _engine_error(request: Request, exc: errors.EngineError) -> JSONResponse:
    return error_response(exc)


async def _redis_error(request: Request, exc: RedisError) -> JSONResponse:
    log.warning("Redis unavailable on %s %s: %s", request.method, request.url.path, type(exc).__name__)
    return error_response(
        errors.Unavailable("the store is unavailable (Redis cannot be reached), retry later", REDIS_RETRY_AFTER_S)
    )


async def _http_error(request: Request, exc: HTTPException) -> JSONResponse:
    return JSONResponse({"error": exc.detail, "detail": None}, status_code=exc.status_code, headers=exc.headers)


async def _client_gone(request: Request, exc: ClientDisconnect) -> JSONResponse:
    # A client that closes its connection before its body arrives (a page unloading, a client's
    # timeout) is routine, not the engine's fault: no 500 and no trace in the log.
    log.info("client closed the connection before its body arrived on %s %s", request.method, request.url.path)
    return JSONResponse({"error": "body: the client closed the connection before it arrived", "detail": None}, 400)


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unexpected error on %s %s", request.method, request.url.path)
    return JSONResponse({"error": "internal error", "detail": None}, status_code=500)


EXCEPTION_HANDLERS = {
    errors.EngineError: _engine_error,
    RedisError: _redis_error,
    HTTPException: _http_error,
    ClientDisconnect: _client_gone,
    Exception: _unexpected,
}
