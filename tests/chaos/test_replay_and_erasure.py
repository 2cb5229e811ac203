"""After a broker restart the archive still holds the old log: replay rebuilds every count, once.
Erasure reaches the archive: the person's events leave it, and a replay does not bring them back."""

from __future__ import annotations

import asyncio


from engine.stream.archive import open_archive
from helpers import Engine, Process, wait_until
from traffic import Sender, counted


def archived_visitors(settings) -> dict[str, int]:
    archive = open_archive(settings)
    found: dict[str, int] = {}
    for log_id in archive.logs():
        for _, records in archive.records(log_id):
            for _, key, _ in records:
                found[key.decode()] = found.get(key.decode(), 0) + 1
    return found


async def test_replay_after_a_broker_restart_rebuilds_everything_once(chaos_settings, own_broker, tmp_path):
    engine = Engine(chaos_settings, tmp_path / "logs")
    engine.start_worker()
    engine.start_api()
    try:
        await engine.wait_ready(60)
        sender = Sender(engine.url, "test-key", visitors=50, clients=2)
        sender.start()
        await wait_until(lambda: sender.tally.events >= 2000, 30, message="traffic before the restart")
        tally = await sender.stop()
        assert await counted(engine.url, "test-key", tally) == (0, 0)
        await wait_until(
            lambda: sum(archived_visitors(chaos_settings).values()) >= tally.events,
            30,
            message="the first log archived",
        )
        own_broker.kill()
        own_broker.start()
        sender = Sender(engine.url, "test-key", visitors=50, clients=2, seed=7)  # the same visitors, new events
        sender.tally = tally
        sender.start()
        await wait_until(lambda: sender.tally.events >= 4000, 60, message="traffic after the restart")
        tally = await sender.stop()
        assert await counted(engine.url, "test-key", tally) == (0, 0)

        victim = sorted(tally.acked)[0]
        async with engine.client() as client:
            erased = await client.delete(f"/v1/profiles/{victim}", headers={"Authorization": "Bearer test-key"})
        assert erased.status_code == 200, erased.text
        await asyncio.sleep(chaos_settings.archive_segment_s * 3)  # whatever was pending is sealed by now
        assert victim not in archived_visitors(chaos_settings)

        replay = Process(chaos_settings, "replay", "--quiet", log_path=tmp_path / "logs" / "replay.log")
        assert replay.popen.wait(120) == 0, replay.log()
        print(replay.log()[-300:])
        del tally.acked[victim]
        lost, double = await counted(engine.url, "test-key", tally)
        assert (lost, double) == (0, 0)
        assert await engine.profile(victim) is None
    finally:
        engine.stop()
