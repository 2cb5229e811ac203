"""The event log's id, kept in the broker: created once, renewed when the log is found reset."""

from __future__ import annotations

from engine.stream import kafka
from engine.stream.logid import LogIdentity


async def test_the_log_id_is_made_once_and_renewed_when_the_events_topic_is_gone(settings_for):
    settings = settings_for()
    identity, other = LogIdentity(settings), LogIdentity(settings)
    await identity.start()
    await other.start()
    try:
        assert await identity.read() is None
        first = await identity.ensure()
        assert {settings.topic, settings.rejected_topic, f"{settings.topic}.log"} <= await identity.topics()
        assert await other.ensure() == first == await other.read()
        renewed = await identity.renew(first)
        assert renewed != first and renewed > first  # ids sort by creation time
        assert await other.renew(first) == renewed  # someone renewed already: no third id
        await kafka.delete_topic(settings, settings.topic)
        recreated = await other.ensure()
        assert recreated not in (first, renewed) and settings.topic in await other.topics()
    finally:
        await identity.stop()
        await other.stop()
