"""Redis clients opened from a URL."""

from __future__ import annotations

import hiredis
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import DataError


class HiredisPacking:
    """Packs commands with hiredis (C), as redis-py's blocking client does when hiredis is there.

    redis-py's asyncio connection packs each argument in Python, about 1 us apiece; the
    worker's scripts take a key and an argument or two per visitor, so that was a few
    microseconds of every event. Bytes and text go to hiredis as they are; anything else
    goes through the client's own encoder first, so numbers are written exactly as before
    and a value it refuses (None, a bool) still raises DataError."""

    def pack_command(self, *args) -> list[bytes]:
        first = args[0]
        if first.__class__ is str:
            head = tuple(first.encode().split())
        elif b" " in first:
            head = tuple(first.split())
        else:
            head = (first,)
        encoder = self.encoder
        encoding, errors, encode = encoder.encoding, encoder.encoding_errors, encoder.encode
        rest = []
        for arg in args[1:]:
            kind = arg.__class__
            if kind is bytes:
                rest.append(arg)
            elif kind is str:
                rest.append(arg.encode(encoding, errors))
            else:
                value = encode(arg)
                rest.append(value if value.__class__ is bytes else bytes(value))
        try:
            return [hiredis.pack_command((*head, *rest))]
        except TypeError as exc:  # what the encoder let through and hiredis does not take
            raise DataError(str(exc)) from None


def _packed_by_hiredis(client: Redis) -> Redis:
    pool = client.connection_pool
    base = pool.connection_class  # plain, TLS or Unix socket, as the URL says
    pool.connection_class = type(f"Hiredis{base.__name__}", (HiredisPacking, base), {})
    return client


def open_redis(url: str, timeout_s: float | None = None, fail_fast: bool = False) -> Redis:
    """`timeout_s` bounds every command: a paused or unreachable Redis fails fast instead of hanging.

    `fail_fast` (the HTTP app's): connecting is bounded by the same timeout and a failed
    command is not retried, so a request answers 503 within one timeout; the next
    request connects again, so a Redis that comes back serves without a restart. The
    worker keeps the client's retries: a batch may wait.
    """
    options = dict(decode_responses=False, health_check_interval=30, socket_timeout=timeout_s)
    if fail_fast:
        options.update(socket_connect_timeout=timeout_s, retry=Retry(NoBackoff(), 0))
    else:
        options.update(socket_connect_timeout=2)
    return _packed_by_hiredis(Redis.from_url(url, **options))
