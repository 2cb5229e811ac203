"""A body that stops arriving part way gets a 408 in time, and frees its handler; whole ones are served."""

from __future__ import annotations

import asyncio
import json
import time
import uuid

from helpers import Engine, unique


async def _raw(port: int, head: bytes, body: bytes, wait_s: float) -> tuple[bytes, float]:
    """Sends `head` and the start of a body over a plain socket; returns what came back and when."""
    started = time.monotonic()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(head + body)
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(65536), wait_s)
        return answer, time.monotonic() - started
    finally:
        writer.close()


async def test_a_stalled_body_is_refused_with_408_and_a_whole_one_accepted(settings_for, tmp_session):
    engine = Engine(settings_for(body_timeout_s=1.0), tmp_session / unique("body-deadline"))
    try:
        engine.start_api()
        event = json.dumps({"type": "page_view", "visitor_id": str(uuid.uuid4()), "ts": 1795400000000}).encode()
        head = (
            b"POST /v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n" % (len(event) + 50)
        )
        answer, took = await _raw(engine.port, head, event, wait_s=10)  # 50 bytes short, then silence
        status, _, rest = answer.partition(b"\r\n")
        assert status == b"HTTP/1.1 408 Request Timeout", answer[:300]
        assert json.loads(rest.partition(b"\r\n\r\n")[2])["error"].startswith("body: not received within 1 s")
        assert 0.9 <= took < 5, took

        # The same request sent whole is taken (the deadline is on the body, not on the handler).
        head = head.replace(b"Content-Length: %d" % (len(event) + 50), b"Content-Length: %d" % len(event))
        answer, _ = await _raw(engine.port, head, event, wait_s=10)
        assert answer.startswith(b"HTTP/1.1 202"), answer[:300]

        # A body sent slowly but whole within the deadline is taken too.
        reader, writer = await asyncio.open_connection("127.0.0.1", engine.port)
        try:
            writer.write(head + event[:10])
            await writer.drain()
            await asyncio.sleep(0.5)
            writer.write(event[10:])
            await writer.drain()
            assert (await asyncio.wait_for(reader.read(65536), 10)).startswith(b"HTTP/1.1 202")
        finally:
            writer.close()
    finally:
        engine.stop()
