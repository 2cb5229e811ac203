"""Redis clients opened from a URL."""

from __future__ import annotations

from redis.asyncio import Redis


def open_redis(url: str, timeout_s: float | None = None) -> Redis:
    """`timeout_s` bounds every command: a paused or unreachable Redis fails fast instead of hanging."""
    return Redis.from_url(url, decode_responses=False, health_check_interval=30, socket_connect_timeout=2,
                          socket_timeout=timeout_s)
