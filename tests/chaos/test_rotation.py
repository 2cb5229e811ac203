"""Retention for the embedded broker (Tansu 0.6 keeps every record in memory, with no retention):
past N events the collector starts a new log and deletes the old topic; the spool and the
archive make that lossless."""

from __future__ import annotations

from dataclasses import replace


import pytest

from helpers import Engine, Process, wait_until
from traffic import Sender, counted


@pytest.mark.parametrize("workers", [1, 2])
async def test_rotating_the_log_under_load_loses_and_doubles_nothing(chaos_settings, tmp_path, workers):
    """Two workers also rebalance around every rotation: no offset of one log may be taken for the next's."""
    settings = replace(chaos_settings, broker_rotate_events=2000)
    engine = Engine(settings, tmp_path / "logs")
    engine.start_worker()
    others = [Process(settings, "worker", log_path=tmp_path / "logs" / f"worker{n}.log") for n in range(1, workers)]
    engine.start_api()
    try:
        await engine.wait_ready(60)
        sender = Sender(engine.url, "test-key")
        sender.start()

        async def rotated_enough():
            async with engine.client() as client:
                state = (await client.get("/healthz")).json()["log"]["collector"]
            return sender.tally.events >= 8000 and state["rotations"] >= 3

        await wait_until(rotated_enough, 120, message="traffic across three rotations")
        tally = await sender.stop()
        lost, double = await counted(engine.url, "test-key", tally)
        async with engine.client() as client:
            state = (await client.get("/healthz")).json()["log"]["collector"]
        print(
            f"rotation: {tally.events} events, lost {lost}, double {double}, {state['rotations']} rotations, "
            f"{state['resent_events']} events sent again, statuses {dict(tally.statuses)}"
        )
        assert (lost, double, tally.server_errors) == (0, 0, 0)
        assert state["rotations"] >= 3 and state["resets"] == 0
    finally:
        for other in others:
            other.stop()
        engine.stop()
