"""Which purchases count: a back end's orders always, a browser's by CLICKSTREAM_UNTRUSTED_ORDERS.

A purchase posted with an API key is `trusted` (engine.ingest.trust): the shop's
back end confirmed it, so it is authoritative. A purchase from a browser is the
visitor's own claim (only their own cookie may send it). The policy:

    count           browsers' purchases count like the back end's
    until-trusted   they count until the shop has sent its first trusted order (the default:
                    a shop that only has the snippet still gets values and also-bought)
    claim           they never count

A purchase that does not count is marked `claim` by the worker before any store sees
the batch: the profile keeps it under commerce.claims, and the value model, the
co-occurrence counts, the bandit's conversions and the ALS model leave it out.
Orders already counted stay counted when the first trusted one arrives.

    {prefix}:orders:trusted   set once the worker has seen a trusted purchase (a replay clears it)
"""

from __future__ import annotations

from typing import Iterable

from redis.asyncio import Redis

POLICIES = ("count", "until-trusted", "claim")


def mark_claims(events: Iterable[dict], policy: str, trusted_seen: bool) -> bool:
    """Marks each purchase `claim` or not, in order; returns whether a trusted purchase has been seen."""
    for event in events:
        if type(event) is not dict or event.get("type") != "purchase":
            continue
        if event.get("trusted") is True:
            trusted_seen = True
            event["claim"] = False
        else:
            event["claim"] = policy == "claim" or (policy == "until-trusted" and trusted_seen)
    return trusted_seen


def counts(event: dict) -> bool:
    """A purchase the stores count (the worker marked it; a purchase never marked counts)."""
    return event.get("type") == "purchase" and event.get("claim") is not True


class OrderTrust:
    """The worker's step before everything else: marks the batch's purchases, remembering the shop's first trusted one."""

    def __init__(self, redis: Redis, prefix: str, policy: str = "until-trusted") -> None:
        if policy not in POLICIES:
            raise ValueError(f"unknown policy {policy!r}; expected one of {POLICIES}")
        self.redis = redis
        self.key = f"{prefix}:orders:trusted"
        self.policy = policy
        self.trusted_seen = False  # once true, it stays true: no need to ask again

    async def mark(self, events: list[dict]) -> None:
        if self.policy == "until-trusted" and not self.trusted_seen:
            if not any(type(e) is dict and e.get("type") == "purchase" for e in events):
                return
            self.trusted_seen = bool(await self.redis.exists(self.key))
            if mark_claims(events, self.policy, self.trusted_seen) and not self.trusted_seen:
                await self.redis.set(self.key, b"1", nx=True)
                self.trusted_seen = True
            return
        mark_claims(events, self.policy, self.trusted_seen)

    async def clear(self) -> None:
        """For a replay: the history decides again when the first trusted order came."""
        await self.redis.delete(self.key)
        self.trusted_seen = False
