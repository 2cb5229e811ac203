"""The worker: a faust app whose service runs the batch path into the stores.

Faust supplies what it is good at (the worker lifecycle, supervision, signals,
logging); the per-batch work is engine.stream.consumer. What the service runs (the
handlers, the dead-letter producer, background tasks) comes from the composition
root (engine.wiring), opened inside the worker's own event loop.
"""

from __future__ import annotations

import logging
import os
import socket
from typing import Awaitable, Callable

import faust
from mode import Service

from engine.settings import Settings
from engine.stream.consumer import BatchConsumer, WorkerParts, tune_garbage_collection

log = logging.getLogger("engine.worker")

OpenParts = Callable[[Settings, str], Awaitable[WorkerParts]]


def create_worker_app(settings: Settings, open_parts: OpenParts) -> faust.App:
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
            self.parts = await open_parts(settings, f"{socket.gethostname()}:{os.getpid()}")
            self.batches = BatchConsumer(
                settings,
                self.parts.handlers,
                dead_letter=self.parts.dead_letter,
                archive=self.parts.archive,
                identity=self.parts.identity,
            )
            await self.batches.start()
            tune_garbage_collection()
            self.heartbeat = self.parts.heartbeat(self.batches.stats, self.batches.ready)
            for task in self.parts.background:
                self.add_future(task(lambda: self.should_stop))

        @Service.task
        async def _consume(self) -> None:
            await self.batches.run(lambda: self.should_stop)

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
            try:
                await self.heartbeat.clear()
            except Exception:
                pass
            await self.parts.close()

    return app


def run_worker(app: faust.App, loglevel: str = "info") -> None:
    worker = faust.Worker(app, loglevel=loglevel, quiet=True, redirect_stdouts=False)
    worker.execute_from_commandline()
