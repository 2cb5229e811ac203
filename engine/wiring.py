"""The composition root: settings -> clients -> stores -> services.

Every process takes what it needs from here: the HTTP app (`create_app`), the worker
(`create_worker`) and each command (`open_stores`, `batch_handlers`, ...). A new
store or service is built here and nowhere else; nothing imports this module back,
and no domain module opens a client of its own.

    Settings ─▶ Redis, Kafka producer
             └▶ Stores: profiles, people, values, segments, co-occurrence, catalog, bandit,
                  recent sessions
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
from engine.experiments.credit import ExperimentCredit, erasure_hook as experiments_eraser
from engine.experiments.service import Experiments
from engine.experiments.store import ExperimentStore
from engine.destinations.delivery import Delivery
from engine.destinations.topic import ChangesTopic
from engine.ingest.bot_counts import BotCounts
from engine.ingest.publisher import Publisher
from engine.profiles import changes
from engine.profiles.changelog import ChangeLog
from engine.ingest.ratelimit import RateLimiter
from engine.profiles.derived import (
    SegmentEvaluator,
    SegmentSweeper,
    SegmentUpdater,
    offset_clock,
    refit_periodically,
    system_clock,
)
from engine.profiles.backfill import SegmentBackfill
from engine.profiles.model import ProfileConfig
from engine.profiles.orders import OrderTrust
from engine.profiles.people import People
from engine.profiles.processor import ProfileProcessor
from engine.profiles import segment_sizes
from engine.profiles.segment_sizes import SegmentSizes
from engine.profiles.segments_index import SegmentIndex
from engine.profiles.store import ProfileStore
from engine.profiles.value_store import ValueStore
from engine.profiles.wishlist import Wishlists
from engine.profiles.withdrawals import ConsentWatch
from engine.recommend import als_retrain, prior_job
from engine.recommend.als_model import AlsModel
from engine.recommend.als_store import ModelHolder
from engine.recommend.als_training import AlsParams
from engine.recommend.catalog import Catalog
from engine.recommend.sessions import SessionStore
from engine.recommend.config import RecommendConfig
from engine.recommend.service import RecommendService
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

API_REDIS_TIMEOUT_S = 0.5  # a request waits at most this long on Redis, then answers 503 (within 1 s)
EXPOSURE_ACK_TIMEOUT_S = 0.5  # decide serves unmeasured (and counts it) rather than wait longer for the log
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
    experiments: ExperimentStore
    wishlists: Wishlists
    recent: RecentEvents
    sessions: SessionStore

    async def close(self) -> None:
        await self.redis.aclose()


def build_stores(settings: Settings, redis: Redis, profile_cache: int = 0) -> Stores:
    prefix = settings.redis_prefix
    profiles = ProfileStore(
        redis,
        prefix,
        cluster=settings.redis_cluster,
        anonymous_ttl_s=settings.anonymous_retention_days * 86400,
        cache_size=profile_cache,
        dedup_days=settings.dedup_days,
    )
    people = People(
        redis,
        profiles,
        max_visitors=settings.max_visitors_per_user,
        blocked_user_ids=settings.blocked_user_ids,
        half_life_days=settings.interest_half_life_days,
    )
    values = ValueStore(redis, profiles, settings.interest_half_life_days)
    segments = SegmentIndex(redis, prefix)
    cooccurrence = CooccurrenceStore(
        redis,
        prefix,
        half_life_days=settings.popularity_half_life_days,
        view_ttl_s=settings.anonymous_retention_days * 86400,
    )
    experiments = ExperimentStore(
        redis,
        prefix,
        window_hours=settings.experiment_window_hours,
        ttl_s=settings.anonymous_retention_days * 86400,
        seen_ttl_s=int(settings.dedup_days * 86400),
    )
    recent = RecentEvents(redis, prefix, settings.anonymous_retention_days * 86400, profile_config(settings))
    sessions = SessionStore(
        redis, prefix, config=profile_config(settings), retention_s=settings.anonymous_retention_days * 86400
    )
    wishlists = wishlist_store(redis, prefix, segments)
    people.erasure_hooks += [
        values.forget,
        segments.forget,
        cooccurrence.forget,
        wishlists.forget,
        recent.forget,
        sessions.forget,
        experiments_eraser(experiments, people.digest),
    ]
    archive = open_archive(settings)
    if archive is not None:
        people.erasure_hooks.append(archive_eraser(archive))
    return Stores(
        redis,
        profiles,
        people,
        values,
        segments,
        cooccurrence,
        Catalog(redis, prefix),
        BanditStore(redis, prefix),
        experiments,
        wishlists,
        recent,
        sessions,
    )


def wishlist_store(redis: Redis, prefix: str, segments: SegmentIndex, emit: bool = True) -> Wishlists:
    return Wishlists(redis, prefix, segments.outbox_key, segments.stats_key, emit=emit)


def archive_eraser(archive: Archive):
    """Erasure hook: the archive stops holding the person's events (their visitor ids and user id)."""

    async def forget(person_id: str, pieces: list[dict]) -> None:
        subjects = {person_id, *(p.get("id") for p in pieces), *(p.get("user_id") for p in pieces)}
        # what the engine keyed by the user's digest (their exposures and choices when no visitor was named)
        subjects |= {changes.user_key(People.digest(s)) for s in list(subjects) if isinstance(s, str) and s}
        removed = await asyncio.to_thread(archive.forget, [s for s in subjects if isinstance(s, str)])
        log.info("erasure removed %d archived events", removed)

    return forget


