"""The published ALS model in Redis: publishing a version, loading it, and holding it in a process.

    {prefix}:rec:als:<version>   npz bytes (engine.recommend.als_model.AlsModel.to_bytes)
    {prefix}:rec:als:current     the version being served
    {prefix}:rec:als:info        JSON meta of the current version (parameters, training time)
    {prefix}:rec:als:versions    list of published versions, newest first (the last KEEP are kept)
    {prefix}:rec:als:lock        held by the worker that retrains this interval (engine.recommend.als_retrain)

Every API process holds a `ModelHolder` that polls the pointer and replaces its model
with one reference assignment, so requests never wait on a swap.
"""

from __future__ import annotations

import asyncio
import json
import logging

from engine.recommend.als_model import AlsModel

log = logging.getLogger("engine.recommend.als")

KEEP = 2  # versions kept in Redis: the current one and the one a slow poller may still be reading


def redis_keys(prefix: str) -> dict[str, str]:
    base = f"{prefix}:rec:als:"
    return {
        "base": base,
        "current": base + "current",
        "info": base + "info",
        "versions": base + "versions",
        "lock": base + "lock",
    }


async def publish(redis, prefix: str, model: AlsModel, keep: int = KEEP) -> None:
    """Stores the model, then moves the pointer to it; older versions beyond `keep` are deleted."""
    keys = redis_keys(prefix)
    await redis.set(keys["base"] + model.version, model.to_bytes())
    async with redis.pipeline(transaction=True) as pipe:
        pipe.set(keys["current"], model.version)
        pipe.set(keys["info"], json.dumps(dict(model.meta, version=model.version)))
        pipe.lpush(keys["versions"], model.version)
        pipe.lrange(keys["versions"], keep, -1)
        pipe.ltrim(keys["versions"], 0, keep - 1)
        old = (await pipe.execute())[3]
    if old:
        await redis.delete(*[keys["base"] + v.decode() for v in old])


async def load_current(redis, prefix: str) -> AlsModel | None:
    keys = redis_keys(prefix)
    version = await redis.get(keys["current"])
    if version is None:
        return None
    data = await redis.get(keys["base"] + version.decode())
    return None if data is None else await asyncio.to_thread(AlsModel.from_bytes, data)


async def info(redis, prefix: str) -> dict | None:
    raw = await redis.get(redis_keys(prefix)["info"])
    return None if raw is None else json.loads(raw)


class ModelHolder:
    """The API process's current model, replaced by one reference assignment when a new one is published."""

    def __init__(self, redis, prefix: str, poll_s: float = 5.0) -> None:
        self.redis = redis
        self.keys = redis_keys(prefix)
        self.poll_s = poll_s
        self.current: AlsModel | None = None
        self._task: asyncio.Task | None = None

    async def refresh(self) -> bool:
        """Loads the published version if it is not the one held; True when swapped."""
        version = await self.redis.get(self.keys["current"])
        if version is None:
            return False
        version = version.decode()
        if self.current is not None and self.current.version == version:
            return False
        data = await self.redis.get(self.keys["base"] + version)
        if data is None:
            return False  # replaced again meanwhile; the next poll finds the newer one
        model = await asyncio.to_thread(AlsModel.from_bytes, data)  # parsing off the event loop
        self.current = model
        log.info("serving ALS model %s (%d items)", version, len(model.item_ids))
        return True

    async def run(self) -> None:
        while True:
            try:
                await self.refresh()
            except Exception as exc:  # Redis away: keep serving the model held
                log.warning("could not poll the ALS model: %r", exc)
            await asyncio.sleep(self.poll_s)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self.run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass
            self._task = None
