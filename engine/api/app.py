"""The HTTP app: every route of the collector and the API, over services built elsewhere.

`build_app(settings, services)` takes what the composition root (engine.wiring)
opened; the lifespan starts and stops it. Every route goes through the access
check (engine.api.access) and every error through one table (engine.api.errors).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
from pathlib import Path
from typing import Awaitable, Callable

from redis.exceptions import RedisError
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, wait_fixed

from engine.api.access import Access
from engine.api.body import BodyDeadline
from engine.api.catalog import catalog_routes
from engine.api.collector import collector_routes
from engine.api.decide import decide_routes
from engine.api.demo import demo_routes
from engine.api.experiments import experiment_routes
from engine.api.errors import EXCEPTION_HANDLERS
from engine.api.health import health_routes
from engine.api.openapi import openapi_routes
from engine.api.profiles import person_view, profile_routes
from engine.api.recommendations import recommend_routes
from engine.api.segments import segment_routes
from engine.console.backtest_job import Backtests
from engine.console.routes import console_routes
from engine.console.session import Sessions, console_secret
from engine.ingest.flow import Flow
from engine.metrics import COLLECTOR_LOG, REQUEST_LATENCY
from engine.settings import Settings

log = logging.getLogger("engine.app")

COLLECTOR, API = "collector", "api"
PACKAGE_DIR = Path(__file__).resolve().parent.parent


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


class HttpServices:
    """What one HTTP process serves from; engine.wiring fills it in for the roles it runs."""

    def __init__(self, settings: Settings, roles: set[str]) -> None:
        self.settings = settings
        self.roles = roles
        self.stores = None  # engine.wiring.Stores, when Redis is configured
        self.rules = None  # engine.rules.live.LiveRules
        self.recommend = None  # engine.recommend.service.RecommendService
        self.slots = None  # engine.rules.model_slots.ModelSlots
        self.decider = None  # engine.rules.service.DecideService
        self.experiments = None  # engine.experiments.service.Experiments
        self.profile_config = None  # engine.profiles.model.ProfileConfig
        self.publisher = None  # engine.ingest.publisher.Publisher (collector role)
        self.changelog = None  # engine.profiles.changelog.ChangeLog (API role): state changes on the log
        self.limiter = None  # engine.ingest.ratelimit.RateLimiter, when Redis is configured
        self.bot_counts = None  # engine.ingest.bot_counts.BotCounts, when Redis is configured
        self.flow = None  # engine.ingest.flow.Flow (collector role): events per minute, refusals
        self.served = None  # engine.rules.served.ServedCounts (API role): decisions per minute
        self.connect_publisher: Callable[[], Awaitable[object]] | None = None
        self.log_watch = None  # engine.ingest.publisher.LogWatch (collector role)
        self.public_view = None  # the person as the API shows them (engine.api.profiles.person_view)
        self.console_sessions = None  # engine.console.session.Sessions (API role): the console's cookie
        self.backtests = None  # engine.console.backtest_job.Backtests (API role): the rules page's backtest
        self.heartbeats: Callable[[], Awaitable[dict]] = _no_heartbeats
        self.segment_state: Callable[[], Awaitable[dict]] | None = None  # changes, backfill, deliveries for /metrics
        self.producer = None
        self._tasks: list[asyncio.Task] = []

    async def start(self) -> None:
        for counts in (self.flow, self.served):
            if counts is not None:
                self._tasks.append(asyncio.create_task(counts.run()))
        if API in self.roles:
            self.rules.start()
            if self.settings.catalog is not None:
                self._tasks.append(asyncio.create_task(self._load_catalog(self.settings.catalog)))
            self.recommend.models.start()
        if self.connect_publisher is not None:
            self._tasks.append(asyncio.create_task(self._connect()))

    async def _connect(self) -> None:
        self.producer = await self.connect_publisher()

    async def _load_catalog(self, path) -> None:
        """The catalog file, loaded once Redis answers (the app serves, with 503s, until then)."""
        async for attempt in AsyncRetrying(
            retry=retry_if_exception_type(RedisError), wait=wait_fixed(1.0), before_sleep=_catalog_not_yet
        ):
            with attempt:
                stored = await self.recommend.catalog.load_file(path)
        log.info("catalog: %d items from %s", stored, path)

    async def stop(self) -> None:
        if self.backtests is not None:
            await self.backtests.stop()
        if self.rules is not None:
            await self.rules.stop()
        if self.recommend is not None:
            await self.recommend.models.stop()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)  # the counters' last flush
        if self.log_watch is not None:
            if getattr(self.log_watch, "task", None) is not None:
                self.log_watch.task.cancel()
            await self.log_watch.identity.stop()
        if self.producer is not None:
            await self.producer.stop()
        if self.publisher is not None and self.publisher.spool is not None:
            self.publisher.spool.close()
        if self.stores is not None:
            await self.stores.close()

    async def broker_ok(self) -> bool:
        if self.producer is None:
            return False
        return await self.producer.client.fetch_all_metadata() is not None

    async def redis_ok(self) -> bool:
        return await self.stores.redis.ping()

    async def worker_ok(self) -> bool:
        return any(beat.get("ready") for beat in (await self.heartbeats()).values())

    async def log_state(self) -> dict:
        """What /healthz says of the event log: the collector's view, and each worker's."""
        state = {}
        if self.log_watch is not None:
            state["collector"] = self.log_watch.state()
        if API in self.roles:
            state["workers"] = {
                worker: {
                    k: beat.get(k) for k in ("log_id", "resets", "last_reset", "archived_events", "archive_pending")
                }
                for worker, beat in (await self.heartbeats()).items()
            }
        return state


async def _no_heartbeats() -> dict:
    return {}


def _catalog_not_yet(state: RetryCallState) -> None:
    log.warning("catalog file not loaded yet, Redis unavailable: %s", type(state.outcome.exception()).__name__)


def build_app(settings: Settings, services: HttpServices) -> Starlette:
    roles = services.roles
    linked_user = services.stores.people.linked_user if services.stores is not None else None
    access = Access(settings.api_keys, linked_user)
    routes: list = []
    checks = {}
    if COLLECTOR in roles:
        routes += collector_routes(
            settings, access, services.publisher, services.limiter, services.bot_counts, services.flow
        )
    if roles & {COLLECTOR, API}:
        checks["broker"] = services.broker_ok  # the API puts its state changes on the log
    if API in roles:
        stores = services.stores
        services.public_view = person_view(stores.values, services.rules, services.profile_config)
        routes += profile_routes(access, stores.people, services.public_view)
        routes += segment_routes(access, stores.segments, services.rules, stores.people)
        routes += decide_routes(settings, access, services.decider, services.served)
        routes += experiment_routes(access, services.experiments)
        routes += recommend_routes(access, services.recommend)
        routes += catalog_routes(access, services.recommend, services.changelog.publish)
        checks["redis"] = services.redis_ok
        checks["worker"] = services.worker_ok
        services.console_sessions = Sessions(console_secret(settings), settings.api_keys)
        services.backtests = Backtests(settings, services.rules, services.profile_config)
        routes += console_routes(services.console_sessions, services, Flow(stores.redis, settings.redis_prefix))
    if settings.demo_login:
        routes += demo_routes(settings, access)
    bot_days = services.bot_counts.recent if services.bot_counts is not None else None
    routes += health_routes(access, checks, services.heartbeats, services.log_state, bot_days, services.segment_state)
    if services.log_watch is not None:
        COLLECTOR_LOG.state = services.log_watch.state
    served = [(method, r.path) for r in routes if isinstance(r, Route) for method in sorted(r.methods - {"HEAD"})]
    routes += openapi_routes(access, served)
    unguarded = [r.path for r in routes if isinstance(r, Route) and not hasattr(r.endpoint, "access_action")]
    if unguarded:
        raise RuntimeError(f"routes without an access rule: {unguarded}")
    for name in ("static", "demo"):
        folder = PACKAGE_DIR / name
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
        Middleware(BodyDeadline, timeout_s=settings.body_timeout_s),
        Middleware(
            CORSMiddleware,
            allow_origins=list(settings.site_origins),
            allow_credentials=True,
            allow_methods=["GET", "POST", "PUT", "DELETE", "OPTIONS"],
            allow_headers=["Content-Type", "Authorization"],
            max_age=600,
        ),
    ]
    app = Starlette(routes=routes, middleware=middleware, lifespan=lifespan, exception_handlers=EXCEPTION_HANDLERS)
    app.state.services = services
    return app