def open_stores(
    settings: Settings, *, profile_cache: int = 0, timeout_s: float = WORKER_REDIS_TIMEOUT_S, fail_fast: bool = False
) -> Stores:
    return build_stores(settings, open_redis(settings.redis, timeout_s=timeout_s, fail_fast=fail_fast), profile_cache)


def choose_prior(settings: Settings) -> dict | None:
    """One choice of also-bought's prior strength, run in the chooser process with a Redis client of its own."""

    async def run() -> dict | None:
        redis = open_redis(settings.redis)
        try:
            store = CooccurrenceStore(redis, settings.redis_prefix, half_life_days=settings.popularity_half_life_days)
            return await prior_job.choose_once(store)
        finally:
            await redis.aclose()

    return asyncio.run(run())


def segment_evaluator(settings: Settings, stores: Stores, rules: LiveRules) -> SegmentEvaluator:
    clock = offset_clock(stores.redis, clock_key(settings)) if settings.test_clock else system_clock
    return SegmentEvaluator(
        stores.people,
        stores.values,
        stores.segments,
        rules,
        settings.interest_half_life_days,
        clock=clock,
        anonymous_ttl_ms=settings.anonymous_retention_days * 86_400_000,
    )


def clock_key(settings: Settings) -> str:
    """Where a test puts the worker's clock offset (ms), with CLICKSTREAM_TEST_CLOCK on."""
    return f"{settings.redis_prefix}:clock:offset"


async def segment_state(settings: Settings, stores: Stores, rules: LiveRules) -> dict:
    """What /metrics shows of segments: change counters, the latest backfill, deliveries kept for redelivery."""
    backfill = SegmentBackfill(segment_evaluator(settings, stores, rules))
    return {
        "counters": await stores.segments.counters(),
        "backfill": await backfill.progress(),
        "pending": await delivery(settings, stores, rules).pending(),
    }


def delivery(settings: Settings, stores: Stores, rules: LiveRules) -> Delivery:
    return Delivery(
        stores.redis,
        settings.redis_prefix,
        rules,
        stores.people,
        timeout_s=settings.webhook_timeout_s,
        retry_idle_s=settings.webhook_retry_idle_s,
        dead_after_s=settings.webhook_dead_after_hours * 3600,
        topic=ChangesTopic(settings, settings.segment_changes_topic) if settings.segment_changes_topic else None,
    )


def batch_handlers(settings: Settings, stores: Stores, rules: LiveRules, emit: bool = True) -> list:
    """Every store's idempotent batch update, in the order the worker applies them.

    `emit=False` (a replay): memberships are rebuilt without recording their changes again."""
    config = profile_config(settings)
    processor = ProfileProcessor(
        stores.profiles, stores.people, config, catalog=stores.catalog, orders=order_trust(settings, stores)
    )
    wishlists = wishlist_store(stores.redis, settings.redis_prefix, stores.segments, emit=emit)
    processor.on_catalog.append(wishlists.catalog_changed)
    processor.after_batch += [
        stores.values.mark_buyers,
        SegmentUpdater(segment_evaluator(settings, stores, rules), emit=emit),
        ConsentWatch(stores.people, stores.segments, emit=emit),
        wishlists,
    ]
    # Each of these keeps keys of its own and reads nothing the others write (see ProfileProcessor.beside_batch).
    processor.beside_batch += [
        BanditLearner(
            stores.redis,
            settings.redis_prefix,
            profile_config(settings),
            reward_cap=lambda slot: reward_cap(rules, slot),
        ),
        CooccurrenceUpdater(stores.redis, config=config, store=stores.cooccurrence),
        stores.sessions,
        stores.recent,
    ]
    processor.after_all.append(ExperimentCredit(stores.experiments, stores.profiles, stores.people))
    return [processor]


