"""Wish lists and back-in-stock alerts, in Redis, kept by the worker from the log.

    {prefix}:wish:<item>        set: the people (user id once identified, else visitor id)
                                who wished for the item and have not taken it back
    {prefix}:wished:<person>    set: the items a person wished for (so erasure finds them)
    {prefix}:stock              hash: item -> 1/0, available as the log's catalog changes said
                                (the API writes the catalog at once too, so the worker keeps
                                its own "before" to compare with)
    {prefix}:prices             hash: item -> price, as the log's catalog changes said (the same)

`add_to_wishlist` / `remove_from_wishlist` events (props.product.id) add and remove, in
log order. When a catalog change (server:catalog) turns an item the catalog held as
unavailable into an available one, every person who wished for it gets one alert
record `{kind: back_in_stock, person, item, at}` in the segment outbox (delivered to
the destinations that subscribe to alerts); when it lowers the price the log's catalog
held for a wished item, `{kind: price_drop, person, item, at, old_price, new_price}`.
One transaction compares with `stock` and `prices` and writes them, so the same change
applied again (a redelivered batch, a load at the same price) finds nothing changed and
alerts nobody twice; a replay rebuilds both and records no alerts.
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
        """Catalog step: records availability and prices; alerts the wishers of each item back
        from unavailable (back_in_stock) or offered for less than before (price_drop). Returns alerts."""
        stock_key, prices_key = f"{self.prefix}:stock", f"{self.prefix}:prices"
        ids = [item.id for item in items]
        priced = {item.id: repr(float(item.price)) for item in items if item.price is not None}
        async with self.redis.pipeline(transaction=True) as pipe:  # read and write as one step
            pipe.hmget(stock_key, ids)
            pipe.hmget(prices_key, ids)
            pipe.hset(stock_key, mapping={item.id: "1" if item.available else "0" for item in items})
            if priced:
                pipe.hset(prices_key, mapping=priced)
            before, prices_before, *_ = await pipe.execute()
        if not self.emit:
            return 0
        alerts = []
        for item, was, old in zip(items, before, prices_before):
            if item.available and was == b"0":
                alerts.append((item.id, {"kind": "back_in_stock"}))
            if item.price is not None and old is not None and item.price < float(old):
                alerts.append(
                    (item.id, {"kind": "price_drop", "old_price": old.decode(), "new_price": priced[item.id]})
                )
        return sum([await self._alert(item, fields, at) for item, fields in alerts])

    async def _alert(self, item: str, fields: dict, at: int) -> int:
        """One alert record per wisher of the item, in the outbox; returns how many."""
        people = await self.wishers(item)
        if not people:
            return 0
        async with self.redis.pipeline(transaction=False) as pipe:
            for person in people:
                pipe.xadd(
                    self.outbox_key,
                    {**fields, "person": person, "item": item, "at": at},
                    maxlen=1_000_000,
                    approximate=True,
                )
            pipe.hincrby(self.stats_key, "alerts", len(people))
            await pipe.execute()
        return len(people)

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
        await self.redis.delete(f"{self.prefix}:stock", f"{self.prefix}:prices")
        for pattern in (f"{self.prefix}:wish:*", f"{self.prefix}:wished:*"):
            keys = [k async for k in self.redis.scan_iter(match=pattern, count=1000)]
            if keys:
                await self.redis.delete(*keys)
