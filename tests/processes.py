"""Processes the tests start and watch: `clickstream up` in a data folder, and what /proc says of them."""

import os
import subprocess
import sys
import time
from pathlib import Path

from engine.embedded import free_port
from helpers import REPO


def children_of(pid: int) -> dict[int, str]:
    """Every descendant process of pid, with its command line, read from /proc."""
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
                parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
    found, frontier = {}, {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier}
        for child in frontier:
            try:
                found[child] = (Path("/proc") / str(child) / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                pass
    return found


def alive(pid: int) -> bool:
    try:
        return not (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return False


def start_up(tmp_path, extra_env):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLICKSTREAM_")}
    env.update(
        CLICKSTREAM_DATA_DIR=str(tmp_path),
        CLICKSTREAM_API_KEYS="up-key",
        CLICKSTREAM_REBALANCE_TIMEOUT_S="1",
        **extra_env,
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "engine.cli", "up", "--port", str(port)],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines = []
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        lines.append(line)
        if line.startswith("Ctrl-C"):
            return process, port, "".join(lines)
    process.kill()
    raise AssertionError("up did not come up:\n" + "".join(lines))
