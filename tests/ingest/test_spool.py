"""The collector's spool: durable frames, a torn tail, slots adopted from a dead collector, a size bound, and what
confirms a batch (the archive's unbroken coverage)."""

from __future__ import annotations

import asyncio
import os

from engine.ingest.publisher import LogWatch, Publisher, _held
from engine.ingest.spool import Spool, SpoolFile, decode_file
from engine.stream.archive import Archive, LocalStore


async def test_appends_share_fsyncs_and_read_back(tmp_path, monkeypatch):
    calls = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (calls.append(fd), real(fd)))
    spool = Spool(tmp_path)
    spool.open()
    await asyncio.gather(*(spool.append("L1", {i % 2: i}, [(b"v%d" % i, b"e%d" % i)]) for i in range(50)))
    assert spool.events() == 50
    assert len(calls) < 50  # concurrent batches wait on one fsync
    spool.rotate()
    [closed] = spool.files()
    records = spool.read(closed)
    assert sorted(r["events"][0][1] for r in records) == sorted(b"e%d" % i for i in range(50))
    assert closed.ends == {"L1": {0: 48, 1: 49}}
    spool.close()


async def test_a_torn_last_frame_ends_the_file(tmp_path):
    spool = Spool(tmp_path)
    spool.open()
    await spool.append("L1", {0: 1}, [(b"v", b"e1")])
    await spool.append("L1", {0: 2}, [(b"v", b"e2")])
    path = spool.current.path
    spool.close()
    data = path.read_bytes()
    assert [r["ends"] for r in decode_file(data[:-3])] == [{0: 1}]


async def test_a_dead_collectors_slot_is_adopted(tmp_path):
    first = Spool(tmp_path)
    first.open()
    await first.append("L1", {0: 7}, [(b"v", b"e")])
    second = Spool(tmp_path)
    second.open()
    assert (first.slot.name, second.slot.name) == ("0", "1")
    assert second.files() == []  # slot 0 is held by a live collector
    first.close()  # as at its death: the lock goes with the process
    assert second.adopt_orphans() == 1
    [adopted] = second.files()
    assert adopted.ends == {"L1": {0: 7}} and adopted.events == 1 and adopted.path.parent == second.slot
    second.close()
    third = Spool(tmp_path)
    third.open()  # a new collector after a restart finds the files in the first free slot
    assert [f.events for f in third.files()] == [1]
    third.close()


async def test_over_its_bound_the_spool_drops_the_oldest_file(tmp_path):
    spool = Spool(tmp_path, rotate_s=0, max_bytes=300)
    spool.open()
    for i in range(5):
        await spool.append("L1", {0: i}, [(b"v", b"x" * 100)])
    spool.rotate()
    assert spool.size() <= 300 and spool.dropped >= 2
    spool.close()


def test_a_batch_past_a_hole_in_the_archive_is_not_confirmed(tmp_path):
    """Offsets past a range no segment covers may be missing from the archive: their batch stays spooled."""
    archive = Archive(LocalStore(tmp_path / "archive"), "events")
    for first, last in [(0, 2), (6, 9)]:  # 3-5 never archived
        archive.write("L1", 0, [], first, last)
    watch = LogWatch(Publisher(None, "events", "events.rejected"), identity=None, archive=archive)
    archived = watch._archived({"L1"})
    assert archived == {"L1": {0: 3}}
    assert watch.state()["archive_gaps"] == 1
    before, past = SpoolFile(tmp_path / "a"), SpoolFile(tmp_path / "b")
    before.note("L1", {0: 2}, 1, 0)
    past.note("L1", {0: 7}, 1, 0)
    assert _held(before, archived) and not _held(past, archived)
