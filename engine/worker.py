"""The worker: a faust app whose service runs the batch path into Redis.

Faust supplies what it is good at (the worker lifecycle, supervision, signals,
logging); the per-batch work is engine.stream. The handlers each apply a batch
idempotently; more stores join the list as the engine grows.
"""

from __future__ import annotations

import logging
import os
import socket
from dataclasses import dataclass

import faust
from mode import Service

from engine import kafka
from engine.profiles.derived import SegmentUpdater, refit_periodically
from engine.profiles.people import People
from engine.profiles.processor import ProfileProcessor
from engine.profiles.segments_index import SegmentIndex
from engine.profiles.store import ProfileStore
from engine.profiles.value_store import ValueStore
from engine.recommend import als
from engine.recommend.store import CooccurrenceStore, CooccurrenceUpdater
from engine.rules.bandit_store import BanditLearner
from engine.rules.live import LiveRules
from engine.redis_client import open_redis
from engine.settings import Settings
from engine.stream import BatchConsumer, Heartbeat

log = logging.getLogger("engine.worker")


def workers_key(settings: Settings) -> str:
    return f"{settings.redis_prefix}:workers"


@dataclass
class ProfileServices:
    """The profile stores one process uses, with erasure reaching every derived store."""

    store: ProfileStore
    people: People
    values: ValueStore
    segments: SegmentIndex
    cooccurrence: CooccurrenceStore


def profile_services(settings: Settings, redis, cache_size: int = 0) -> ProfileServices:
    store = ProfileStore(redis, settings.redis_prefix, cluster=settings.redis_cluster,
                         anonymous_ttl_s=settings.anonymous_retention_days * 86400, cache_size=cache_size)
    people = People(redis, store, max_visitors=settings.max_visitors_per_user,
                    blocked_user_ids=settings.blocked_user_ids, half_life_days=settings.interest_half_life_days)
    values = ValueStore(redis, store, settings.interest_half_life_days)
    segments = SegmentIndex(redis, settings.redis_prefix)
    cooccurrence = CooccurrenceStore(redis, settings.redis_prefix, half_life_days=settings.popularity_half_life_days,
                                     view_ttl_s=settings.anonymous_retention_days * 86400)
    people.erasure_hooks.append(values.forget)
    people.erasure_hooks.append(lambda person_id, pieces: forget_segments(segments, person_id, pieces))
    people.erasure_hooks.append(cooccurrence.forget)
    return ProfileServices(store, people, values, segments, cooccurrence)


async def forget_segments(index: SegmentIndex, person_id: str, pieces: list[dict]) -> None:
    for member in {person_id, *(p["id"] for p in pieces)}:
        await index.remove_person(member)


def batch_handlers(settings: Settings, redis, rules: LiveRules) -> list:
    """Every store's idempotent batch update, in the order the worker applies them."""
    services = profile_services(settings, redis, cache_size=settings.profile_cache_size)
    processor = ProfileProcessor(services.store, services.people, settings.profile_config())
    processor.after_batch += [
        services.values.mark_buyers,
        SegmentUpdater(services.people, services.values, services.segments, rules, settings.interest_half_life_days),
        BanditLearner(redis, settings.redis_prefix),
        CooccurrenceUpdater(redis, config=settings.profile_config(), store=services.cooccurrence),
    ]
    return [processor]


async def clear_derived_state(settings: Settings, redis) -> int:
    """What replay wipes before it rebuilds: everything batch_handlers derive."""
    services = profile_services(settings, redis)
    keys = [key async for key in redis.scan_iter(match=f"{settings.redis_prefix}:seg:*", count=1000)]
    await redis.delete(services.values.buyers_key, services.values.model_key, *keys)
    await services.cooccurrence.clear()
    return await services.store.clear_all()


def create_worker_app(settings: Settings) -> faust.App:
    datadir = settings.data_dir / "faust"
    datadir.mkdir(parents=True, exist_ok=True)
    app = faust.App(
        "clickstream-worker",
        broker=f"kafka://{settings.kafka}",
        store="memory://",
        web_enabled=False,
        topic_disable_leader=True,
        broker_rebalance_timeout=settings.rebalance_timeout_s,
        broker_session_timeout=max(6.0, 2 * settings.rebalance_timeout_s),
        broker_heartbeat_interval=1.0,
        datadir=str(datadir),
    )
    # The batch path has its own consumer; faust's would subscribe to nothing.
    app.boot_strategy = faust.App.BootStrategy(app, enable_kafka_consumer=False)

    @app.service
    class ProfileStream(Service):
        """Kafka batches -> stores; a heartbeat in Redis says it is alive."""

        async def on_start(self) -> None:
            await kafka.ensure_topics(settings)
            self.redis = open_redis(settings.redis)
            self.dead_letter = kafka.producer(settings)
            await self.dead_letter.start()
            self.rules = LiveRules(settings.rules)
            self.rules.start()
            self.values = profile_services(settings, self.redis).values
            self.batches = BatchConsumer(settings, batch_handlers(settings, self.redis, self.rules), dead_letter=self.dead_letter)
            await self.batches.start()
            worker_id = f"{socket.gethostname()}:{os.getpid()}"
            self.heartbeat = Heartbeat(
                self.redis, workers_key(settings), worker_id, self.batches.stats,
                self.batches.ready, settings.worker_heartbeat_s * 3,
            )

        @Service.task
        async def _consume(self) -> None:
            await self.batches.run(lambda: self.should_stop)

        @Service.task
        async def _refit_value(self) -> None:
            await refit_periodically(self.values, self.redis, settings.value_refit_minutes * 60, lambda: self.should_stop)

        @Service.task
        async def _retrain_als(self) -> None:
            await als.retrain_periodically(settings, self.redis, settings.als_retrain_minutes * 60,
                                           lambda: self.should_stop, als.AlsParams.from_settings(settings))

        @Service.task
        async def _beat(self) -> None:
            while not self.should_stop:
                try:
                    await self.heartbeat.beat()
                except Exception as exc:
                    log.warning("heartbeat failed: %r", exc)
                await self.sleep(settings.worker_heartbeat_s)

        async def on_stop(self) -> None:
            await self.batches.stop()
            await self.rules.stop()
            try:
                await self.heartbeat.clear()
            except Exception:
                pass
            await self.dead_letter.stop()
            await self.redis.aclose()

    return app


def run_worker(settings: Settings, loglevel: str = "info") -> None:
    app = create_worker_app(settings)
    worker = faust.Worker(app, loglevel=loglevel, quiet=True, redirect_stdouts=False)
    worker.execute_from_commandline()
