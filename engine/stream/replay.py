"""`clickstream replay`: rebuild the derived state in Redis from the whole event log.

Wipes what the worker derives, then reads the archive (every log the broker ever
held, engine.stream.archive) and the broker's current log past what is archived, up
to the end offsets seen at the start, through the same batch handlers as the worker.
A live worker may keep running: both apply each event_id once, so they converge.
"""

from __future__ import annotations

from typing import Awaitable, Callable, Sequence

from engine.settings import Settings
from engine.stream import kafka
from engine.stream.consumer import Handler
from engine.stream.history import read_history


async def replay(
    settings: Settings, handlers: Sequence[Handler], clear: Callable[[], Awaitable[object]], progress: bool = True
) -> int:
    await kafka.ensure_topics(settings)
    applied = 0
    async for events in read_history(settings, "replay", progress, settings.batch_size, before_first=clear):
        for handler in handlers:
            await handler(events)
        applied += len(events)
    return applied
