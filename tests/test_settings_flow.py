"""Each CLICKSTREAM_* variable reaches the place it governs.

Every setting is set to a value other than its default, and the object that setting
governs (built by engine.wiring, the one composition root) must see exactly that value.
A setting without a probe here fails the first test: a new variable must say where it goes.
Settings read off the settings object at the place they are used (the collector's limits,
the worker's loop timings) are probed as parsed; every value handed to a constructor is
probed on the object built, where a default written twice would show.
"""

from __future__ import annotations

import inspect
import uuid
from dataclasses import fields
from pathlib import Path

import httpx
import pytest

from engine import wiring
from engine.api.app import API, COLLECTOR
from engine.profiles.derived import system_clock
from engine.rules.live import LiveRules
from engine.settings import PREFIX, Settings
from engine.stream.consumer import kafka_consumer

REDIS = "redis://127.0.0.1:6379/0"


BUILT: list = []  # the services a probe built, closed after each test (their spools hold file locks)


def services(settings):
    built = wiring.http_services(settings, {COLLECTOR, API})
    BUILT.append(built)
    return built


@pytest.fixture(autouse=True)
def close_built():
    yield
    for built in BUILT:
        if built.publisher is not None and built.publisher.spool is not None:
            built.publisher.spool.close()
    BUILT.clear()


def handlers(settings):
    stores = wiring.build_stores(settings, wiring.open_redis(settings.redis))
    rules = LiveRules(settings.rules, half_life_days=settings.interest_half_life_days)
    processor = wiring.batch_handlers(settings, stores, rules)[0]
    return stores, processor


def after_batch(settings, kind: str):
    _, processor = handlers(settings)
    return next(step for step in [*processor.after_batch, *processor.beside_batch] if type(step).__name__ == kind)


def consumer_option(settings, name):
    consumer = kafka_consumer(settings, settings.topic, group_id=settings.consumer_group)
    return consumer._client._bootstrap_servers if name == "bootstrap" else getattr(consumer, name)


