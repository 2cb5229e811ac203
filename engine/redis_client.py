"""Redis clients opened from a URL."""

from __future__ import annotations

from redis.asyncio import Redis


def open_redis(url: str) -> Redis:
    return Redis.from_url(url, decode_responses=False, health_check_interval=30, socket_connect_timeout=2)
