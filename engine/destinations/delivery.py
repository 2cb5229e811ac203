"""The delivery worker: outbox records POSTed to the destinations declared in rule files.

    {prefix}:segchanges        the outbox (engine.profiles.segments_index); one consumer
                               group per destination, `dest:<name>`, so each destination
                               has its own position and its own pending entries
    {prefix}:segchanges:dead   records a destination failed to take for `dead_after_s`
                               (24 h by default): the record, with destination, entry, failure

Failure policy, in one place (`_deliver`): a 2xx answer acknowledges the entry; a 5xx,
408/429 or a timeout is retried at once with exponential backoff and jitter (tenacity),
and when those attempts fail the entry stays pending in the group: it is claimed again
after `retry_idle_s` (XAUTOCLAIM), on this worker or another, until it is delivered or
is older than `dead_after_s`, when it moves to the dead-letter stream. Any other 4xx
will not change on a retry and goes to the dead-letter stream at once. Every outcome is
counted (`delivery:<name>:<outcome>` in the stats hash, shown by /metrics). Delivery is
at least once; the delivery id (the same on every attempt) lets the receiver drop repeats.

It runs as a background task of the worker, one task per destination, so a slow
receiver holds up neither the others nor profile processing. A marketing destination
(the default) hears only people who gave marketing consent, with the traits a mailing
needs; an analytics one hears everyone, without traits. Two exits are the exceptions:
`consent_withdrawn` goes to marketing destinations only (the person is still a member),
and `erased` reaches a marketing destination if the person had marketing consent when
erased (the entry's `marketing` field, since nothing of them can be read any more).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections import defaultdict

import aiohttp
from redis.exceptions import ResponseError
from tenacity import (
    AsyncRetrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential_jitter,
)

from engine.destinations import webhook
from engine.destinations.topic import ChangesTopic
from engine.profiles.segments_index import CONSENT_WITHDRAWN, ERASED

log = logging.getLogger("engine.destinations")
RESPONSE_KEPT = 64 * 1024


class Retryable(Exception):
    """A delivery attempt worth repeating (5xx, 408/429, a timeout, a refused connection)."""


class Rejected(Exception):
    """The receiver refused the record for good (a 4xx other than 408/429)."""


class Delivery:
    def __init__(
        self,
        redis,
        prefix: str,
        rules,
        people,
        *,
        attempts: int = 4,
        backoff_s: float = 0.2,
        backoff_max_s: float = 5.0,
        retry_idle_s: float = 30.0,
        dead_after_s: float = 86_400.0,
        timeout_s: float = 5.0,
        batch: int = 200,
        block_ms: int = 500,
        concurrency: int = 16,
        topic: ChangesTopic | None = None,
    ) -> None:
        self.redis = redis
        self.outbox_key = f"{prefix}:segchanges"
        self.dead_key = f"{prefix}:segchanges:dead"
        self.stats_key = f"{prefix}:segstats"
        self.rules = rules  # engine.rules.live.LiveRules: destinations are read from the current set
        self.people = people  # engine.profiles.people.People: consent and traits
        self.attempts, self.backoff_s, self.backoff_max_s = attempts, backoff_s, backoff_max_s
        self.retry_idle_ms = int(retry_idle_s * 1000)
        self.dead_after_ms = int(dead_after_s * 1000)
        self.timeout_s, self.batch, self.block_ms = timeout_s, batch, block_ms
        self.concurrency = concurrency  # requests in flight per destination (and connections kept)
        self.consumer = f"{socket.gethostname()}-{os.getpid()}"
        self.http: aiohttp.ClientSession | None = None
        self.tasks: dict[str, asyncio.Task] = {}
        self.topic = topic  # every record also on a Kafka topic (engine.destinations.topic), or None
        # Per destination: people with a record kept for redelivery; their later records wait behind it.
        self.held: dict[str, set[str]] = defaultdict(set)

    @staticmethod
    def group(name: str) -> str:
        return f"dest:{name}"

    def destination(self, name: str):
        return next((d for d in self.rules.current.destinations if d.name == name), None)

    def names(self) -> list[str]:
        """Every consumer of the outbox: the declared destinations, and the changes topic when there is one."""
        return [d.name for d in self.rules.current.destinations] + ([self.topic.name] if self.topic else [])

    async def ensure_groups(self) -> None:
        """A group per declared destination, from the outbox's end: a new destination hears what happens from now."""
        for name in self.names():
            try:
                await self.redis.xgroup_create(self.outbox_key, self.group(name), id="$", mkstream=True)
            except ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise

    async def pending(self) -> dict[str, int]:
        """Per destination: entries read and not yet delivered (kept for redelivery)."""
        out = {}
        for name in self.names():
            try:
                out[name] = int((await self.redis.xpending(self.outbox_key, self.group(name)))["pending"])
            except ResponseError:
                out[name] = 0
        return out

    async def run(self, stopping) -> None:
        # aiohttp's client (already here with faust) costs about a tenth of httpx's per request, which is what
        # bounded delivery (benchmarks/RESULTS.md, "Event to webhook"); it sets TCP_NODELAY, so a request's
        # headers and body never wait on a delayed ACK.
        self.http = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=4 * self.concurrency),
            timeout=aiohttp.ClientTimeout(total=self.timeout_s),
        )
        try:
            while not stopping():
                try:
                    await self.ensure_groups()
                    declared = set(self.names())
                    for name in declared - set(self.tasks):
                        self.tasks[name] = asyncio.create_task(self._serve(name, stopping))
                    for name in set(self.tasks) - declared:
                        self.tasks.pop(name).cancel()
                    for name, task in list(self.tasks.items()):
                        if task.done():  # a crash of one destination's loop: log it, start it again
                            if not task.cancelled() and task.exception() is not None:
                                log.error("delivery to %s stopped: %r", name, task.exception())
                            del self.tasks[name]
                except Exception as exc:
                    log.warning("delivery supervisor: %r", exc)
                await asyncio.sleep(1.0)
        finally:
            for task in self.tasks.values():
                task.cancel()
            await self.http.close()
            if self.topic is not None:
                await self.topic.stop()

    async def _serve(self, name: str, stopping) -> None:
        group = self.group(name)
        while not stopping():
            try:
                claimed = await self.redis.xautoclaim(
                    self.outbox_key, group, self.consumer, self.retry_idle_ms, start_id="0-0", count=self.batch
                )
                entries = list(claimed[1])
                gone = claimed[2] if len(claimed) > 2 else []
                if gone:  # erased since they were read: nothing to deliver
                    await self.redis.xack(self.outbox_key, group, *gone)
                fresh = await self.redis.xreadgroup(
                    group,
                    self.consumer,
                    {self.outbox_key: ">"},
                    count=self.batch,
                    block=self.block_ms if not entries else None,
                )
                for _, rows in fresh or ():
                    entries += rows
                entries = [(entry_id, fields) for entry_id, fields in entries if fields]
                if entries and self.topic is not None and name == self.topic.name:
                    await self.produce_all(entries)
                elif entries:
                    await self.deliver_all(name, entries, retried=len(entries) - sum(len(r) for _, r in fresh or ()))
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Redis away: the entries stay pending, claimed again later
                log.warning("delivery to %s: %r", name, exc)
                await asyncio.sleep(1.0)

    async def deliver_all(self, name: str, entries: list, retried: int = 0) -> None:
        """One person's records in order; different people at once; one acknowledgement for all done.

        The first `retried` entries are claimed again (older, in id order). A record kept
        for redelivery holds back that person's later ones (they stay pending, and are
        claimed again behind it), so a receiver never hears `exited` before `entered`."""
        held = self.held[name]
        by_person: dict[str, list] = defaultdict(list)
        for n, (entry_id, fields) in enumerate(entries):
            by_person[fields.get(b"person", b"").decode()].append(
                (entry_id.decode() if isinstance(entry_id, bytes) else entry_id, webhook.record(fields), n < retried)
            )
        done: list[str] = []
        notices: list[str] = []  # erasure notices among them
        outcomes: dict[str, int] = defaultdict(int)
        slots = asyncio.Semaphore(self.concurrency)

        async def one_person(person, rows):
            if person in held and not rows[0][2]:
                return  # its earlier record is not claimed again yet
            for entry_id, change, _ in rows:
                async with slots:
                    outcome = await self._deliver(name, entry_id, change)
                if outcome is None:
                    held.add(person)
                    return
                done.append(entry_id)
                if change.get("reason") == ERASED:
                    notices.append(entry_id)
                if outcome:
                    outcomes[outcome] += 1
            held.discard(person)

        await asyncio.gather(*(one_person(person, rows) for person, rows in by_person.items()))
        if done:
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.xack(self.outbox_key, self.group(name), *done)
                for outcome, count in outcomes.items():
                    pipe.hincrby(self.stats_key, f"delivery:{name}:{outcome}", count)
                await pipe.execute()
        if notices:
            await self._retire(notices)

    async def produce_all(self, entries: list) -> None:
        """The entries on the changes topic in outbox order, keyed by person; acknowledged once the broker has them
        all (else they stay pending and are produced again, with the same ids, when claimed)."""
        name, records, ids, notices = self.topic.name, [], [], []
        for entry_id, fields in entries:
            entry_id = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
            change = webhook.record(fields)
            records.append(
                (change.get("person", "").encode(), webhook.body(change, webhook.delivery_id(name, entry_id)))
            )
            ids.append(entry_id)
            if change.get("reason") == ERASED:
                notices.append(entry_id)
        await self.topic.send(records, 2 * self.timeout_s)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.xack(self.outbox_key, self.group(name), *ids)
            pipe.hincrby(self.stats_key, f"delivery:{name}:delivered", len(ids))
            await pipe.execute()
        if notices:
            await self._retire(notices)

    async def _retire(self, notices: list[str]) -> None:
        """An erasure notice names the erased person: it leaves the outbox once no destination still owes it."""
        groups = await self.redis.xinfo_groups(self.outbox_key)
        for entry_id in notices:
            owed = False
            for group in groups:
                last = group["last-delivered-id"]
                last = last.decode() if isinstance(last, bytes) else last
                if _id_order(last) < _id_order(entry_id) or await self.redis.xpending_range(
                    self.outbox_key, group["name"], min=entry_id, max=entry_id, count=1
                ):
                    owed = True
                    break
            if not owed:
                await self.redis.xdel(self.outbox_key, entry_id)

    async def _deliver(self, name: str, entry_id: str, change: dict) -> str | None:
        """The outcome to count ("" for a record this destination does not hear), or None: kept for redelivery."""
        destination = self.destination(name)
        if destination is None:
            return None
        if not destination.wants(change):
            return ""
        traits = None
        reason = change.get("reason")
        if destination.purpose != "marketing":
            if reason == CONSENT_WITHDRAWN:
                return ""  # still a member: only those who mailed them need to hear it
        elif reason == ERASED:  # nothing left to read: whether they had consent was recorded with it
            if change.get("marketing") != "1":
                return "skipped_no_consent"
        else:
            person = await self.people.person(change["person"])
            if reason != CONSENT_WITHDRAWN and not webhook.has_marketing_consent(person):
                return "skipped_no_consent"
            traits = webhook.marketing_traits(person)  # a withdrawal too: the receiver finds the contact by them
        delivery = webhook.delivery_id(name, entry_id)
        payload = webhook.body(change, delivery, traits)
        try:
            async for attempt in AsyncRetrying(
                stop=stop_after_attempt(self.attempts),
                reraise=True,
                wait=wait_exponential_jitter(multiplier=self.backoff_s, max=self.backoff_max_s),
                retry=retry_if_exception_type(Retryable),
            ):
                with attempt:
                    await self._post(destination, payload, delivery, name)
        except Retryable as exc:
            if int(time.time() * 1000) - _entry_ms(entry_id) >= self.dead_after_ms:
                await self._dead(entry_id, name, change, f"gave up after the retry period: {exc}")
                return "dead"
            log.info("delivery %s failed, kept for redelivery: %s", delivery, exc)
            return None
        except Rejected as exc:
            await self._dead(entry_id, name, change, str(exc))
            return "dead"
        return "delivered"

    async def _post(self, destination, payload: bytes, delivery: str, name: str) -> None:
        try:
            async with self.http.post(
                destination.url, data=payload, headers=webhook.headers(destination.secret, payload, delivery)
            ) as response:
                status = response.status
                await response.content.read(RESPONSE_KEPT)  # the answer's body means nothing; a bounded read
        except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as exc:  # ValueError: a malformed URL
            await self.redis.hincrby(self.stats_key, f"delivery:{name}:failed", 1)
            raise Retryable(f"{type(exc).__name__}: {exc}"[:200]) from exc
        if 200 <= status < 300:
            return
        await self.redis.hincrby(self.stats_key, f"delivery:{name}:failed", 1)
        if webhook.retryable(status):
            raise Retryable(f"HTTP {status}")
        raise Rejected(f"HTTP {status}")

    async def _dead(self, entry_id: str, name: str, change: dict, reason: str) -> None:
        """Keeps the record in the dead-letter stream; the caller acknowledges it."""
        log.warning("delivery %s moved to the dead-letter stream: %s", webhook.delivery_id(name, entry_id), reason)
        await self.redis.xadd(
            self.dead_key,
            {**{k: str(v) for k, v in change.items()}, "destination": name, "entry": entry_id, "failure": reason[:300]},
        )


def _id_order(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


def _entry_ms(entry_id: str) -> int:
    return int(entry_id.split("-")[0])
