"""The client's command packing (hiredis) writes exactly what redis-py's own packing writes."""

from __future__ import annotations

import uuid

import pytest
from redis.asyncio.connection import Connection
from redis.exceptions import DataError

from engine.redis_client import HiredisPacking, open_redis

COMMANDS = [
    ("EVALSHA", "a" * 40, 2, "cs:p:{v1}", b"cs:p:{v2}", b"\x00\xffraw", 7, -3, 0.1, 1e300, 2**70),
    ("SET", "k\u00e9y", "v\u2603lue", "🙂"),
    ("CONFIG GET", "maxmemory"),
    (b"CLIENT SETNAME", b"worker"),
    ("SET", "k", bytearray(b"ba"), memoryview(b"mv")),
    ("HSET", "h", "f", ""),
]


class Packed(HiredisPacking, Connection):
    pass


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: str(c[0]))
def test_the_same_bytes_as_redis_py(command):
    assert b"".join(Packed().pack_command(*command)) == b"".join(Connection().pack_command(*command))


@pytest.mark.parametrize("bad", [None, True, ["list"], {"a": 1}])
def test_what_redis_py_refuses_is_refused(bad):
    with pytest.raises(DataError):
        Connection().pack_command("SET", "k", bad)
    with pytest.raises(DataError):
        Packed().pack_command("SET", "k", bad)


async def test_the_engines_client_packs_with_hiredis_and_round_trips(redis_url):
    redis = open_redis(redis_url)
    key = f"test:pack:{uuid.uuid4().hex}"
    try:
        assert issubclass(redis.connection_pool.connection_class, HiredisPacking)
        value = "h\u00e9llo \u2603 " + "x" * 70_000  # past redis-py's buffer cutoff
        async with redis.pipeline(transaction=False) as pipe:
            pipe.set(key, value)
            pipe.get(key)
            pipe.eval("return {ARGV[1], ARGV[2], ARGV[3]}", 0, 42, 0.5, b"\x00\x01")
            _, got, echoed = await pipe.execute()
        assert got.decode() == value
        assert echoed == [b"42", b"0.5", b"\x00\x01"]
    finally:
        await redis.delete(key)
        await redis.aclose()
