"""Prometheus metrics of the HTTP process; worker figures arrive through heartbeats."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

from engine.stream.consumer import BATCH_SIZE_BUCKETS

REGISTRY = CollectorRegistry(auto_describe=True)

EVENTS_ACCEPTED = Counter("clickstream_events_accepted", "Events accepted by the collector", registry=REGISTRY)
EXPOSURES_UNLOGGED = Counter(
    "clickstream_exposures_unlogged",
    "Exposures of decisions served while the event log could not take them (not measured)",
    registry=REGISTRY,
)
EVENTS_REJECTED = Counter("clickstream_events_rejected", "Events rejected by the collector", registry=REGISTRY)
DEPENDENCY_UP = Gauge(
    "clickstream_dependency_up",
    "1 when the dependency answered the last check (broker, redis)",
    ["dependency"],
    registry=REGISTRY,
)
RATE_LIMITED = Counter(
    "clickstream_rate_limited", "Collector requests refused with 429 (per client address limit)", registry=REGISTRY
)
RATE_LIMIT_UNAVAILABLE = Counter(
    "clickstream_rate_limit_unavailable",
    "Collector requests let through because the rate limiter's Redis could not be reached",
    registry=REGISTRY,
)
REQUEST_LATENCY = Histogram(
    "clickstream_http_request_duration_seconds",
    "HTTP request latency inside the server",
    ["route", "method", "status"],
    registry=REGISTRY,
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)


class WorkerCollector:
    """Renders the latest heartbeats of the live workers (set before each scrape)."""

    def __init__(self) -> None:
        self.heartbeats: dict[str, dict] = {}

    def collect(self):
        lag = GaugeMetricFamily("clickstream_consumer_lag", "Events on the topic not yet processed", labels=["worker"])
        processed = CounterMetricFamily(
            "clickstream_worker_events", "Events processed by the worker", labels=["worker"]
        )
        dead = CounterMetricFamily(
            "clickstream_worker_dead_letters",
            "Messages sent to the dead-letter topic (undecodable, or not applicable)",
            labels=["worker"],
        )
        unapplied = CounterMetricFamily(
            "clickstream_worker_unapplied_events",
            "Events decoded but not applied (a broken envelope, a fold that fails), "
            "sent to the dead-letter topic with the reason",
            labels=["worker"],
        )
        sizes = HistogramMetricFamily("clickstream_worker_batch_size", "Events per batch", labels=["worker"])
        resets = CounterMetricFamily(
            "clickstream_worker_log_resets", "Times the worker found the broker's log reset", labels=["worker"]
        )
        reset_unapplied = GaugeMetricFamily(
            "clickstream_worker_log_reset_unapplied",
            "Events the old log acknowledged that the worker had not applied, at its last reset",
            labels=["worker"],
        )
        archived = CounterMetricFamily(
            "clickstream_worker_archived_events", "Events the worker sealed into the archive", labels=["worker"]
        )
        for worker, beat in sorted(self.heartbeats.items()):
            resets.add_metric([worker], beat.get("resets", 0))
            reset_unapplied.add_metric([worker], (beat.get("last_reset") or {}).get("unapplied", 0))
            archived.add_metric([worker], beat.get("archived_events", 0))
            lag.add_metric([worker], beat.get("lag", 0))
            processed.add_metric([worker], beat.get("events", 0))
            dead.add_metric([worker], beat.get("dead_letters", 0))
            unapplied.add_metric([worker], beat.get("unapplied", 0))
            buckets = [(str(b), c) for b, c in zip(BATCH_SIZE_BUCKETS, beat.get("batch_size_buckets", []))]
            buckets.append(("+Inf", beat.get("batches", 0)))
            sizes.add_metric([worker], buckets, beat.get("batch_size_sum", 0))
        yield from (lag, processed, dead, unapplied, sizes, resets, reset_unapplied, archived)


class CollectorLogState:
    """The collector's view of the event log and its spool (engine.ingest.publisher.LogWatch.state)."""

    def __init__(self) -> None:
        self.state = None

    def collect(self):
        state = self.state() if self.state is not None else None
        if state is None:
            return
        spool = state.get("spool") or {}
        yield CounterMetricFamily(
            "clickstream_log_resets", "Times the collector found the broker's log reset", value=state["resets"]
        )
        yield CounterMetricFamily(
            "clickstream_log_rotations",
            "Times the collector rotated the embedded broker's log",
            value=state["rotations"],
        )
        yield CounterMetricFamily(
            "clickstream_spool_resent_events", "Spooled events sent again after a reset", value=state["resent_events"]
        )
        yield GaugeMetricFamily(
            "clickstream_spool_events",
            "Acknowledged events in the spool, not yet confirmed archived",
            value=spool.get("events", 0),
        )
        yield GaugeMetricFamily("clickstream_spool_bytes", "Bytes in the spool", value=spool.get("bytes", 0))
        yield GaugeMetricFamily(
            "clickstream_archive_gaps",
            "Offset ranges between archive segments that no segment covers (should stay 0)",
            value=state.get("archive_gaps", 0),
        )
        yield CounterMetricFamily(
            "clickstream_spool_dropped_events", "Events dropped by a full spool", value=spool.get("dropped_events", 0)
        )


