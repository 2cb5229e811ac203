"""The composition root: settings -> clients -> stores -> services.

Every process takes what it needs from here: the HTTP app (`create_app`), the worker
(`create_worker`) and each command (`open_stores`, `batch_handlers`, ...). A new
store or service is built here and nowhere else; nothing imports this module back,
and no domain module opens a client of its own.

    Settings ─▶ Redis, Kafka producer
             └▶ Stores: profiles, people, values, segments, co-occurrence, catalog, bandit
                  └▶ services: live rules, decide, model slots, recommendations, publisher,
                               change log (the API's state changes, on the events topic)
                       └▶ engine.api.app (routes)  ·  engine.stream.worker (batch handlers)
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from redis.asyncio import Redis
from starlette.applications import Starlette
from tenacity import AsyncRetrying, RetryCallState, wait_fixed

from engine.api.app import COLLECTOR, API, HttpServices, build_app
from engine.ingest.bot_counts import BotCounts
from engine.ingest.publisher import Publisher
from engine.profiles import changes
from engine.profiles.changelog import ChangeLog
from engine.ingest.ratelimit import RateLimiter
from engine.profiles.derived import SegmentUpdater, refit_periodically
from engine.profiles.model import ProfileConfig
from engine.profiles.orders import OrderTrust
from engine.profiles.people import People
from engine.profiles.processor import ProfileProcessor
from engine.profiles import segment_sizes
from engine.profiles.segment_sizes import SegmentSizes
from engine.profiles.segments_index import SegmentIndex
from engine.profiles.store import ProfileStore
from engine.profiles.value_store import ValueStore
from engine.recommend import als
from engine.recommend.catalog import Catalog
from engine.recommend.service import RecommendConfig, RecommendService
from engine.recommend.store import CooccurrenceStore, CooccurrenceUpdater
from engine.redis_client import open_redis
from engine.rules.bandit_store import BanditLearner, BanditStore
from engine.rules.context import load_weather_provider
from engine.rules.live import LiveRules
from engine.rules.model_slots import ModelSlots
from engine.rules.service import DecideService
from engine.settings import Settings
from engine.ingest.publisher import LogWatch
from engine.ingest.spool import Spool
from engine.stream import kafka
from engine.stream.archive import Archive, open_archive
from engine.stream.logid import LogIdentity, ensure_log
from engine.stream.consumer import Heartbeat, WorkerParts, read_heartbeats
from engine.stream.recent import RecentEvents
from engine.ingest.flow import Flow
from engine.rules.served import ServedCounts

log = logging.getLogger("engine.wiring")

API_REDIS_TIMEOUT_S = 0.5     # a request waits at most this long on Redis, then answers 503 (within 1 s)
WORKER_REDIS_TIMEOUT_S = 30.0  # a batch's scripts may run long; a failed batch is retried


def profile_config(settings: Settings) -> ProfileConfig:
    return ProfileConfig(
        interest_half_life_days=settings.interest_half_life_days,
        consent_default=settings.consent_default,
        count_without_consent=settings.count_without_consent,
        blocked_user_ids=settings.blocked_user_ids,
    )


def workers_key(settings: Settings) -> str:
    return f"{settings.redis_prefix}:workers"


@dataclass
class Stores:
    """Every Redis-backed store of one process, over one client; erasure reaches each."""

    redis: Redis
    profiles: ProfileStore
    people: People
    values: ValueStore
    segments: SegmentIndex
    cooccurrence: CooccurrenceStore
    catalog: Catalog
    bandit: BanditStore
    recent: RecentEvents

    async def close(self) -> None:
        await self.redis.aclose()


def build_stores(settings: Settings, redis: Redis, profile_cache: int = 0) -> Stores:
    prefix = settings.redis_prefix
    profiles = ProfileStore(redis, prefix, cluster=settings.redis_cluster,
                            anonymous_ttl_s=settings.anonymous_retention_days * 86400, cache_size=profile_cache,
                            dedup_days=settings.dedup_days)
    people = People(redis, profiles, max_visitors=settings.max_visitors_per_user,
                    blocked_user_ids=settings.blocked_user_ids, half_life_days=settings.interest_half_life_days)
    values = ValueStore(redis, profiles, settings.interest_half_life_days)
    segments = SegmentIndex(redis, prefix)
    cooccurrence = CooccurrenceStore(redis, prefix, half_life_days=settings.popularity_half_life_days,
                                     view_ttl_s=settings.anonymous_retention_days * 86400)
    recent = RecentEvents(redis, prefix, settings.anonymous_retention_days * 86400, profile_config(settings))
    people.erasure_hooks += [values.forget, segments.forget, cooccurrence.forget, recent.forget]
    archive = open_archive(settings)
    if archive is not None:
        people.erasure_hooks.append(archive_eraser(archive))
    return Stores(redis, profiles, people, values, segments, cooccurrence, Catalog(redis, prefix), BanditStore(redis, prefix),
                  recent)


def archive_eraser(archive: Archive):
    """Erasure hook: the archive stops holding the person's events (their visitor ids and user id)."""
    async def forget(person_id: str, pieces: list[dict]) -> None:
        subjects = {person_id, *(p.get("id") for p in pieces), *(p.get("user_id") for p in pieces)}
        removed = await asyncio.to_thread(archive.forget, [s for s in subjects if isinstance(s, str)])
        log.info("erasure removed %d archived events", removed)
    return forget


