"""Puts accepted events on Kafka and waits for the broker's acknowledgement."""

from __future__ import annotations

import asyncio
import logging
import time

from aiokafka import AIOKafkaProducer

from engine.stream import codec
from engine.errors import Unavailable
from engine.ingest.collector import Batch

log = logging.getLogger("engine.ingest")

RAW_KEPT = 2048


class Publisher:
    def __init__(self, producer: AIOKafkaProducer | None, topic: str, rejected_topic: str, ack_timeout_s: float = 10.0) -> None:
        self.producer = producer
        self.topic = topic
        self.rejected_topic = rejected_topic
        self.ack_timeout_s = ack_timeout_s

    async def publish(self, batch: Batch) -> None:
        """Returns once the broker has every event of the batch; raises Unavailable otherwise.

        Events are keyed by visitor_id so one visitor's events stay in order on
        one partition. A failure part way may leave some events on the topic:
        the tracker resends the batch with the same event_ids, and the worker
        applies each event_id once.
        """
        if self.producer is None:
            raise Unavailable("the event broker is not connected yet, retry later")
        try:
            futures = [
                await self.producer.send(self.topic, encoded, key=event["visitor_id"].encode())
                for event, encoded in zip(batch.accepted, batch.encoded)
            ]
            for raw, rejection in zip(batch.rejected_raw, batch.rejected):
                payload = {"reason": rejection["error"], "raw": _truncated(raw), "received_at": int(time.time() * 1000)}
                try:
                    encoded = codec.encode(payload)
                except (OverflowError, ValueError, TypeError):
                    encoded = codec.encode(dict(payload, raw=repr(raw)[:RAW_KEPT]))
                futures.append(await self.producer.send(self.rejected_topic, encoded))
            if futures:
                await asyncio.wait_for(asyncio.gather(*futures), self.ack_timeout_s)
        except Exception as exc:
            log.warning("broker did not acknowledge %d events: %r", len(batch.accepted), exc)
            raise Unavailable("the event broker is unavailable, retry later") from None


def _truncated(raw) -> object:
    """Rejected input is kept for debugging, but bounded."""
    text = repr(raw)
    return raw if len(text) <= RAW_KEPT else text[:RAW_KEPT]
