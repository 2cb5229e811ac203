"""The processes' logs at INFO say what the engine does, not what the Kafka client does every second."""

from __future__ import annotations

import asyncio

from helpers import Engine, unique


async def test_the_log_id_check_does_not_log_a_line_each_time(settings_for, tmp_session):
    engine = Engine(settings_for(log_check_s=0.2), tmp_session / unique("log-quiet"))
    try:
        engine.start_api()
        await asyncio.sleep(3)  # some 15 log id checks, each of which assigns a consumer
        log = engine.api.log()
        assert " INFO engine.log: " in log, log[-2000:]  # INFO is on
        assert "Updating subscribed topics" not in log, log[-2000:]
    finally:
        engine.stop()
