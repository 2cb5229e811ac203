"""What the tests share: the one wait helper, unique names, engine processes."""

from __future__ import annotations

import asyncio
import re
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx

from engine.embedded import free_port, wait_for_port
from engine.settings import Settings

REPO = Path(__file__).resolve().parent.parent
IDENTITY_SECRET = "test-identity-secret"  # the tests' CLICKSTREAM_IDENTITY_SECRET
# What a visitor's browser sends: a client library's own user agent (python-httpx) is a bot's.
BROWSER_UA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36"


def user_hash(user_id: str, secret: str = IDENTITY_SECRET) -> str:
    """What a shop's back end computes at login: hex HMAC-SHA256 of the user id."""
    import hashlib
    import hmac

    return hmac.new(secret.encode(), user_id.encode(), hashlib.sha256).hexdigest()


async def wait_until(condition, timeout: float = 20.0, interval: float = 0.1, message: str = "condition"):
    """The one way tests wait: poll a condition (sync or async) until it is truthy."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = condition()
        if asyncio.iscoroutine(last):
            last = await last
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {message} (last: {last!r})")


def run_cli(*args: str, env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess:
    """`clickstream ARGS` run to its end from the repository with the environment `env`, its output kept as text."""
    return subprocess.run(
        [sys.executable, "-m", "engine.cli", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout
    )


class Process:
    """A `clickstream` subcommand run as a child process, as in a deployment."""

    def __init__(self, settings: Settings, *args: str, log_path: Path) -> None:
        env = dict(os.environ, **settings.environ())
        self.log_path = log_path
        self.popen = subprocess.Popen(
            [sys.executable, "-m", "engine.cli", *args],
            env=env,
            cwd=REPO,
            stdout=open(log_path, "ab"),
            stderr=subprocess.STDOUT,
        )

    def stop(self, sig=None) -> None:
        if self.popen.poll() is None:
            if sig is None:
                self.popen.terminate()
            else:
                self.popen.send_signal(sig)
            try:
                self.popen.wait(15)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


class Engine:
    """A worker and an HTTP app over one set of settings, plus a client for it."""

    def __init__(self, settings: Settings, log_dir: Path) -> None:
        self.settings = settings
        self.log_dir = log_dir
        log_dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.worker: Process | None = None
        self.api: Process | None = None

    def start_worker(self) -> Process:
        self.worker = Process(self.settings, "worker", log_path=self.log_dir / "worker.log")
        return self.worker

    def start_api(self) -> Process:
        self.api = Process(self.settings, "api", "--port", str(self.port), log_path=self.log_dir / "api.log")
        wait_for_port(self.port, 30, self.api.popen)
        return self.api

    async def wait_ready(self, timeout: float = 40.0) -> None:
        async with httpx.AsyncClient(base_url=self.url) as client:

            async def ready():
                return (await client.get("/healthz")).status_code == 200

            await wait_until(ready, timeout, message="/healthz 200")

    def client(self, **kwargs) -> httpx.AsyncClient:
        """A client as a visitor's browser is one (its user agent; headers given replace it)."""
        headers = {"User-Agent": BROWSER_UA, **kwargs.pop("headers", {})}
        return httpx.AsyncClient(base_url=self.url, timeout=20, headers=headers, **kwargs)

    async def profile(self, profile_id: str) -> dict | None:
        async with self.client() as client:
            response = await client.get(f"/v1/profiles/{profile_id}", headers={"Authorization": "Bearer test-key"})
        return response.json() if response.status_code == 200 else None

    def stop(self) -> None:
        for process in (self.api, self.worker):
            if process is not None:
                process.stop()


def unique(prefix: str = "v") -> str:
    """A fresh name; the default is a visitor id, which must be one the engine issues (a v4 UUID)."""
    if prefix == "v":
        return str(uuid.uuid4())
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def visitor(name: str) -> str:
    """A stable visitor id for a readable name (a v4-shaped UUID derived from it)."""
    import hashlib

    return str(uuid.UUID(bytes=hashlib.md5(name.encode()).digest(), version=4))


