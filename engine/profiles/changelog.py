"""Puts the API's state changes (engine.profiles.changes) on the events topic, keyed as they say.

Returns once the broker has them all (acks=all), so a change the API confirmed is in
the log before Redis shows it; raises Unavailable otherwise, and the route answers 503.
"""

from __future__ import annotations

import asyncio
import logging

from engine.errors import Unavailable
from engine.stream import codec

log = logging.getLogger("engine.profiles")

ACK_TIMEOUT_S = 5.0


class ChangeLog:
    def __init__(self, producer, topic: str, ack_timeout_s: float = ACK_TIMEOUT_S) -> None:
        self.producer = producer  # an aiokafka producer, set once connected
        self.topic = topic
        self.ack_timeout_s = ack_timeout_s

    async def publish(self, events: list[dict]) -> None:
        if self.producer is None:
            raise Unavailable("the event log is not connected yet, retry later")
        try:
            futures = [
                await self.producer.send(self.topic, codec.encode(e), key=e["visitor_id"].encode()) for e in events
            ]
            await asyncio.wait_for(asyncio.gather(*futures), self.ack_timeout_s)
        except Exception as exc:
            log.warning("broker did not acknowledge %d state changes: %r", len(events), exc)
            raise Unavailable("the event log is unavailable, retry later") from None
