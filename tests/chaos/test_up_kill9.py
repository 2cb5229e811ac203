"""kill -9 of the whole `clickstream up` tree mid-stream, then a new `up` on the same data folder.

The broker kept its log in memory and Redis had up to a second of writes not yet in
its append-only file; the collector's spool and the archive make up for both: every
event that got a 202 is counted once in the profiles of the new engine.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time

from helpers import wait_until
from processes import alive, children_of, start_up
from traffic import Sender, counted

ENV = {
    "CLICKSTREAM_ARCHIVE_SEGMENT_S": "1",
    "CLICKSTREAM_SPOOL_GRACE_S": "1",
    "CLICKSTREAM_LOG_CHECK_S": "0.5",
    "CLICKSTREAM_WORKER_HEARTBEAT_S": "0.5",
}


def kill_tree(pid: int) -> None:
    victims = [pid, *children_of(pid)]
    for victim in victims:
        try:
            os.kill(victim, signal.SIGKILL)
        except ProcessLookupError:
            pass
    for victim in victims:
        while alive(victim):
            try:
                os.waitpid(victim, os.WNOHANG)
            except ChildProcessError:
                pass
            time.sleep(0.05)


async def test_kill9_of_the_whole_engine_keeps_every_acknowledged_event(tmp_path):
    process, port, _ = start_up(tmp_path, ENV)
    second = None
    try:
        sender = Sender(f"http://127.0.0.1:{port}", "up-key")
        sender.start()
        await wait_until(lambda: sender.tally.events >= 4000, 60, message="traffic flowing")
        # In threads: the sender goes on meanwhile, and meets the dead engine.
        await asyncio.to_thread(kill_tree, process.pid)
        process.wait()
        acked_before = sender.tally.events
        second, port, _ = await asyncio.to_thread(start_up, tmp_path, ENV)
        sender.set_url(f"http://127.0.0.1:{port}")
        await wait_until(lambda: sender.tally.events >= acked_before + 3000, 60, message="traffic after the restart")
        tally = await sender.stop()
        lost, double = await counted(f"http://127.0.0.1:{port}", "up-key", tally)
        print(
            f"kill -9 of up: {tally.events} events acknowledged ({acked_before} before the kill), lost {lost}, "
            f"double {double}, statuses {dict(tally.statuses)}, connection errors {tally.connection_errors}"
        )
        assert (lost, double, tally.server_errors) == (0, 0, 0)
    finally:
        for running in (process, second):
            if running is not None and running.poll() is None:
                running.send_signal(signal.SIGTERM)
                running.wait(30)
