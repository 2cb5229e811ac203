"""Broker faults under a steady sender: every acknowledged event is counted once, none lost."""

from __future__ import annotations

import asyncio


from helpers import Engine, wait_until
from traffic import Sender, counted


async def _running(settings, log_dir) -> Engine:
    engine = Engine(settings, log_dir)
    engine.start_worker()
    engine.start_api()
    await engine.wait_ready(60)
    return engine


async def _health(engine: Engine) -> dict:
    async with engine.client() as client:
        body = (await client.get("/healthz")).json()
    return body if "log" in body else dict(body["detail"], status="not ready")


async def test_broker_killed_and_restarted_loses_nothing(chaos_settings, own_broker, tmp_path):
    engine = await _running(chaos_settings, tmp_path / "logs")
    try:
        sender = Sender(engine.url, "test-key")
        sender.start()
        await wait_until(lambda: sender.tally.events >= 3000, 30, message="traffic flowing")
        own_broker.kill()
        await asyncio.sleep(0.5)
        own_broker.start()
        acked_at_restart = sender.tally.events
        await wait_until(lambda: sender.tally.events >= acked_at_restart + 3000, 60, message="traffic after restart")
        tally = await sender.stop()
        lost, double = await counted(engine.url, "test-key", tally)
        health = await _health(engine)
        print(
            f"broker restart: {tally.events} events acknowledged, lost {lost}, double {double}, "
            f"statuses {dict(tally.statuses)}, connection errors {tally.connection_errors}, log {health['log']}"
        )
        assert (lost, double, tally.server_errors) == (0, 0, 0)
        collector = health["log"]["collector"]
        assert collector["resets"] >= 1 and collector["last_reset"]["to_log"] == collector["log_id"]
        assert all(w["log_id"] == collector["log_id"] for w in health["log"]["workers"].values())
        async with engine.client() as client:
            metrics = (await client.get("/metrics")).text
        assert any(
            line.startswith("clickstream_log_resets_total") and float(line.split()[-1]) >= 1
            for line in metrics.splitlines()
        )
    finally:
        engine.stop()


async def test_broker_paused_loses_nothing(chaos_settings, own_broker, tmp_path):
    engine = await _running(chaos_settings, tmp_path / "logs")
    try:
        sender = Sender(engine.url, "test-key")
        sender.start()
        await wait_until(lambda: sender.tally.events >= 3000, 30, message="traffic flowing")
        own_broker.pause()
        await asyncio.sleep(3)
        own_broker.resume()
        paused_at = sender.tally.events
        await wait_until(lambda: sender.tally.events >= paused_at + 3000, 60, message="traffic after the pause")
        tally = await sender.stop()
        lost, double = await counted(engine.url, "test-key", tally)
        print(
            f"broker pause: {tally.events} events acknowledged, lost {lost}, double {double}, "
            f"statuses {dict(tally.statuses)}"
        )
        assert (lost, double, tally.server_errors) == (0, 0, 0)
        assert (await _health(engine))["log"]["collector"]["resets"] == 0
    finally:
        engine.stop()
