"""The naive baseline: a faust agent that handles one event at a time, one Redis round trip each.

One Lua call per event does the same profile work as the batch path (dedup by
event_id, counter per type, first/last seen, last 20 pages), so the difference
measured is the per-event cost, not less work.
"""

import os

import faust
import msgpack
import redis.asyncio as aioredis

PER_EVENT = """
if redis.call('SADD', KEYS[2], ARGV[1]) == 0 then return 0 end
redis.call('HINCRBY', KEYS[1], 'count:' .. ARGV[2], 1)
redis.call('HSETNX', KEYS[1], 'first_seen', ARGV[3])
redis.call('HSET', KEYS[1], 'last_seen', ARGV[3])
if ARGV[4] ~= '' then
  redis.call('LPUSH', KEYS[3], ARGV[4])
  redis.call('LTRIM', KEYS[3], 0, 19)
end
redis.call('INCR', KEYS[4])
return 1
"""

kafka = os.environ["BENCH_KAFKA"]
prefix = os.environ["BENCH_PREFIX"]
app = faust.App(
    f"naive-{prefix}",
    broker=f"kafka://{kafka}",
    store="memory://",
    web_enabled=False,
    topic_disable_leader=True,
    broker_rebalance_timeout=1.0,
    broker_session_timeout=6.0,
    broker_heartbeat_interval=1.0,
    consumer_auto_offset_reset="earliest",
    datadir=f"/tmp/{prefix}",
)
topic = app.topic(os.environ["BENCH_TOPIC"], value_serializer="raw", key_serializer="raw")
redis = aioredis.Redis.from_url(os.environ["BENCH_REDIS"])
script = redis.register_script(PER_EVENT)


@app.agent(topic)
async def per_event(stream):
    async for raw in stream:
        event = msgpack.unpackb(raw, raw=False)
        vid = event["visitor_id"]
        await script(
            keys=[
                f"{prefix}:{{{vid}}}:p",
                f"{prefix}:{{{vid}}}:seen",
                f"{prefix}:{{{vid}}}:pages",
                f"{prefix}:processed",
            ],
            args=[event["event_id"], event["type"], event["ts"], event.get("url", "")],
        )


if __name__ == "__main__":
    app.main()