# variable -> (raw value, what the governed place sees, the parsed value it must equal)
FLOW = {
    "kafka": ("127.0.0.1:19092", lambda s: consumer_option(s, "bootstrap"), "127.0.0.1:19092"),
    "redis": (REDIS.replace("/0", "/1"), lambda s: services(s).stores.redis.connection_pool.connection_kwargs["db"], 1),
    "api_keys": ("k1:read", lambda s: _key_statuses(s), {"read": 404, "erase": 403, "unknown": 401}),
    "identity_secret": ("x" * 40, lambda s: s.identity_secret, "x" * 40),
    "console_secret": (
        "c" * 40,
        lambda s: wiring.build_app(s, services(s)).state.services.console_sessions.secret,
        "c" * 40,
    ),
    "demo_login": (
        "true",
        lambda s: any(getattr(r, "path", "") == "/demo/login" for r in wiring.build_app(s, services(s)).routes),
        True,
    ),
    "untrusted_orders": ("claim", lambda s: handlers(s)[1].orders.policy, "claim"),
    "rate_limit_per_s": ("7.5", lambda s: services(s).limiter.rate, 7.5),
    "rate_limit_burst": ("9", lambda s: services(s).limiter.burst, 9),
    "bot_filter": ("false", lambda s: s.bot_filter, False),
    "rules": ("/tmp/elsewhere-rules", lambda s: services(s).rules.path, Path("/tmp/elsewhere-rules")),
    "site_origins": ("https://shop.example", lambda s: _cors_origins(s), ["https://shop.example"]),
    "topic": ("t.flow", lambda s: services(s).publisher.topic, "t.flow"),
    "rejected_topic": ("t.flow.rejected", lambda s: services(s).publisher.rejected_topic, "t.flow.rejected"),
    "partitions": ("3", lambda s: s.partitions, 3),
    "redis_prefix": ("flowpfx", lambda s: services(s).stores.profiles.prefix, "flowpfx"),
    "consumer_group": ("flow-group", lambda s: consumer_option(s, "_group_id"), "flow-group"),
    "batch_size": ("123", lambda s: consumer_option(s, "_max_poll_records"), 123),
    "batch_wait_ms": ("77", lambda s: s.batch_wait_ms, 77),
    "rebalance_timeout_s": ("4", lambda s: consumer_option(s, "_rebalance_timeout_ms"), 4000),
    "redis_cluster": ("true", lambda s: wiring.build_stores(s, wiring.open_redis(REDIS)).profiles.cluster, True),
    "consent_default": ("false", lambda s: after_batch(s, "BanditLearner").config.consent_default, False),
    "count_without_consent": ("true", lambda s: wiring.profile_config(s).count_without_consent, True),
    "blocked_user_ids": ("guest,0", lambda s: services(s).stores.people.blocked, ("guest", "0")),
    "max_visitors_per_user": ("7", lambda s: services(s).stores.people.max_visitors, 7),
    "anonymous_retention_days": ("2", lambda s: services(s).stores.profiles.anonymous_ttl_s, 2 * 86400),
    "dedup_days": ("3", lambda s: services(s).stores.profiles.dedup_ms, 3 * 86_400_000),
    "interest_half_life_days": (
        "3.5",
        lambda s: (
            services(s).rules.half_life_days,
            services(s).slots.half_life_days,
            wiring.profile_config(s).interest_half_life_days,
            after_batch(s, "SegmentUpdater").evaluator.half_life_days,
        ),
        (3.5,) * 4,
    ),
    "profile_cache_size": ("321", lambda s: s.profile_cache_size, 321),
    "max_body_bytes": ("4096", lambda s: s.max_body_bytes, 4096),
    "body_timeout_s": ("2.5", lambda s: _body_deadline(s), 2.5),
    "max_events": ("12", lambda s: s.max_events, 12),
    "cookie_domain": (".shop.example", lambda s: s.cookie_domain, ".shop.example"),
    "country_header": ("x-country", lambda s: s.country_header, "x-country"),
    "data_dir": (
        "/tmp/flow-data",
        lambda s: services(s).log_watch.archive is not None and s.spool_dir,
        Path("/tmp/flow-data/spool"),
    ),
    "archive": ("off", lambda s: services(s).log_watch.archive, None),
    "archive_segment_s": ("4", lambda s: services(s).log_watch.drain_timeout_s, 12.0),
    "archive_segment_events": ("999", lambda s: s.archive_segment_events, 999),
    "spool": ("false", lambda s: services(s).publisher.spool, None),
    "spool_grace_s": ("2.5", lambda s: services(s).log_watch.grace_s, 2.5),
    "spool_max_mb": ("3", lambda s: services(s).publisher.spool.max_bytes, 3 << 20),
    "log_check_s": ("0.25", lambda s: s.log_check_s, 0.25),
    "broker_rotate_events": ("5000", lambda s: services(s).log_watch.rotate_events, 5000),
    "broker_memory_only": ("true", lambda s: services(s).log_watch.memory_only, True),
    "log_level": ("warning", lambda s: s.log_level, "warning"),
    "worker_heartbeat_s": ("1.5", lambda s: s.worker_heartbeat_s, 1.5),
    "value_refit_minutes": ("5", lambda s: s.value_refit_minutes, 5.0),
    "weather_provider": (
        "engine.rules.weather:StaticWeather",
        lambda s: s.weather_provider,
        "engine.rules.weather:StaticWeather",
    ),
    "catalog": ("/tmp/flow-catalog.json", lambda s: s.catalog, Path("/tmp/flow-catalog.json")),
    "recommend_max_per_category": ("5", lambda s: services(s).recommend.config.max_per_category, 5),
    "recommend_repurchase_categories": (
        "milk,bread",
        lambda s: services(s).recommend.config.repurchase_categories,
        ("milk", "bread"),
    ),
    "recommend_similarity": ("lift", lambda s: services(s).recommend.config.method, "lift"),
    "popularity_half_life_days": ("2", lambda s: services(s).stores.cooccurrence.half_life_days, 2.0),
    "als_retrain_minutes": ("9", lambda s: s.als_retrain_minutes, 9.0),
    "recommend_prior_minutes": ("7", lambda s: s.recommend_prior_minutes, 7.0),
    "als_factors": ("16", lambda s: wiring.als_params(s).factors, 16),
    "als_iterations": ("4", lambda s: wiring.als_params(s).iterations, 4),
    "als_regularization": ("0.5", lambda s: wiring.als_params(s).regularization, 0.5),
    "ease_regularization": ("42", lambda s: wiring.als_params(s).item_regression.regularization, 42.0),
    "ease_max_items": ("77", lambda s: wiring.als_params(s).item_regression.max_items, 77),
    "experiment_window_hours": (
        "2",
        lambda s: (services(s).stores.experiments.window_ms, services(s).experiments.window_hours),
        (2 * 3_600_000, 2.0),
    ),
    "global_holdout": (
        "12.5",
        lambda s: (services(s).experiments.global_percent, services(s).decider.settings.global_holdout),
        (12.5, 12.5),
    ),
    "segment_sweep_s": ("2", lambda s: s.segment_sweep_s, 2.0),
    "test_clock": ("true", lambda s: _evaluator(s).clock is not system_clock, True),
    "webhook_timeout_s": ("1.5", lambda s: _delivery(s).timeout_s, 1.5),
    "webhook_retry_idle_s": ("3", lambda s: _delivery(s).retry_idle_ms, 3000),
    "webhook_dead_after_hours": ("2", lambda s: _delivery(s).dead_after_ms, 2 * 3_600_000),
    "worker_delivery": ("false", lambda s: s.worker_delivery, False),
    "segment_changes_topic": ("t.changes", lambda s: _delivery(s).topic.topic, "t.changes"),
}


