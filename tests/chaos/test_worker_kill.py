"""SIGKILL of a worker mid-stream: its partitions are read again from the last commit, and counted once."""

from __future__ import annotations

import asyncio
import signal

from helpers import Engine, Process, wait_until
from traffic import Sender, counted


async def test_worker_killed_mid_stream_loses_and_doubles_nothing(chaos_settings, tmp_path):
    engine = Engine(chaos_settings, tmp_path / "logs")
    engine.start_worker()
    other = Process(chaos_settings, "worker", log_path=tmp_path / "logs" / "worker-2.log")
    engine.start_api()
    try:
        await engine.wait_ready(60)
        sender = Sender(engine.url, "test-key")
        sender.start()
        await wait_until(lambda: sender.tally.events >= 4000, 30, message="traffic flowing")
        engine.worker.stop(signal.SIGKILL)
        await asyncio.sleep(1)
        killed_at = sender.tally.events
        await wait_until(lambda: sender.tally.events >= killed_at + 3000, 60, message="traffic after the kill")
        engine.start_worker()
        tally = await sender.stop()
        lost, double = await counted(engine.url, "test-key", tally)
        print(
            f"worker kill: {tally.events} events acknowledged, lost {lost}, double {double}, statuses {dict(tally.statuses)}"
        )
        assert (lost, double, tally.server_errors) == (0, 0, 0)
    finally:
        other.stop()
        engine.stop()
