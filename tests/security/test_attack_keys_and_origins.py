"""Attacks on keys and origins: a key used beyond its scope, a wrong key, a page on another origin."""

import os

import pytest

from attacks import KEY, ORIGIN, SCOPED, T0, auth, customer
from engine.errors import SettingsError
from engine.settings import Settings
from helpers import run_cli

READ, WRITE, ERASE = (key for key, _ in sorted(SCOPED.items(), key=lambda kv: ["read", "write", "erase"].index(kv[1])))


async def test_each_key_does_only_what_its_scopes_allow(secure):
    _, vid, user = await customer(secure)
    async with secure.client() as client:

        async def status(method, path, key, **kwargs):
            response = await client.request(method, path, headers=auth(key), **kwargs)
            if response.status_code >= 400:
                assert response.json()["error"]
            return response.status_code

        event = {"json": {"type": "page_view", "visitor_id": vid, "ts": T0}}
        assert await status("GET", f"/v1/profiles/{user}", READ) == 200
        assert await status("POST", "/v1/events", READ, **event) == 403
        assert await status("GET", f"/v1/profiles/{user}/export", READ) == 403
        assert await status("DELETE", f"/v1/profiles/{user}", READ) == 403
        assert await status("POST", "/v1/events", WRITE, **event) == 202
        assert await status("GET", f"/v1/profiles/{user}", WRITE) == 403
        assert await status("GET", f"/v1/profiles/{user}/export", WRITE) == 403
        assert await status("GET", f"/v1/profiles/{user}", ERASE) == 403
        assert await status("GET", f"/v1/profiles/{user}/export", ERASE) == 200
        for wrong in ("nope", KEY[:-1], KEY + "x", READ.upper()):
            assert await status("GET", f"/v1/profiles/{user}", wrong) == 401
        refused = await client.post("/v1/events", headers=auth(READ), **event)
    assert refused.json()["error"] == "this API key lacks the write scope"


def test_keys_never_show_in_repr_or_logs(secure):
    shown = repr(secure.settings) + repr(secure.settings.api_keys)
    logs = secure.api.log() + secure.worker.log()
    for key in (KEY, *SCOPED):
        assert key not in shown and key not in logs


async def test_a_wildcard_origin_is_refused_at_start_and_credentials_go_only_to_origins_named_exactly(secure):
    for origins in ("*", "https://shop.example,*", "null"):
        with pytest.raises(SettingsError, match="CLICKSTREAM_SITE_ORIGINS"):
            Settings.from_env({"CLICKSTREAM_SITE_ORIGINS": origins})
        env = {**os.environ, **secure.settings.environ(), "CLICKSTREAM_SITE_ORIGINS": origins}
        started = run_cli("api", "--port", "9", env=env)
        assert started.returncode == 2 and "CLICKSTREAM_SITE_ORIGINS" in started.stderr
    async with secure.client() as client:

        async def preflight(origin):
            return await client.options(
                "/v1/profiles/x/export", headers={"Origin": origin, "Access-Control-Request-Method": "GET"}
            )

        named = await preflight(ORIGIN)
        assert named.headers["access-control-allow-origin"] == ORIGIN
        assert named.headers["access-control-allow-credentials"] == "true"
        for origin in ("https://evil.example", "null", "https://shop.example.evil.example", "http://shop.example"):
            answer = await preflight(origin)
            assert answer.status_code == 400 and "access-control-allow-origin" not in answer.headers
            simple = await client.get("/healthz", headers={"Origin": origin})
            assert "access-control-allow-origin" not in simple.headers