def reward_cap(rules: LiveRules, slot: str) -> float:
    spec = getattr(rules.current.slots.get(slot), "model", None)
    return spec.reward_cap if spec is not None else 100.0


def order_trust(settings: Settings, stores: Stores) -> OrderTrust:
    return OrderTrust(stores.redis, settings.redis_prefix, settings.untrusted_orders)


async def clear_derived_state(stores: Stores, settings: Settings) -> int:
    """What replay wipes before it rebuilds: everything batch_handlers derive."""
    await order_trust(settings, stores).clear()
    await stores.segments.clear()
    await stores.wishlists.clear()
    await stores.values.clear()
    await stores.cooccurrence.clear()
    await stores.experiments.clear()
    await stores.recent.clear()
    await stores.sessions.clear()
    return await stores.profiles.clear_all()


def experiments_service(settings: Settings, stores: Stores, rules: LiveRules) -> Experiments:
    return Experiments(stores.experiments, rules, settings.global_holdout, settings.experiment_window_hours)


def recommend_service(settings: Settings, stores: Stores, poll_s: float = 5.0) -> RecommendService:
    """What one API process serves lists from; start its model holder in the lifespan."""
    return RecommendService(
        stores.cooccurrence,
        stores.catalog,
        ModelHolder(stores.redis, settings.redis_prefix, poll_s),
        stores.people,
        RecommendConfig.from_settings(settings),
        sessions=stores.sessions,
    )


def als_params(settings: Settings) -> AlsParams:
    return AlsParams.from_settings(settings)


async def train(settings: Settings, stores: Stores, progress: bool = True, out_path=None) -> AlsModel:
    return await als_retrain.train(
        settings, stores.redis, stores.profiles, als_params(settings), progress=progress, out_path=out_path
    )


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
        services.decider = DecideService(
            settings,
            stores.people,
            stores.values,
            services.rules,
            model=services.slots,
            weather=load_weather_provider(settings.weather_provider),
        )
        services.recommend.held_out = lambda person, vid: services.decider.held_out(
            services.decider.person_key(person, vid, None)
        )
        services.experiments = experiments_service(settings, stores, services.rules)
        services.served = ServedCounts(stores.redis, settings.redis_prefix)
        services.heartbeats = lambda: read_heartbeats(
            stores.redis, workers_key(settings), settings.worker_heartbeat_s * 3
        )
        services.segment_state = lambda: segment_state(settings, stores, services.rules)
    if COLLECTOR in roles and services.stores is not None:
        services.limiter = RateLimiter(
            services.stores.redis, settings.redis_prefix, settings.rate_limit_per_s, settings.rate_limit_burst
        )
        services.bot_counts = BotCounts(services.stores.redis, settings.redis_prefix)
        services.flow = Flow(services.stores.redis, settings.redis_prefix)
    if COLLECTOR in roles:
        spool = None
        if settings.spool_dir is not None:
            spool = Spool(settings.spool_dir, max_bytes=settings.spool_max_mb << 20)
            spool.open()
        services.publisher = Publisher(None, settings.topic, settings.rejected_topic, spool=spool)
        services.log_watch = LogWatch(
            services.publisher,
            LogIdentity(settings),
            open_archive(settings),
            grace_s=settings.spool_grace_s,
            rotate_events=settings.broker_rotate_events,
            admin_delete=lambda topic: kafka.delete_topic(settings, topic),
            memory_only=settings.broker_memory_only,
            drain_timeout_s=3 * settings.archive_segment_s,
        )
    if API in roles:
        # What the API changes goes on the log first (Redis holds only what a replay rebuilds).
        services.changelog = ChangeLog(None, settings.topic)
        services.stores.people.publish = services.changelog.publish
        # Every decision's exposures, on a shorter leash: a slow broker must not hold decisions up.
        exposure_log = ChangeLog(None, settings.topic, ack_timeout_s=EXPOSURE_ACK_TIMEOUT_S)
        services.decider.publish = exposure_log.publish
        changelogs = [services.changelog, exposure_log]
    else:
        changelogs = []
    if settings.kafka and roles & {COLLECTOR, API}:
        services.connect_publisher = lambda: _connect_publisher(
            settings, services.publisher, changelogs, services.log_watch
        )
    return services


