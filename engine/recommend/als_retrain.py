"""The training job: the topic's history -> a trained model -> published, once or periodically.

`clickstream train`, or the worker's periodic task, replays the topic from the
beginning, as `clickstream replay` does, folds the events into confidences
(engine.recommend.interactions), leaves out the visitors whose profile is erased
(ProfileStore.is_erased), so an erasure takes a person out of the next model, trains
(engine.recommend.als_training) and publishes (engine.recommend.als_store).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from pathlib import Path
from typing import Awaitable, Callable

from engine.recommend import als_store
from engine.recommend.als_model import AlsModel
from engine.recommend.als_training import AlsParams, train_from_interactions
from engine.recommend.interactions import Interactions

log = logging.getLogger("engine.recommend.als")


async def read_history(settings, interactions: Interactions, progress: bool = True) -> int:
    """Feeds every event of the topic, from the beginning to the end seen at the start, to `interactions`."""
    from engine.stream import kafka
    from engine.stream.history import read_history

    await kafka.ensure_topics(settings)
    done = 0
    async for events in read_history(settings, "train: read", progress, settings.batch_size):
        for event in events:
            interactions.add(event)
        done += len(events)
    return done


async def erased_among(profiles, visitor_ids: list[str], chunk: int = 1000) -> set[str]:
    """The visitor ids whose profile is erased (a tombstone), a pipeline per `chunk`."""
    out = set()
    for start in range(0, len(visitor_ids), chunk):
        part = visitor_ids[start : start + chunk]
        async with profiles.redis.pipeline(transaction=False) as pipe:
            for vid in part:
                pipe.hexists(profiles.profile_key(vid), "t")
            flags = await pipe.execute()
        out.update(vid for vid, erased in zip(part, flags) if erased)
    return out


async def train(
    settings, redis, profiles, params: AlsParams = AlsParams(), progress: bool = True, out_path: Path | None = None
) -> AlsModel:
    """`clickstream train`: the topic's history -> ALS -> published in Redis (and to `out_path`).

    `profiles` (engine.profiles.store.ProfileStore) tells which visitors were erased."""
    history = Interactions(
        params.weights, settings.consent_default, settings.blocked_user_ids, settings.untrusted_orders
    )
    await read_history(settings, history, progress)
    erased = await erased_among(profiles, history.visitors())
    rows = list(history.rows(skip=erased))
    if not rows:
        raise ValueError("no interactions to train on (no purchases or views in the topic yet)")
    model = await asyncio.to_thread(train_from_interactions, rows, params, progress)
    model.meta.update(events=history.events, erased_visitors=len(erased))
    await als_store.publish(redis, settings.redis_prefix, model)
    if out_path is not None:
        Path(out_path).write_bytes(model.to_bytes())
    log.info(
        "ALS model %s: %d persons, %d items, %d interactions, %.1f s",
        model.version,
        model.meta["persons"],
        model.meta["items"],
        model.meta["interactions"],
        model.meta["train_seconds"],
    )
    return model


async def retrain_periodically(
    redis,
    prefix: str,
    every_s: float,
    stopping: Callable[[], bool],
    train_once: Callable[[], Awaitable[AlsModel]],
    poll_s: float = 5.0,
) -> None:
    """The worker's task: retrain when the current model is older than `every_s` (0: never).

    A lock in Redis (expiring after `every_s`) lets one worker of many train per interval.
    """
    if every_s <= 0:
        return
    lock = als_store.redis_keys(prefix)["lock"]
    while not stopping():
        try:
            current = await als_store.info(redis, prefix)
            age_s = (time.time() * 1000 - current["trained_at"]) / 1000 if current else float("inf")
            if age_s >= every_s and await redis.set(lock, os.getpid(), nx=True, ex=max(int(every_s), 1)):
                await train_once()
        except ValueError as exc:
            log.info("ALS retrain skipped: %s", exc)
        except Exception as exc:
            log.warning("ALS retrain failed: %r", exc)
        await asyncio.sleep(poll_s)
