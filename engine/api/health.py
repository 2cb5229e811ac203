"""GET /healthz (ready only when every dependency of this process is) and GET /metrics."""

from __future__ import annotations

import asyncio
from typing import Awaitable, Callable

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from engine.api.access import Access, guarded
from engine.metrics import REGISTRY, WORKERS

Check = Callable[[], Awaitable[bool]]
CHECK_TIMEOUT_S = 1.5


async def _run(check: Check) -> bool:
    try:
        return bool(await asyncio.wait_for(check(), CHECK_TIMEOUT_S))
    except Exception:
        return False


def health_routes(access: Access, checks: dict[str, Check], heartbeats: Callable[[], Awaitable[dict]]) -> list[Route]:
    async def healthz(request: Request) -> JSONResponse:
        names = list(checks)
        results = await asyncio.gather(*(_run(checks[name]) for name in names))
        status = {name: "ok" if ok else "missing" for name, ok in zip(names, results)}
        missing = [name for name, ok in zip(names, results) if not ok]
        if missing:
            return JSONResponse({"error": "not ready", "detail": {"missing": missing, "checks": status}}, status_code=503)
        return JSONResponse({"status": "ok", "checks": status})

    async def metrics(request: Request) -> Response:
        try:
            WORKERS.heartbeats = await asyncio.wait_for(heartbeats(), CHECK_TIMEOUT_S)
        except Exception:
            WORKERS.heartbeats = {}
        return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)

    return [
        Route("/healthz", guarded(access, "public", healthz), methods=["GET"]),
        Route("/metrics", guarded(access, "public", metrics), methods=["GET"]),
    ]
