"""Chaos fixtures: a broker of the test's own, which the test may kill, pause and restart."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from engine.embedded import broker_command, free_port, wait_for_port

sys.path.insert(0, str(Path(__file__).parent))


class Broker:
    """A Tansu broker on a fixed port, so a restarted one is found at the same address."""

    def __init__(self, log_path: Path) -> None:
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.log_path = log_path
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            broker_command(self.port), stdout=open(self.log_path, "ab"), stderr=subprocess.STDOUT
        )
        wait_for_port(self.port, 30, self.process)

    def kill(self) -> None:
        self.process.kill()
        self.process.wait()

    def pause(self) -> None:
        os.kill(self.process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.kill(self.process.pid, signal.SIGCONT)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.resume()
            self.process.terminate()
            self.process.wait(10)


@pytest.fixture
def own_broker(tmp_path):
    broker = Broker(tmp_path / "broker.log")
    broker.start()
    yield broker
    broker.stop()


@pytest.fixture
def chaos_settings(settings_for, own_broker, tmp_path):
    """Settings on the test's own broker, with archive segments sealed often."""
    return replace(
        settings_for(kafka=own_broker.address, data_dir=tmp_path / "data"),
        archive_segment_s=1.0,
        spool_grace_s=1.0,
        log_check_s=0.5,
        broker_memory_only=True,  # Tansu, as `up` runs it
    )
