"""Wish lists and back-in-stock alerts, in Redis, kept by the worker from the log.

    {prefix}:wish:<item>        set: the people (user id once identified, else visitor id)
                                who wished for the item and have not taken it back
    {prefix}:wished:<person>    set: the items a person wished for (so erasure finds them)
    {prefix}:stock              hash: item -> 1/0, available as the log's catalog changes said
                                (the API writes the catalog at once too, so the worker keeps
                                its own "before" to compare with)

`add_to_wishlist` / `remove_from_wishlist` events (props.product.id) add and remove, in
log order. When a catalog change (server:catalog) turns an item the catalog held as
unavailable into an available one, every person who wished for it gets one alert
record `{kind: back_in_stock, person, item, at}` in the segment outbox (delivered to
the destinations that subscribe to alerts). One script compares with `stock` and writes
it, so the same change applied again (a redelivered batch) finds the item available
already and alerts nobody twice; a replay rebuilds `stock` and records no alerts.
"""

from __future__ import annotations

from redis.asyncio import Redis

from engine.profiles.store import BatchResult

WISH, UNWISH = "add_to_wishlist", "remove_from_wishlist"


def wished_item(event: dict) -> str | None:
    product = (event.get("props") or {}).get("product") if isinstance(event.get("props"), dict) else None
    item = product.get("id") if isinstance(product, dict) else None
    return str(item) if isinstance(item, (str, int)) and not isinstance(item, bool) and str(item) else None


class Wishlists:
    def __init__(self, redis: Redis, prefix: str, outbox_key: str, stats_key: str, emit: bool = True) -> None:
        self.redis = redis
        self.prefix = prefix
        self.outbox_key = outbox_key
        self.stats_key = stats_key
        self.emit = emit

    def item_key(self, item: str) -> str:
        return f"{self.prefix}:wish:{item}"

    def person_key(self, person: str) -> str:
        return f"{self.prefix}:wished:{person}"

    async def __call__(self, events: list[dict], result: BatchResult) -> None:
        """After-batch step: the batch's wishes, in order, under the person each visitor now is."""
        wishes = [e for e in events if type(e) is dict and e.get("type") in (WISH, UNWISH) and wished_item(e)]
        if not wishes:
            return
        async with self.redis.pipeline(transaction=False) as pipe:
            for event in wishes:
                vid = event.get("visitor_id")
                piece = result.profiles.get(vid)
                if piece is None:
                    continue  # erased, or the event was not applied
                person = piece.get("user_id") or vid
                item = wished_item(event)
                if event["type"] == WISH:
                    pipe.sadd(self.item_key(item), person)
                    pipe.sadd(self.person_key(person), item)
                else:
                    pipe.srem(self.item_key(item), person)
                    pipe.srem(self.person_key(person), item)
            await pipe.execute()

    async def wishers(self, item: str) -> list[str]:
        return sorted(m.decode() for m in await self.redis.smembers(self.item_key(item)))

    async def catalog_changed(self, items: list, at: int) -> int:
        """Catalog step: records availability; alerts for the items back from unavailable. Returns alerts."""
        stock_key = f"{self.prefix}:stock"
        ids = [item.id for item in items]
        async with self.redis.pipeline(transaction=True) as pipe:  # read and write as one step
            pipe.hmget(stock_key, ids)
            pipe.hset(stock_key, mapping={item.id: "1" if item.available else "0" for item in items})
            before, _ = await pipe.execute()
        if not self.emit:
            return 0
        back = [item.id for item, was in zip(items, before) if item.available and was == b"0"]
        alerts = 0
        for item in back:
            people = await self.wishers(item)
            if not people:
                continue
            async with self.redis.pipeline(transaction=False) as pipe:
                for person in people:
                    pipe.xadd(self.outbox_key, {"kind": "back_in_stock", "person": person, "item": item, "at": at},
                              maxlen=1_000_000, approximate=True)
                pipe.hincrby(self.stats_key, "alerts", len(people))
                await pipe.execute()
            alerts += len(people)
        return alerts

    async def forget(self, person_id: str, pieces: list[dict]) -> None:
        """Erasure hook: the person (and each of their visitor ids) wishes for nothing any more."""
        for person in {person_id, *(p["id"] for p in pieces if p and p.get("id"))}:
            items = [m.decode() for m in await self.redis.smembers(self.person_key(person))]
            async with self.redis.pipeline(transaction=False) as pipe:
                for item in items:
                    pipe.srem(self.item_key(item), person)
                pipe.delete(self.person_key(person))
                await pipe.execute()

    async def clear(self) -> None:
        """For a rebuild (replay): every wish set."""
        await self.redis.delete(f"{self.prefix}:stock")
        for pattern in (f"{self.prefix}:wish:*", f"{self.prefix}:wished:*"):
            keys = [k async for k in self.redis.scan_iter(match=pattern, count=1000)]
            if keys:
                await self.redis.delete(*keys)
