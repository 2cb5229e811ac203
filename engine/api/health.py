"""GET /healthz (ready only when every dependency of this process is) and GET /metrics.

Both answer within a second whatever is down: each check has CHECK_TIMEOUT_S. /healthz
names what is missing in a 503 with Retry-After; /metrics always answers, and says
which dependencies answered (`clickstream_dependency_up`).
"""

from __future__ import annotations

import asyncio
import time
from typing import Awaitable, Callable

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from engine.api.access import Access, guarded
from engine.api.errors import REDIS_RETRY_AFTER_S
from engine.api.responses import JSONResponse
from engine.metrics import BOTS, DEPENDENCY_UP, REGISTRY, SEGMENTS, WORKERS

Check = Callable[[], Awaitable[bool]]
CHECK_TIMEOUT_S = 0.8


async def _run(check: Check) -> bool:
    try:
        return bool(await asyncio.wait_for(check(), CHECK_TIMEOUT_S))
    except Exception:
        return False


async def _bounded(read: Callable[[], Awaitable[dict]] | None) -> dict:
    """What `read` answers within CHECK_TIMEOUT_S, or {} when it is slow, failing or absent."""
    if read is None:
        return {}
    try:
        return await asyncio.wait_for(read(), CHECK_TIMEOUT_S)
    except Exception:
        return {}


def health_routes(
    access: Access,
    checks: dict[str, Check],
    heartbeats: Callable[[], Awaitable[dict]],
    log_state: Callable[[], Awaitable[dict]] | None = None,
    bot_days: Callable[[int], Awaitable[dict]] | None = None,
    segment_state: Callable[[], Awaitable[dict]] | None = None,
) -> list[Route]:
    """`log` in the body tells which event log is read and written, and every reset seen (engine.stream.logid).

    A reset does not make the engine unready by itself: it recovers (new topics, the
    spool sent again); the body and /metrics say it happened and what may be missing.
    `bot_days` fills the per-day bot counts /metrics shows (engine.ingest.bot_counts);
    `segment_state` the segment changes, backfill and deliveries (engine.segments.state).
    """

    async def healthz(request: Request) -> JSONResponse:
        names = list(checks)
        results, details = await asyncio.gather(
            asyncio.gather(*(_run(checks[name]) for name in names)), _bounded(log_state)
        )
        status = {name: "ok" if ok else "missing" for name, ok in zip(names, results)}
        for name, ok in zip(names, results):
            DEPENDENCY_UP.labels(name).set(1 if ok else 0)
        missing = [name for name, ok in zip(names, results) if not ok]
        if missing:
            return JSONResponse(
                {"error": "not ready", "detail": {"missing": missing, "checks": status, "log": details}},
                status_code=503,
                headers={"Retry-After": str(REDIS_RETRY_AFTER_S)},
            )
        return JSONResponse({"status": "ok", "checks": status, "log": details})

    async def metrics(request: Request) -> Response:
        names = [name for name in checks if name != "worker"]  # workers: their heartbeats, below
        bots = (lambda: bot_days(int(time.time() * 1000))) if bot_days is not None else None
        *results, beats, days, segments = await asyncio.gather(
            *(_run(checks[name]) for name in names), _bounded(heartbeats), _bounded(bots), _bounded(segment_state)
        )
        for name, ok in zip(names, results):
            DEPENDENCY_UP.labels(name).set(1 if ok else 0)
        WORKERS.heartbeats = beats
        BOTS.days = days
        SEGMENTS.state = segments
        return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)

    return [
        Route("/healthz", guarded(access, "public", healthz), methods=["GET"]),
        Route("/metrics", guarded(access, "public", metrics), methods=["GET"]),
    ]