class BotCollector:
    """Bot events per day, as the collectors counted them in Redis (set before each scrape)."""

    def __init__(self) -> None:
        self.days: dict[str, int] = {}

    def collect(self):
        bots = GaugeMetricFamily(
            "clickstream_bot_events",
            "Events marked as sent by crawlers or headless browsers, per day (UTC)",
            labels=["day"],
        )
        for day, count in sorted(self.days.items()):
            bots.add_metric([day], count)
        yield bots


class SegmentCollector:
    """Segment changes, backfill progress and webhook deliveries, as the workers counted them in Redis."""

    def __init__(self) -> None:
        self.state: dict = {}

    def collect(self):
        counters = self.state.get("counters") or {}
        changes = CounterMetricFamily(
            "clickstream_segment_changes", "Segment entries and exits recorded in the outbox", labels=["change"]
        )
        for change in ("entered", "exited"):
            changes.add_metric([change], counters.get(change, 0))
        yield changes
        yield CounterMetricFamily(
            "clickstream_segment_alerts",
            "Alerts (back in stock, price drop) recorded in the outbox",
            value=counters.get("alerts", 0),
        )
        progress = self.state.get("backfill") or {}
        yield GaugeMetricFamily(
            "clickstream_segment_backfill_done",
            "Profiles the latest segment backfill has evaluated",
            value=float(progress.get("done", 0)),
        )
        yield GaugeMetricFamily(
            "clickstream_segment_backfill_total",
            "Profiles the latest segment backfill evaluates",
            value=float(progress.get("total", 0)),
        )
        yield GaugeMetricFamily(
            "clickstream_segment_backfill_seconds",
            "How long the latest segment backfill has run",
            value=float(progress.get("seconds", 0)),
        )
        deliveries = CounterMetricFamily(
            "clickstream_webhook_deliveries",
            "Webhook deliveries by destination and outcome "
            "(delivered, failed attempts, dead: given up after the retry period)",
            labels=["destination", "outcome"],
        )
        pending = GaugeMetricFamily(
            "clickstream_webhook_pending",
            "Changes read but not yet delivered, kept for redelivery",
            labels=["destination"],
        )
        for field, value in sorted(counters.items()):
            if field.startswith("delivery:"):
                _, destination, outcome = field.split(":", 2)
                deliveries.add_metric([destination, outcome], value)
        for destination, count in sorted((self.state.get("pending") or {}).items()):
            pending.add_metric([destination], count)
        yield deliveries
        yield pending


WORKERS = WorkerCollector()
REGISTRY.register(WORKERS)
COLLECTOR_LOG = CollectorLogState()
REGISTRY.register(COLLECTOR_LOG)
BOTS = BotCollector()
REGISTRY.register(BOTS)
SEGMENTS = SegmentCollector()
REGISTRY.register(SEGMENTS)