async def topic_offsets(settings: Settings, topic: str) -> int:
    """How many messages a topic holds (sum of end offsets)."""
    from aiokafka import TopicPartition

    from engine.stream.consumer import kafka_consumer

    consumer = kafka_consumer(settings, group_id=None)
    await consumer.start()
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        if not partitions:
            await consumer.client.force_metadata_update()
            partitions = consumer.partitions_for_topic(topic) or set()
        from engine.stream.kafka import end_offsets

        ends = await end_offsets(consumer, [TopicPartition(topic, p) for p in partitions])
        return sum(ends.values())
    finally:
        await consumer.stop()


async def read_topic(settings: Settings, topic: str, count: int, timeout: float = 15.0) -> list:
    """The first `count` records of a topic (all partitions), as aiokafka records."""
    from aiokafka import TopicPartition

    from engine.stream.consumer import kafka_consumer

    consumer = kafka_consumer(settings, group_id=None)
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [])]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        records = []
        deadline = time.monotonic() + timeout
        while len(records) < count and time.monotonic() < deadline:
            for batch in (await consumer.getmany(timeout_ms=200)).values():
                records.extend(batch)
        return records
    finally:
        await consumer.stop()


async def engine_with_rules(settings_for, folder: Path, files: dict[str, str], **overrides) -> Engine:
    """A running worker and API whose rules folder is `folder`, holding `files` (and settings `overrides`)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(text)
    running = Engine(settings_for(rules=folder, **overrides), folder.parent / f"{folder.name}-logs")
    running.folder = folder
    running.start_worker()
    running.start_api()
    await running.wait_ready()
    return running


async def started(running: "Engine") -> "Engine":
    """`running` with its worker and API up and ready; stopped, with their logs in the error, if they do not come up."""
    running.start_worker()
    running.start_api()
    try:
        await running.wait_ready()
    except AssertionError:
        running.stop()
        raise AssertionError(
            f"engine did not become ready\nworker:\n{running.worker.log()[-3000:]}\napi:\n{running.api.log()[-3000:]}"
        ) from None
    return running


class Receiver:
    """A real webhook receiver on 127.0.0.1: records what arrives; answers `fail_first` requests with `fail_status`."""

    def __init__(self, fail_first: int = 0, fail_status: int = 500) -> None:
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.received: list[dict] = []  # {"headers", "body", "json"} of the requests answered 2xx
        self.attempts = 0
        self.fail_first, self.fail_status = fail_first, fail_status
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                import json

                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with lock:
                    receiver.attempts += 1
                    failing = receiver.attempts <= receiver.fail_first
                    if not failing:
                        receiver.received.append(
                            {"headers": dict(self.headers), "body": body, "json": json.loads(body)}
                        )
                self.send_response(receiver.fail_status if failing else 204)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        lock = threading.Lock()

        class Server(ThreadingHTTPServer):
            request_queue_size = 128  # a receiver's usual backlog, not the standard library's 5
            daemon_threads = True

        self.server = Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def documents(self) -> list[dict]:
        return [r["json"] for r in self.received]

    def by_id(self) -> dict[str, dict]:
        return {d["id"]: d for d in self.documents()}

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def csrf_of(page: str) -> str:
    """The CSRF token a console page's forms carry."""
    return re.search(r'name="csrf" value="([^"]+)"', page).group(1)


async def sign_in(client, key: str):
    """`client` signed in to the console with `key` (its session cookie kept by the client)."""
    page = await client.get("/console/signin")
    assert page.status_code == 200
    cookie = page.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict")
    response = await client.post("/console/signin", data={"key": key, "csrf": csrf_of(page.text)})
    assert response.status_code == 303 and response.headers["location"] == "/console/", response.text
    return client


async def worker_steps(world, events):
    """The worker's steps for these events over a (profiles, people, step) world: the fold, identity
    links, then the step (co-occurrence, the session pool); the fold's result."""
    profiles, people, step = world
    result = await profiles.apply_batch(events)
    await people.link(events, result)
    await step(events, result)
    return result