def open_stores(settings: Settings, *, profile_cache: int = 0, timeout_s: float = WORKER_REDIS_TIMEOUT_S,
                fail_fast: bool = False) -> Stores:
    return build_stores(settings, open_redis(settings.redis, timeout_s=timeout_s, fail_fast=fail_fast), profile_cache)


def batch_handlers(settings: Settings, stores: Stores, rules: LiveRules) -> list:
    """Every store's idempotent batch update, in the order the worker applies them."""
    config = profile_config(settings)
    processor = ProfileProcessor(stores.profiles, stores.people, config, catalog=stores.catalog,
                                 orders=order_trust(settings, stores))
    processor.after_batch += [
        stores.values.mark_buyers,
        SegmentUpdater(stores.people, stores.values, stores.segments, rules, settings.interest_half_life_days),
        BanditLearner(stores.redis, settings.redis_prefix, profile_config(settings)),
        CooccurrenceUpdater(stores.redis, config=config, store=stores.cooccurrence),
        stores.recent,
    ]
    return [processor]


def order_trust(settings: Settings, stores: Stores) -> OrderTrust:
    return OrderTrust(stores.redis, settings.redis_prefix, settings.untrusted_orders)


async def clear_derived_state(stores: Stores, settings: Settings) -> int:
    """What replay wipes before it rebuilds: everything batch_handlers derive."""
    await order_trust(settings, stores).clear()
    await stores.segments.clear()
    await stores.values.clear()
    await stores.cooccurrence.clear()
    await stores.recent.clear()
    return await stores.profiles.clear_all()


def recommend_service(settings: Settings, stores: Stores, poll_s: float = 5.0) -> RecommendService:
    """What one API process serves lists from; start its model holder in the lifespan."""
    return RecommendService(stores.cooccurrence, stores.catalog, als.ModelHolder(stores.redis, settings.redis_prefix, poll_s),
                            stores.people, RecommendConfig.from_settings(settings))


def als_params(settings: Settings) -> als.AlsParams:
    return als.AlsParams.from_settings(settings)


async def train(settings: Settings, stores: Stores, progress: bool = True, out_path=None) -> als.AlsModel:
    return await als.train(settings, stores.redis, stores.profiles, als_params(settings), progress=progress, out_path=out_path)


# --- the HTTP app -------------------------------------------------------------------


def http_services(settings: Settings, roles: set[str]) -> HttpServices:
    services = HttpServices(settings, roles)
    if settings.redis:
        stores = open_stores(settings, timeout_s=API_REDIS_TIMEOUT_S, fail_fast=True)
        services.stores = stores
        services.profile_config = profile_config(settings)
        services.rules = LiveRules(settings.rules, half_life_days=settings.interest_half_life_days)
        services.recommend = recommend_service(settings, stores)
        services.slots = ModelSlots(stores.bandit, half_life_days=settings.interest_half_life_days)
        services.decider = DecideService(settings, stores.people, stores.values, services.rules, model=services.slots,
                                         weather=load_weather_provider(settings.weather_provider))
        services.served = ServedCounts(stores.redis, settings.redis_prefix)
        services.heartbeats = lambda: read_heartbeats(stores.redis, workers_key(settings), settings.worker_heartbeat_s * 3)
    if COLLECTOR in roles and services.stores is not None:
        services.limiter = RateLimiter(services.stores.redis, settings.redis_prefix, settings.rate_limit_per_s,
                                       settings.rate_limit_burst)
        services.bot_counts = BotCounts(services.stores.redis, settings.redis_prefix)
        services.flow = Flow(services.stores.redis, settings.redis_prefix)
    if COLLECTOR in roles:
        spool = None
        if settings.spool_dir is not None:
            spool = Spool(settings.spool_dir, max_bytes=settings.spool_max_mb << 20)
            spool.open()
        services.publisher = Publisher(None, settings.topic, settings.rejected_topic, spool=spool)
        services.log_watch = LogWatch(services.publisher, LogIdentity(settings), open_archive(settings),
                                      grace_s=settings.spool_grace_s, rotate_events=settings.broker_rotate_events,
                                      admin_delete=lambda topic: kafka.delete_topic(settings, topic),
                                      drain_timeout_s=3 * settings.archive_segment_s)
    if API in roles:
        # What the API changes goes on the log first (Redis holds only what a replay rebuilds).
        services.changelog = ChangeLog(None, settings.topic)
        services.stores.people.publish = services.changelog.publish
    if settings.kafka and roles & {COLLECTOR, API}:
        services.connect_publisher = lambda: _connect_publisher(settings, services.publisher, services.changelog,
                                                                services.log_watch)
    return services


