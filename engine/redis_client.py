"""Redis clients opened from a URL."""

from __future__ import annotations

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff


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
    return Redis.from_url(url, **options)
