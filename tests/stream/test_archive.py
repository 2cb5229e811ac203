"""The archive: segments per partition and log, read back in order, and erasure that leaves nothing behind."""

from __future__ import annotations

import msgpack

from engine.stream.archive import Archive, ArchiveWriter, LocalStore, Segment, open_store


def event(offset: int, visitor: str, user: str | None = None) -> tuple[int, bytes, bytes, str | None]:
    body = {"event_id": f"e{offset}", "type": "page_view", "visitor_id": visitor}
    if user:
        body["user_id"] = user
    return offset, visitor.encode(), msgpack.packb(body), user


def visitors_in(archive: Archive, log_id: str) -> list[str]:
    return [msgpack.unpackb(value)["visitor_id"] for _, records in archive.records(log_id) for _, _, value in records]


def test_segments_read_back_in_offset_order_per_partition(tmp_path):
    archive = Archive(LocalStore(tmp_path), "events")
    archive.write("L1", 0, [event(0, "a"), event(1, "b")])
    archive.write("L1", 1, [event(0, "c")])
    archive.write("L1", 0, [event(2, "a")])
    archive.write("L2", 0, [event(0, "d")])
    assert archive.logs() == ["L1", "L2"]
    assert archive.ends("L1") == {0: 3, 1: 1} and archive.ends("L3") == {}
    assert archive.count("L1") == 4
    assert [(p, [r[0] for r in records]) for p, records in archive.records("L1")] == [(0, [0, 1]), (1, [0]), (0, [2])]
    assert Segment.parse("events/L1/0000/0000000000000000-0000000000000001.seg") == Segment("L1", 0, 0, 1)


def test_overlapping_segments_yield_each_offset_once(tmp_path):
    """Two workers may seal the same offsets around a rebalance."""
    archive = Archive(LocalStore(tmp_path), "events")
    archive.write("L1", 0, [event(0, "a"), event(1, "a"), event(2, "a")])
    archive.write("L1", 0, [event(1, "a"), event(2, "a"), event(3, "a")])
    assert [r[0] for _, records in archive.records("L1") for r in records] == [0, 1, 2, 3]


def test_writer_seals_by_age_or_size_and_skips_what_is_archived(tmp_path):
    archive = Archive(LocalStore(tmp_path), "events")
    now = [0.0]
    writer = ArchiveWriter(archive, seal_s=10, max_events=3, clock=lambda: now[0])
    writer.add(0, [event(0, "a")])
    assert not writer.due()
    now[0] = 10.0
    assert writer.due()
    assert writer.seal("L1") == {0: 1}
    writer.add(0, [event(1, "a"), event(2, "a"), event(3, "a")])
    assert writer.due()  # by size
    # Another writer took the partition and re-applies from offset 0: what is archived is skipped.
    late = ArchiveWriter(archive, seal_s=0, max_events=100)
    late.add(0, [event(0, "a"), event(1, "a")])
    assert late.seal("L1") == {0: 2}
    writer.seal("L1")
    assert [r[0] for _, records in archive.records("L1") for r in records] == [0, 1, 2, 3]
    assert writer.events == 4 and late.events == 1


def test_forget_rewrites_segments_and_keeps_later_ones_clean(tmp_path):
    archive = Archive(open_store(f"file://{tmp_path}"), "events")
    archive.write("L1", 0, [event(0, "anna"), event(1, "bob"), event(2, "anna-phone", user="anna@example")])
    archive.write("L1", 1, [event(0, "carl")])
    assert archive.forget(["anna", "anna@example"]) == 2
    assert visitors_in(archive, "L1") == ["bob", "carl"]
    assert archive.ends("L1") == {0: 3, 1: 1}  # the offsets stay covered: nothing to re-read from the broker
    # A late event of the erased person, sealed after the erasure, is left out too.
    archive.write("L1", 0, [event(3, "anna"), event(4, "dora")])
    assert visitors_in(archive, "L1") == ["bob", "carl", "dora"]
    raw = b"".join(path.read_bytes() for path in tmp_path.rglob("*.seg"))
    assert b"anna" not in raw  # zstd keeps short literals as they are: a stored id would show


def test_a_segment_without_its_index_is_still_erased(tmp_path):
    archive = Archive(LocalStore(tmp_path), "events")
    segment = archive.write("L1", 0, [event(0, "anna"), event(1, "bob")])
    (tmp_path / "events" / f"{segment.name}.idx").unlink()
    assert archive.count("L1") == 2
    assert archive.forget(["anna"]) == 1
    assert visitors_in(archive, "L1") == ["bob"]
