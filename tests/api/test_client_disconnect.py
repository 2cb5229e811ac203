"""A client that closes its connection before its body arrives gets a 400 nobody reads, never a 500 or a trace."""

from __future__ import annotations

import logging

import pytest

from engine.settings import Settings
from engine.wiring import create_app


async def call_and_disconnect(app, path: str) -> list[dict]:
    """One POST whose client goes away before a byte of its declared body: the messages the app sends."""
    sent: list[dict] = []

    async def receive():
        return {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"test"),
            (b"content-type", b"application/json"),
            (b"authorization", b"Bearer backend-key"),
            (b"content-length", b"100"),
        ],
        "client": ("127.0.0.1", 40000),
        "server": ("test", 80),
    }
    await app(scope, receive, send)
    return sent


@pytest.mark.parametrize(("role", "path"), [("api", "/v1/decide"), ("collector", "/v1/events")])
async def test_a_client_gone_before_its_body_is_a_400_and_no_error_in_the_log(role, path, caplog):
    settings = Settings(kafka="127.0.0.1:1", redis="redis://127.0.0.1:6379/0", api_keys=("backend-key",))
    app = create_app(settings, {role})
    with caplog.at_level(logging.INFO):
        sent = await call_and_disconnect(app, path)
    starts = [m for m in sent if m["type"] == "http.response.start"]
    assert [m["status"] for m in starts] == [400]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text
    assert "closed the connection before its body arrived" in caplog.text
