"""One frozen settings object, read from CLICKSTREAM_* environment variables once.

A bad value fails at start with the variable's name in the message (SettingsError).
Unset Kafka or Redis means "embedded": `clickstream up` starts its own.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Callable, Mapping
from urllib.parse import urlparse

from engine.errors import SettingsError

PREFIX = "CLICKSTREAM_"
# The co-occurrence similarities engine.recommend.cooccur implements (a test checks they agree).
SIMILARITIES = ("confidence", "cosine", "jaccard", "lift", "raw", "shrunk")
SCOPES = ("read", "write", "erase")
# How browsers' (untrusted) purchases count (engine.profiles.orders implements them; a test checks they agree).
UNTRUSTED_ORDERS = ("count", "until-trusted", "claim")


@dataclass(frozen=True)
class ApiKey:
    """A back end's key and what it may do; the secret never shows in repr or logs."""

    secret: str = field(repr=False)
    scopes: frozenset[str] = frozenset(SCOPES)

    def __repr__(self) -> str:
        return f"ApiKey(scopes={','.join(sorted(self.scopes))}, secret=****)"

    def text(self) -> str:
        return f"{self.secret}:{','.join(sorted(self.scopes))}"


def _api_keys(value: str) -> tuple[ApiKey, ...]:
    """`KEY[:scope,scope][;KEY...]`; a key without scopes has all of them.

    The older form, comma-separated keys with no `:` or `;`, still reads as keys with every scope.
    """
    if ":" not in value and ";" not in value:
        return tuple(ApiKey(k) for k in _csv(value))
    keys = []
    for entry in (part.strip() for part in value.split(";")):
        if not entry:
            continue
        secret, _, scopes = (part.strip() for part in entry.partition(":"))
        if not secret:
            raise ValueError("expected KEY[:scope,scope][;KEY...], got an empty key")
        wanted = frozenset(_csv(scopes)) or frozenset(SCOPES)
        unknown = sorted(wanted - set(SCOPES))
        if unknown:
            raise ValueError(f"unknown scope {unknown[0]!r} (scopes: {', '.join(SCOPES)})")
        keys.append(ApiKey(secret, wanted))
    return tuple(keys)


def _csv(value: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in value.split(",") if part.strip())


def _bool(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"expected true or false, got {value!r}")


def _positive_int(value: str) -> int:
    number = int(value)
    if number <= 0:
        raise ValueError(f"must be a positive integer, got {value!r}")
    return number


def _count(value: str) -> int:
    number = int(value)
    if number < 0:
        raise ValueError(f"must be 0 or more, got {value!r}")
    return number


def _optional_path(value: str) -> Path | None:
    return Path(value) if value.strip() else None


def _positive_float(value: str) -> float:
    number = float(value)
    if not number > 0:
        raise ValueError(f"must be a positive number, got {value!r}")
    return number


def _non_negative_float(value: str) -> float:
    number = float(value)
    if not number >= 0:
        raise ValueError(f"must be 0 or more, got {value!r}")
    return number


def _percent(value: str) -> float:
    number = _non_negative_float(value)
    if number > 50:
        raise ValueError(f"expected a percent from 0 to 50, got {value!r}")
    return number


def _similarity(value: str) -> str:
    method = value.strip().lower()
    if method not in SIMILARITIES:
        raise ValueError(f"expected one of {', '.join(SIMILARITIES)}, got {value!r}")
    return method


def _kafka(value: str) -> str:
    servers = _csv(value.removeprefix("kafka://"))
    if not servers:
        raise ValueError("expected host:port[,host:port...]")
    for server in servers:
        host, _, port = server.rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f"expected host:port, got {server!r}")
    return ",".join(servers)


def _redis(value: str) -> str:
    parsed = urlparse(value)
    if parsed.scheme not in ("redis", "rediss", "unix") or not (parsed.hostname or parsed.path):
        raise ValueError(f"expected a redis:// URL, got {value!r}")
    return value


