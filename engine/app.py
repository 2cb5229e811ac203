"""The composition root: settings -> clients -> services -> one Starlette app.

`create_app(settings, roles)` serves the collector, the API, or both (the
embedded default). Nothing imports this module back.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
from pathlib import Path

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles

from engine import kafka
from engine.api.health import health_routes
from engine.api.http import error_response
from engine.api.profiles import profile_routes
from engine.errors import BadRequest, Unavailable
from engine.ingest.publisher import Publisher
from engine.ingest.routes import collector_routes
from engine.metrics import REQUEST_LATENCY
from engine.redis_client import open_redis
from engine.settings import Settings
from engine.stream import read_heartbeats
from engine.recommend.routes import recommend_routes
from engine.recommend.service import build_service
from engine.rules.bandit_store import BanditStore
from engine.rules.context import load_weather_provider
from engine.rules.model_slots import ModelSlots
from engine.rules.live import LiveRules
from engine.rules.service import DecideService, decide_routes
from engine.worker import profile_services, workers_key

log = logging.getLogger("engine.app")

COLLECTOR, API = "collector", "api"
PACKAGE_DIR = Path(__file__).parent


class LatencyMiddleware:
    """Records request latency per route template (never per raw path, which holds ids)."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start = time.perf_counter()
        status = {"code": 500}

        async def send_wrapper(message):
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            REQUEST_LATENCY.labels(template, scope["method"], str(status["code"])).observe(time.perf_counter() - start)


async def _engine_error(request: Request, exc):
    return error_response(exc)


async def _http_error(request: Request, exc: HTTPException):
    return JSONResponse({"error": exc.detail, "detail": None}, status_code=exc.status_code)


async def _unexpected(request: Request, exc: Exception):
    log.exception("unexpected error on %s %s", request.method, request.url.path)
    return JSONResponse({"error": "internal error", "detail": None}, status_code=500)


class Services:
    """The clients one HTTP process holds, opened in the lifespan."""

    def __init__(self, settings: Settings, roles: set[str]) -> None:
        self.settings = settings
        self.roles = roles
        self.redis = open_redis(settings.redis) if settings.redis else None
        self.producer = None  # aiokafka wants a running loop: made in start()
        self.producer_ready = asyncio.Event()
        self.profiles = profile_services(settings, self.redis) if self.redis else None
        self.rules = LiveRules(settings.rules)
        self.recommend = build_service(settings, self.redis, self.profiles.people) if self.redis else None
        self.publisher = Publisher(None, settings.topic, settings.rejected_topic) if COLLECTOR in roles else None
        self._tasks: list[asyncio.Task] = []

    async def start(self) -> None:
        if API in self.roles:
            self.rules.start()
            if self.settings.catalog is not None:
                stored = await self.recommend.catalog.load_file(self.settings.catalog)
                log.info("catalog: %d items from %s", stored, self.settings.catalog)
            self.recommend.models.start()
        if COLLECTOR in self.roles:
            self._tasks.append(asyncio.create_task(self._start_producer()))

    async def _start_producer(self) -> None:
        """Keeps trying, so the app can answer /healthz (503) while the broker comes up."""
        while True:
            try:
                await kafka.ensure_topics(self.settings, timeout_s=5)
                producer = kafka.producer(self.settings)
                await producer.start()
                self.producer = self.publisher.producer = producer
                self.producer_ready.set()
                return
            except Exception as exc:
                log.info("broker not reachable yet: %r", exc)
                await asyncio.sleep(0.5)

    async def stop(self) -> None:
        await self.rules.stop()
        if self.recommend is not None:
            await self.recommend.models.stop()
        for task in self._tasks:
            task.cancel()
        if self.producer is not None and self.producer_ready.is_set():
            await self.producer.stop()
        if self.redis is not None:
            await self.redis.aclose()

    async def broker_ok(self) -> bool:
        if not self.producer_ready.is_set():
            return False
        return await self.producer.client.fetch_all_metadata() is not None

    async def redis_ok(self) -> bool:
        return await self.redis.ping()

    async def heartbeats(self) -> dict:
        return await read_heartbeats(self.redis, workers_key(self.settings), self.settings.worker_heartbeat_s * 3)

    async def worker_ok(self) -> bool:
        return any(beat.get("ready") for beat in (await self.heartbeats()).values())


def create_app(settings: Settings, roles: set[str] | frozenset[str] = frozenset({COLLECTOR, API})) -> Starlette:
    services = Services(settings, set(roles))
    routes = []
    checks = {}
    if COLLECTOR in roles:
        routes += collector_routes(settings, services.publisher)
        checks["broker"] = services.broker_ok
    if API in roles:
        routes += profile_routes(settings, services.profiles, services.rules)
        model = ModelSlots(BanditStore(services.redis, settings.redis_prefix))
        services.decider = DecideService(settings, services.profiles, services.rules, model=model,
                                         weather=load_weather_provider(settings.weather_provider))
        routes += decide_routes(settings, services.decider)
        routes += recommend_routes(settings, services.recommend)
        checks["redis"] = services.redis_ok
        checks["worker"] = services.worker_ok

    async def heartbeats():
        return await services.heartbeats() if services.redis else {}

    routes += health_routes(checks, heartbeats)
    for name, folder in (("static", PACKAGE_DIR / "static"), ("demo", PACKAGE_DIR / "demo")):
        if folder.is_dir():
            routes.append(Mount(f"/{name}", StaticFiles(directory=folder, html=True), name=name))

    @contextlib.asynccontextmanager
    async def lifespan(app):
        await services.start()
        # What start-up made (modules, app, clients) lives as long as the process: out of the
        # collector's sight, a full collection no longer walks it and stalls requests for tens of ms.
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            await services.stop()

    middleware = [
        Middleware(LatencyMiddleware),
        Middleware(
            CORSMiddleware,
            allow_origins=list(settings.site_origins),
            allow_credentials=True,
            allow_methods=["GET", "POST", "PUT", "DELETE", "OPTIONS"],
            allow_headers=["Content-Type", "Authorization"],
            max_age=600,
        ),
    ]
    app = Starlette(
        routes=routes,
        middleware=middleware,
        lifespan=lifespan,
        exception_handlers={BadRequest: _engine_error, Unavailable: _engine_error, HTTPException: _http_error, Exception: _unexpected},
    )
    app.state.services = services
    return app
