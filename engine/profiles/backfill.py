"""Backfill: a new or edited segment definition evaluated over the stored profiles.

    {prefix}:segdefs      hash: segment name -> fingerprint of the definition its set was built with
    {prefix}:segbackfill  hash: progress of the latest backfill (segments, done, total, started,
                          finished, seconds), for the logs and /metrics

A background task of the worker compares the served definitions with `segdefs`; for
the names that are new or changed it reads every stored profile (not the Kafka log),
in chunks of one round trip each, and writes their membership of those segments only,
without recording changes (a backfill is a rebuild, like a replay). Serving goes on
meanwhile: the task yields between chunks, and the batch path keeps updating the
people it touches. A removed definition's set is dropped.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time

from engine.profiles.derived import SegmentEvaluator

log = logging.getLogger("engine.worker")

CHUNK = 500


def fingerprint(segment) -> str:
    """What membership depends on: the condition and the score (not the description)."""
    return hashlib.sha256(f"{segment.condition.describe}\0{segment.score}".encode()).hexdigest()[:16]


class SegmentBackfill:
    def __init__(self, evaluator: SegmentEvaluator, poll_s: float = 1.0, chunk: int = CHUNK) -> None:
        self.evaluator = evaluator
        self.poll_s = poll_s
        self.chunk = chunk
        prefix = evaluator.index.prefix
        self.defs_key = f"{prefix}:segdefs"
        self.progress_key = f"{prefix}:segbackfill"
        self.lock_key = f"{prefix}:segbackfill:lock"

    @property
    def redis(self):
        return self.evaluator.index.redis

    async def pending(self) -> tuple[list[str], list[str]]:
        """(names whose sets are missing or stale, names of definitions since removed)."""
        stored = {k.decode(): v.decode() for k, v in (await self.redis.hgetall(self.defs_key)).items()}
        current = {s.name: fingerprint(s) for s in self.evaluator.rules.current.segments}
        stale = [name for name, print_ in current.items() if stored.get(name) != print_]
        return stale, sorted(set(stored) - set(current))

    async def run_once(self) -> int:
        """Backfills what is stale now; returns the number of people evaluated (0: nothing to do)."""
        stale, removed = await self.pending()
        if removed and self.evaluator.rules.current.fingerprint:  # never on an empty set that failed to load
            await self.evaluator.index.clear(removed)
            await self.redis.hdel(self.defs_key, *removed)
            log.info("segments removed from the rules, their sets dropped: %s", ", ".join(removed))
        if not stale:
            return 0
        if not await self.redis.set(self.lock_key, b"1", nx=True, ex=600):
            return 0  # another worker is on it
        try:
            return await self.backfill(stale)
        finally:
            await self.redis.delete(self.lock_key)

    async def backfill(self, names: list[str]) -> int:
        ev = self.evaluator
        segments = ev.rules.current.segments
        prints = {s.name: fingerprint(s) for s in segments if s.name in names}
        started = time.monotonic()
        ids = await ev.people.store.scan_ids()
        total, done, people = len(ids), 0, 0
        await self._progress(segments=",".join(names), done=0, total=total, started=time.time(), finished=0, seconds=0)
        log.info("segment backfill of %s over %d stored profiles", ", ".join(names), total)
        model = await ev.model(segments)
        users_seen: set[str] = set()
        next_report = 0.1
        for start in range(0, total, self.chunk):
            chunk = ids[start : start + self.chunk]
            now_ms = await ev.clock()
            pieces = await ev.people.store.get_many(chunk)
            judged: dict[str, dict | None] = {}
            for vid in chunk:
                piece = pieces.get(vid)
                user_id = piece.get("user_id") if piece is not None else None
                if user_id:
                    judged[vid] = None  # the user counts, not the visitor id
                    if user_id not in users_seen:
                        users_seen.add(user_id)
                        judged[user_id] = await ev.people.person(user_id)
                else:
                    judged[vid] = dict(piece, id=vid) if piece is not None else None
            memberships, due = await ev.judge(judged, segments, now_ms, model)
            await ev.index.update(memberships, list(prints), due=due, at=now_ms, emit=False, reason="backfill")
            done += len(chunk)
            people += len(judged)
            if done / total >= next_report or done == total:
                next_report += 0.1
                await self._progress(done=done, seconds=round(time.monotonic() - started, 3))
                log.info(
                    "segment backfill %s: %d/%d profiles (%.0f%%)", ",".join(names), done, total, 100 * done / total
                )
            await asyncio.sleep(0)  # serving goes on between chunks
        seconds = round(time.monotonic() - started, 3)
        await self._progress(done=done, total=total, finished=time.time(), seconds=seconds)
        await self.redis.hset(self.defs_key, mapping=prints)
        log.info("segment backfill of %s done: %d profiles in %.2fs", ", ".join(names), total, seconds)
        return people

    async def progress(self) -> dict:
        return {k.decode(): v.decode() for k, v in (await self.redis.hgetall(self.progress_key)).items()}

    async def _progress(self, **fields) -> None:
        await self.redis.hset(self.progress_key, mapping={k: str(v) for k, v in fields.items()})

    async def run(self, stopping) -> None:
        while not stopping():
            try:
                await self.run_once()
            except Exception as exc:
                log.warning("segment backfill failed, will retry: %r", exc)
            await asyncio.sleep(self.poll_s)
