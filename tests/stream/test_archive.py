"""The archive: segments per partition and log, read back in order, and erasure that leaves nothing behind."""

from __future__ import annotations

import msgpack

from engine.stream.archive import Archive, ArchiveWriter, LocalStore, Segment, coverage_of, open_store


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


def test_coverage_ends_at_the_first_hole_and_reports_every_hole(tmp_path):
    archive = Archive(LocalStore(tmp_path), "events")
    archive.write("L1", 0, [event(0, "a"), event(1, "a")])
    archive.write("L1", 0, [event(2, "a")])  # touching: the run goes on
    archive.write("L1", 0, [event(5, "a"), event(6, "a")])  # 3-4 missing
    archive.write("L1", 0, [event(9, "a")])  # 7-8 missing
    archive.write("L1", 1, [event(4, "b")])  # a partition's archive starts where its first segment does
    coverage = archive.coverage("L1")
    assert coverage.ends == {0: 3, 1: 5} == archive.ends("L1")
    assert coverage.gaps == [(0, 3, 4), (0, 7, 8)]


def test_overlapping_segments_close_a_hole_they_span():
    segments = [Segment("L", 0, 0, 9), Segment("L", 0, 20, 29), Segment("L", 0, 5, 24)]
    assert coverage_of(segments).ends == {0: 30} and coverage_of(segments).gaps == []


def test_writer_tiles_the_log_over_records_it_leaves_out(tmp_path):
    """Offsets of dead letters are covered, not held: a batch spooled at such an offset is confirmed."""
    archive = Archive(LocalStore(tmp_path), "events")
    writer = ArchiveWriter(archive, seal_s=0, max_events=100)
    writer.add(0, [event(0, "a"), event(1, "a")], first=0, end=3)  # offset 2 was undecodable
    writer.seal("L1")
    writer.add(0, [], first=3, end=5)  # a fetch of dead letters only
    assert writer.holding() and writer.pending() == 0
    writer.seal("L1")
    writer.add(0, [event(5, "a")], first=5, end=6)
    assert writer.seal("L1") == {0: 6}
    assert archive.coverage("L1").ends == {0: 6} and archive.coverage("L1").gaps == []
    assert [r[0] for _, records in archive.records("L1") for r in records] == [0, 1, 5]


def test_a_fetch_that_skips_offsets_leaves_a_hole_for_coverage_to_find(tmp_path):
    archive = Archive(LocalStore(tmp_path), "events")
    writer = ArchiveWriter(archive, seal_s=0, max_events=100)
    writer.add(0, [event(0, "a")], first=0, end=1)
    writer.seal("L1")
    writer.add(0, [event(4, "a")], first=4, end=5)  # offsets 1-3 were never fetched by this worker
    writer.seal("L1")
    assert archive.coverage("L1").ends == {0: 1}
    assert archive.coverage("L1").gaps == [(0, 1, 3)]