async def _connect_publisher(
    settings: Settings, publisher: Publisher | None, changelogs: list[ChangeLog], watch: LogWatch | None
):
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
    for user in (publisher, *changelogs):
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

    sweeper = SegmentSweeper(segment_evaluator(settings, stores, rules), settings.segment_sweep_s)
    backfill = SegmentBackfill(segment_evaluator(settings, stores, rules), poll_s=settings.segment_sweep_s / 5)
    webhooks = delivery(settings, stores, rules)
    await webhooks.ensure_groups()  # before the first batch, so a declared destination misses no change
    background = [
        sweeper.run,
        backfill.run,
        *([webhooks.run] if settings.worker_delivery else []),
        lambda stopping: refit_periodically(stores.values, stores.redis, settings.value_refit_minutes * 60, stopping),
        lambda stopping: segment_sizes.sample_periodically(
            SegmentSizes(stores.redis, settings.redis_prefix), stores.segments, rules, stopping
        ),
        lambda stopping: als_retrain.retrain_periodically(
            stores.redis,
            settings.redis_prefix,
            settings.als_retrain_minutes * 60,
            stopping,
            lambda: train(settings, stores, progress=False),
        ),
        lambda stopping: prior_job.choose_periodically(
            stores.cooccurrence,
            settings.recommend_prior_minutes * 60,
            stopping,
            choose=lambda: asyncio.get_running_loop().run_in_executor(prior_job.chooser(), choose_prior, settings),
        ),
    ]
    return WorkerParts(
        batch_handlers(settings, stores, rules),
        dead_letter,
        heartbeat,
        background,
        close,
        archive=open_archive(settings),
        identity=LogIdentity(settings),
    )


def create_worker(settings: Settings):
    from engine.stream.worker import create_worker_app

    return create_worker_app(settings, worker_parts)


# --- commands -----------------------------------------------------------------------


async def run_replay(settings: Settings, progress: bool = True) -> int:
    """Rebuilds everything the worker derives from the topic, with the engine's own rules."""
    from engine.stream.replay import replay

    stores = open_stores(settings)
    stores.segments.notify_erasures = False  # each erasure was told to destinations when it happened
    try:
        rules = LiveRules(settings.rules, half_life_days=settings.interest_half_life_days)
        rules.refresh()
        applied = await replay(
            settings,
            batch_handlers(settings, stores, rules, emit=False),
            lambda: clear_derived_state(stores, settings),
            progress,
        )
        if await stores.values.buyers():
            await stores.values.refit()
        return applied
    finally:
        await stores.close()


async def run_delivery(settings: Settings) -> None:
    """`clickstream deliver`: the delivery worker alone, until interrupted (SIGTERM or Ctrl-C)."""
    import signal

    stores = open_stores(settings)
    rules = LiveRules(settings.rules, half_life_days=settings.interest_half_life_days)
    rules.start()
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    try:
        await delivery(settings, stores, rules).run(stopping.is_set)
    finally:
        await rules.stop()
        await stores.close()


async def run_train(settings: Settings, progress: bool = True, out_path=None) -> AlsModel:
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

    return changes.catalog(
        [dict(id=item.id, **item.to_json()) for item in items], int(time.time() * 1000), lambda: uuid.uuid4().hex
    )


async def experiments_command(settings: Settings, command: str, name: str | None):
    """`clickstream experiments list|report ID|ope SLOT`: what the API answers, from the same stores and rules."""
    stores = open_stores(settings)
    try:
        rules = LiveRules(settings.rules, half_life_days=settings.interest_half_life_days)
        rules.refresh()
        service = experiments_service(settings, stores, rules)
        if command == "list":
            return await service.list()
        if command == "report":
            return await service.report(name)
        return await service.ope(name)
    finally:
        await stores.close()


async def export_segment(settings: Settings, name: str, form: str, out, progress=None) -> int | None:
    """`clickstream segments export`: every page of GET /v1/segments/NAME/export to `out`.

    `progress` (a tqdm bar) learns the segment's size, then each page's members read.
    Returns the rows written; None when the rule files declare no such segment."""
    from engine.profiles.segment_export import export_pages, write_all

    stores = open_stores(settings)
    try:
        rules = LiveRules(settings.rules, half_life_days=settings.interest_half_life_days)
        rules.refresh()
        if name not in {s.name for s in rules.current.segments}:
            return None
        if progress is not None:
            progress.total = (await stores.segments.sizes([name]))[name]
            progress.refresh()
        return await write_all(export_pages(stores.segments, stores.people, name), form, out, progress)
    finally:
        await stores.close()


async def load_person(settings: Settings, profile_id: str) -> tuple[dict | None, dict]:
    """A person as decide sees them (segments and value derived), for `rules preview`."""
    from engine.rules.commands import person_for_preview

    stores = open_stores(settings)
    try:
        return await person_for_preview(
            stores.people, stores.values, settings.rules, profile_id, settings.interest_half_life_days
        )
    finally:
        await stores.close()