async def _connect_publisher(settings: Settings, publisher: Publisher | None, changelog: ChangeLog | None,
                             watch: LogWatch | None):
    """Keeps trying, so the app can answer /healthz (503) while the broker comes up; then watches the log."""
    async for attempt in AsyncRetrying(wait=wait_fixed(0.5), before_sleep=_broker_not_yet):
        with attempt:
            try:
                if watch is not None:
                    await watch.identity.start()
                    publisher.log_id = await watch.identity.ensure(timeout_s=5)
                else:
                    await ensure_log(settings)
                producer = kafka.producer(settings)
                await producer.start()
            except Exception:
                if watch is not None:
                    await watch.identity.stop()
                raise
    for user in (publisher, changelog):
        if user is not None:
            user.producer = producer
    if watch is not None:
        watch.task = asyncio.create_task(watch.run(settings.log_check_s))
    return producer


def _broker_not_yet(state: RetryCallState) -> None:
    log.info("broker not reachable yet: %r", state.outcome.exception())


def create_app(settings: Settings, roles: set[str] | frozenset[str] = frozenset({COLLECTOR, API})) -> Starlette:
    """The collector, the API, or both (the embedded default), over one set of services."""
    return build_app(settings, http_services(settings, set(roles)))


# --- the worker ---------------------------------------------------------------------


async def worker_parts(settings: Settings, worker_id: str) -> WorkerParts:
    """What the worker's stream service runs; opened inside the worker's event loop."""
    await ensure_log(settings)
    stores = open_stores(settings, profile_cache=settings.profile_cache_size)
    rules = LiveRules(settings.rules, half_life_days=settings.interest_half_life_days)
    dead_letter = kafka.producer(settings)
    await dead_letter.start()
    rules.start()

    async def close() -> None:
        await rules.stop()
        await dead_letter.stop()
        await stores.close()

    def heartbeat(stats, ready) -> Heartbeat:
        return Heartbeat(stores.redis, workers_key(settings), worker_id, stats, ready, settings.worker_heartbeat_s * 3)

    background = [
        lambda stopping: refit_periodically(stores.values, stores.redis, settings.value_refit_minutes * 60, stopping),
        lambda stopping: segment_sizes.sample_periodically(SegmentSizes(stores.redis, settings.redis_prefix),
                                                           stores.segments, rules, stopping),
        lambda stopping: als.retrain_periodically(
            stores.redis, settings.redis_prefix, settings.als_retrain_minutes * 60, stopping,
            lambda: train(settings, stores, progress=False)),
    ]
    return WorkerParts(batch_handlers(settings, stores, rules), dead_letter, heartbeat, background, close,
                       archive=open_archive(settings), identity=LogIdentity(settings))


def create_worker(settings: Settings):
    from engine.stream.worker import create_worker_app

    return create_worker_app(settings, worker_parts)


# --- commands -----------------------------------------------------------------------


async def run_replay(settings: Settings, progress: bool = True) -> int:
    """Rebuilds everything the worker derives from the topic, with the engine's own rules."""
    from engine.stream.replay import replay

    stores = open_stores(settings)
    try:
        rules = LiveRules(settings.rules, half_life_days=settings.interest_half_life_days)
        rules.refresh()
        applied = await replay(settings, batch_handlers(settings, stores, rules), lambda: clear_derived_state(stores, settings),
                               progress)
        if await stores.values.buyers():
            await stores.values.refit()
        return applied
    finally:
        await stores.close()


async def run_train(settings: Settings, progress: bool = True, out_path=None) -> als.AlsModel:
    stores = open_stores(settings)
    try:
        return await train(settings, stores, progress, out_path)
    finally:
        await stores.close()


async def load_catalog(settings: Settings, items: list) -> int:
    """`clickstream catalog load`: on the log first, like the API's PUT, then in Redis at once."""
    stores = open_stores(settings)
    await ensure_log(settings)
    producer = kafka.producer(settings)
    await producer.start()
    try:
        await ChangeLog(producer, settings.topic).publish(catalog_changes(items))
        return await stores.catalog.put(items)
    finally:
        await producer.stop()
        await stores.close()


def catalog_changes(items: list) -> list[dict]:
    import time
    import uuid

    return changes.catalog([dict(id=item.id, **item.to_json()) for item in items], int(time.time() * 1000),
                           lambda: uuid.uuid4().hex)


async def load_person(settings: Settings, profile_id: str) -> tuple[dict | None, dict]:
    """A person as decide sees them (segments and value derived), for `rules preview`."""
    from engine.rules.commands import person_for_preview

    stores = open_stores(settings)
    try:
        return await person_for_preview(stores.people, stores.values, settings.rules, profile_id,
                                        settings.interest_half_life_days)
    finally:
        await stores.close()
