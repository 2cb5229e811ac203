"""Retention for the embedded broker (Tansu 0.6 keeps every record in memory, with no retention):
past N events the collector starts a new log and deletes the old topic; the spool and the
archive make that lossless."""

from __future__ import annotations

from dataclasses import replace

import pytest

from helpers import Engine, wait_until
from traffic import Sender, counted


# Reported as a known failure (x, or X when it passes), not skipped: a stale position from the old
# log is sometimes taken for a new reset and events acknowledged around the rotation are lost,
# which is why rotation is off by default.
@pytest.mark.xfail(strict=False, reason="known defect: events acknowledged around a rotation under load can be lost")
async def test_rotating_the_log_under_load_loses_and_doubles_nothing(chaos_settings, tmp_path):
    settings = replace(chaos_settings, broker_rotate_events=2000)
    engine = Engine(settings, tmp_path / "logs")
    engine.start_worker()
    engine.start_api()
    try:
        await engine.wait_ready(60)
        sender = Sender(engine.url, "test-key")
        sender.start()
        await wait_until(lambda: sender.tally.events >= 8000, 60, message="traffic across rotations")
        tally = await sender.stop()
        lost, double = await counted(engine.url, "test-key", tally)
        async with engine.client() as client:
            state = (await client.get("/healthz")).json()["log"]["collector"]
        print(f"rotation: {tally.events} events, lost {lost}, double {double}, {state['rotations']} rotations, "
              f"{state['resent_events']} events sent again, statuses {dict(tally.statuses)}")
        assert (lost, double, tally.server_errors) == (0, 0, 0)
        assert state["rotations"] >= 1 and state["resets"] == 0
    finally:
        engine.stop()