def _origins(value: str) -> tuple[str, ...]:
    """Origins named exactly: CORS lets them send the visitor's cookie, so no wildcard and no `null`."""
    origins = _csv(value)
    for origin in origins:
        if origin == "*":
            raise ValueError(
                "'*' would let any page act with a visitor's cookie: name each origin, like https://shop.example"
            )
        parsed = urlparse(origin)
        if parsed.scheme not in ("http", "https") or not parsed.netloc or parsed.path not in ("", "/"):
            raise ValueError(f"expected origins like https://shop.example, got {origin!r}")
    return tuple(o.rstrip("/") for o in origins)


def _untrusted_orders(value: str) -> str:
    policy = value.strip().lower()
    if policy not in UNTRUSTED_ORDERS:
        raise ValueError(f"expected one of {', '.join(UNTRUSTED_ORDERS)}, got {value!r}")
    return policy


def _env_field(default, parse: Callable[[str], object] = str, **kwargs):
    return field(default=default, metadata={"parse": parse}, **kwargs)


@dataclass(frozen=True)
class Settings:
    kafka: str | None = _env_field(None, _kafka)
    redis: str | None = _env_field(None, _redis)
    api_keys: tuple[ApiKey, ...] = _env_field((), _api_keys, repr=False)
    identity_secret: str | None = _env_field(None, repr=False)  # HMAC key of identify's user_hash
    console_secret: str | None = _env_field(None, repr=False)  # signs the console's session cookie; None: DATA_DIR's
    demo_login: bool | None = _env_field(None, _bool)  # POST /demo/login signs any user id; None: `up` decides
    untrusted_orders: str = _env_field(
        "until-trusted", _untrusted_orders
    )  # browsers' purchases: engine.profiles.orders
    rate_limit_per_s: float = _env_field(50.0, _non_negative_float)  # collector requests per client address; 0: off
    rate_limit_burst: int = _env_field(500, _positive_int)
    bot_filter: bool = _env_field(True, _bool)  # mark crawlers and headless browsers (engine.ingest.bots)
    rules: Path = _env_field(Path("rules"), Path)
    site_origins: tuple[str, ...] = _env_field((), _origins)
    topic: str = _env_field("clickstream.events")
    rejected_topic: str = _env_field("clickstream.events.rejected")
    partitions: int = _env_field(4, _positive_int)
    redis_prefix: str = _env_field("cs")
    consumer_group: str = _env_field("clickstream-worker")
    batch_size: int = _env_field(
        50_000, _positive_int
    )  # a backlog drains in batches this big: per-profile costs shared
    batch_wait_ms: int = _env_field(
        20, _positive_int
    )  # also the broker's fetch wait: how stale a profile can be at a low rate
    rebalance_timeout_s: float = _env_field(3.0, _positive_float)
    redis_cluster: bool = _env_field(False, _bool)
    consent_default: bool = _env_field(True, _bool)
    count_without_consent: bool = _env_field(False, _bool)
    blocked_user_ids: tuple[str, ...] = _env_field((), _csv)
    max_visitors_per_user: int = _env_field(50, _positive_int)
    anonymous_retention_days: int = _env_field(180, _positive_int)
    dedup_days: float = _env_field(30.0, _positive_float)  # an event_id resent within this long counts once
    interest_half_life_days: float = _env_field(14.0, _positive_float)
    profile_cache_size: int = _env_field(20_000, _positive_int)
    max_body_bytes: int = _env_field(1 << 20, _positive_int)
    body_timeout_s: float = _env_field(30.0, _positive_float)  # a request's whole body must arrive within this
    max_events: int = _env_field(500, _positive_int)
    cookie_domain: str | None = _env_field(None)
    country_header: str = _env_field("cf-ipcountry")
    data_dir: Path = _env_field(Path("var"), Path)
    # Durability (README "Durability"): the archive of applied events, the collector's spool, log checks
    archive: str = _env_field("")  # a folder or file:// URL; empty: DATA_DIR/archive; "off": none
    archive_segment_s: float = _env_field(10.0, _positive_float)
    archive_segment_events: int = _env_field(50_000, _positive_int)
    spool: bool = _env_field(True, _bool)
    spool_grace_s: float = _env_field(5.0, _non_negative_float)
    spool_max_mb: int = _env_field(1024, _positive_int)
    log_check_s: float = _env_field(1.0, _positive_float)
    broker_rotate_events: int = _env_field(0, _count)  # embedded broker: a new log past this many events (0: never)
    # the broker keeps its log in memory only (the embedded Tansu): a reset log gets a new events topic
    broker_memory_only: bool = _env_field(False, _bool)
    log_level: str = _env_field("info")
    worker_heartbeat_s: float = _env_field(2.0, _positive_float)
    value_refit_minutes: float = _env_field(60.0, _positive_float)
    segment_sweep_s: float = _env_field(5.0, _positive_float)  # how often due segment memberships are re-evaluated
    worker_delivery: bool = _env_field(True, _bool)  # workers deliver webhooks; false: `clickstream deliver` does
    webhook_timeout_s: float = _env_field(5.0, _positive_float)  # one delivery attempt
    webhook_retry_idle_s: float = _env_field(30.0, _positive_float)  # a failed delivery is tried again after this
    webhook_dead_after_hours: float = _env_field(24.0, _positive_float)  # then it goes to the dead-letter stream
    # every segment change and alert also on this Kafka topic, keyed by person (empty: off; engine.destinations.topic)
    segment_changes_topic: str = _env_field("")
    test_clock: bool = _env_field(
        False, _bool
    )  # tests: the worker's segment clock adds the offset at PREFIX:clock:offset
    weather_provider: str | None = _env_field(None)
    # Experiments (engine.experiments): README "Experiments"
    global_holdout: float = _env_field(0.0, _percent)  # percent of people kept out of all personalization
    experiment_window_hours: float = _env_field(24.0, _positive_float)  # outcomes count this long after an exposure
    # Recommendations (engine.recommend)
    catalog: Path | None = _env_field(None, _optional_path)  # item catalog file loaded at API start
    recommend_max_per_category: int = _env_field(3, _count)  # 0: no cap
    recommend_repurchase_categories: tuple[str, ...] = _env_field((), _csv)
    recommend_similarity: str = _env_field("confidence", _similarity)
    popularity_half_life_days: float = _env_field(7.0, _positive_float)
    recommend_prior_minutes: float = _env_field(60.0, _non_negative_float)  # engine.recommend.prior_job; 0: never
    als_retrain_minutes: float = _env_field(0.0, _non_negative_float)  # 0: no periodic retrain
    als_factors: int = _env_field(64, _positive_int)
    als_iterations: int = _env_field(15, _positive_int)
    als_regularization: float = _env_field(10.0, _positive_float)
    ease_regularization: float = _env_field(100.0, _positive_float)  # engine.recommend.ease
    ease_max_items: int = _env_field(5000, _count)  # 0: train no item-item regression

    def __post_init__(self) -> None:
        # Code and tests may name keys as plain strings: "KEY" or "KEY:read,write".
        keys = tuple(k if isinstance(k, ApiKey) else _api_keys(k)[0] for k in self.api_keys)
        object.__setattr__(self, "api_keys", keys)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "Settings":
        env = os.environ if env is None else env
        values = {}
        for spec in fields(cls):
            name = PREFIX + spec.name.upper()
            raw = env.get(name)
            if raw is None or raw == "":
                continue
            try:
                values[spec.name] = spec.metadata["parse"](raw)
            except (ValueError, TypeError) as exc:
                raise SettingsError(name, str(exc)) from None
        return cls(**values)

    @property
    def embedded_kafka(self) -> bool:
        return self.kafka is None

    @property
    def embedded_redis(self) -> bool:
        return self.redis is None

    @property
    def archive_location(self) -> str | Path | None:
        if self.archive.strip().lower() in ("off", "none", "false", "no"):
            return None
        return self.archive.strip() or self.data_dir / "archive"

    @property
    def spool_dir(self) -> Path | None:
        """The collector's spool needs the archive: a batch leaves it once archived."""
        return self.data_dir / "spool" if self.spool and self.archive_location is not None else None

    def environ(self) -> dict[str, str]:
        """The CLICKSTREAM_* variables that reproduce these settings in a child process."""
        out = {}
        for spec in fields(self):
            value = getattr(self, spec.name)
            if value is None:
                continue
            if spec.name == "api_keys":
                value = ";".join(key.text() for key in value)
            elif isinstance(value, tuple):
                value = ",".join(value)
            elif isinstance(value, bool):
                value = "true" if value else "false"
            out[PREFIX + spec.name.upper()] = str(value)
        return out
