"""`clickstream up`: everything on one machine, and nothing left behind on SIGTERM."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx

from helpers import BROWSER_UA, REPO, unique, user_hash, wait_until
from processes import alive, children_of, start_up


async def test_up_runs_everything_and_sigterm_leaves_nothing_behind(tmp_path):
    process, port, banner = start_up(tmp_path, {})
    try:
        assert "clickstream-engine is up in" in banner
        for part in (
            "broker   127.0.0.1:",
            "redis    redis://127.0.0.1:",
            f"http     http://127.0.0.1:{port}",
            f"console  http://127.0.0.1:{port}/console/",
        ):
            assert part in banner
        children = children_of(process.pid)
        commands = " | ".join(children.values())
        assert (
            "tansu" in commands
            and "redis-server" in commands
            and "engine.cli worker" in commands
            and "engine.cli api" in commands
        )
        vid = unique()
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", headers={"User-Agent": BROWSER_UA}) as client:
            assert (await client.get("/healthz")).status_code == 200
            response = await client.post("/v1/events", json={"type": "page_view", "visitor_id": vid, "url": "/hello"})
            assert response.status_code == 202

            async def profile():
                r = await client.get(f"/v1/profiles/{vid}", headers={"Authorization": "Bearer up-key"})
                return r.status_code == 200 and r.json()

            assert (await wait_until(profile, message="profile via up"))["counts"] == {"page_view": 1}
            recorded = json.loads((tmp_path / "up.json").read_text())
            assert recorded["kafka"] in banner and recorded["redis"] in banner and Path(recorded["rules"]).is_absolute()
            assert (tmp_path / "redis" / "appendonlydir").is_dir()  # the embedded Redis keeps an append-only file
            # A command run elsewhere, with nothing configured but the data folder, finds what up runs.
            elsewhere = tmp_path / "elsewhere"
            elsewhere.mkdir()
            env = {k: v for k, v in os.environ.items() if not k.startswith("CLICKSTREAM_")}
            env.update(CLICKSTREAM_DATA_DIR=str(tmp_path), PYTHONPATH=str(REPO))
            replay = subprocess.run(
                [sys.executable, "-m", "engine.cli", "replay", "--quiet"],
                cwd=elsewhere,
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert replay.returncode == 0, replay.stderr
            assert f"rules {recorded['rules']}" in replay.stderr and "replayed 1 events" in replay.stdout
            assert (await wait_until(profile, message="profile after replay"))["counts"] == {"page_view": 1}
            # Started where there is no ./rules folder: the packaged demo catalog is served.
            hero = (await client.post("/v1/decide", json={"slots": ["hero"]})).json()["decisions"]["hero"]
            assert hero["content_id"] == "hero-welcome", hero
            # The embedded default's demo login signs with the data folder's identity secret.
            secret = (tmp_path / "identity-secret").read_text().strip()
            assert len(secret) == 64 and (tmp_path / "identity-secret").stat().st_mode & 0o077 == 0
            login = await client.post("/demo/login", json={"user_id": "ada@example.com"})
            assert login.json() == {"user_id": "ada@example.com", "user_hash": user_hash("ada@example.com", secret)}
            assert (await client.post("/demo/login", json={"user_id": 7})).status_code == 400
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0
    leftovers = [pid for pid in children if alive(pid)]
    assert leftovers == [], f"left behind: {[children[p] for p in leftovers]}"
    assert not (tmp_path / "up.json").exists()


async def test_up_uses_configured_kafka_and_redis(tmp_path, kafka_bootstrap, redis_url):
    process, port, banner = start_up(
        tmp_path,
        {
            "CLICKSTREAM_KAFKA": kafka_bootstrap,
            "CLICKSTREAM_REDIS": redis_url,
            "CLICKSTREAM_TOPIC": f"up-{unique()}",
            "CLICKSTREAM_REDIS_PREFIX": unique("up"),
            "CLICKSTREAM_CONSUMER_GROUP": unique("g"),
        },
    )
    try:
        commands = " | ".join(children_of(process.pid).values())
        assert "tansu" not in commands and "redis-server" not in commands
        assert f"broker   {kafka_bootstrap}" in banner and f"redis    {redis_url}" in banner
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:  # no demo login on a real setup
            assert (await client.post("/demo/login", json={"user_id": "ada@example.com"})).status_code in (404, 405)
    finally:
        process.send_signal(signal.SIGINT)
        assert process.wait(30) == 0