def _rules(settings):
    return LiveRules(settings.rules, half_life_days=settings.interest_half_life_days)


def _evaluator(settings):
    return wiring.segment_evaluator(settings, services(settings).stores, _rules(settings))


def _delivery(settings):
    return wiring.delivery(settings, services(settings).stores, _rules(settings))


async def _key_statuses(settings):
    """What the app answers the key k1 (read only) and an unknown key."""
    app = wiring.build_app(settings, services(settings))
    vid = str(uuid.uuid4())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://flow") as client:
        read = await client.get(f"/v1/profiles/{vid}", headers={"Authorization": "Bearer k1"})
        erase = await client.delete(f"/v1/profiles/{vid}", headers={"Authorization": "Bearer k1"})
        unknown = await client.get(f"/v1/profiles/{vid}", headers={"Authorization": "Bearer k2"})
    return {"read": read.status_code, "erase": erase.status_code, "unknown": unknown.status_code}


def _body_deadline(settings):
    app = wiring.build_app(settings, services(settings))
    deadline = next(m for m in app.user_middleware if m.cls.__name__ == "BodyDeadline")
    return deadline.kwargs["timeout_s"]


def _cors_origins(settings):
    app = wiring.build_app(settings, services(settings))
    cors = next(m for m in app.user_middleware if m.cls.__name__ == "CORSMiddleware")
    return cors.kwargs["allow_origins"]


def test_every_setting_says_where_it_goes():
    assert sorted(FLOW) == sorted(spec.name for spec in fields(Settings))


@pytest.mark.parametrize("name", sorted(FLOW))
async def test_the_setting_reaches_its_place(name, tmp_path):  # async: the Kafka clients want a loop
    raw, seen, expected = FLOW[name]
    env = {
        PREFIX + "KAFKA": "127.0.0.1:1",
        PREFIX + "REDIS": REDIS,
        PREFIX + "DATA_DIR": str(tmp_path),
        PREFIX + name.upper(): raw,
    }
    if name == "demo_login":
        env[PREFIX + "IDENTITY_SECRET"] = "s" * 32
    settings = Settings.from_env(env)
    default = next(spec.default for spec in fields(Settings) if spec.name == name)
    assert getattr(settings, name) != default, f"{name}: the probe's value must differ from the default"
    observed = seen(settings)
    if inspect.isawaitable(observed):
        observed = await observed
    assert observed == expected
